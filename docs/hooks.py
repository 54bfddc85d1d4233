"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

* Sets up Django with ``tests.settings`` (``DJANGO_SETTINGS_MODULE`` if set), so
  that whatever the build imports from the project finds its models.
* Writes ``docs/reference/openapi.json`` from the project's own API with
  drf-spectacular (a schema warning fails the build) and renders its endpoints
  where a page says ``<!-- generated: openapi-endpoints -->``.
* Renders, from the code, other ``<!-- generated: NAME -->`` markers: the state
  machines as tables and SVG diagrams, the audit actions and the management
  commands, so these pages cannot drift from the code.
* Checks that the pages, README.md and CONTRIBUTING.md name only files and tests
  that exist (``tests/test_x.py::test_name``), that the settings page documents
  every ``STEPKIT`` key and the checks page every system check. Each problem is
  a warning, which ``mkdocs build --strict`` turns into a failed build. A module
  of ``stepkit_django/`` missing from CONTRIBUTING.md's layout is only noted.
* Shows Sphinx-style roles left in docstrings (``:class:`X```) as plain code.
"""

from __future__ import annotations

import ast
import html
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.stepkit_docs")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OPENAPI = DOCS / "reference" / "openapi.json"
MARKER = re.compile(r"<!-- generated: ([\w-]+) -->")


# -- Django ---------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    return config


def on_pre_build(config: Any) -> None:
    _write_openapi()
    for name in ("README.md", "CONTRIBUTING.md"):
        _check_paths((ROOT / name).read_text(encoding="utf-8"), name)
    _check_layout()


def _write_openapi() -> None:
    """``docs/reference/openapi.json`` from the project's API; rewritten only when it changed (``mkdocs serve``)."""
    import tempfile

    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    import stepkit_django

    spectacular = {
        **getattr(settings, "SPECTACULAR_SETTINGS", {}),
        "TITLE": "stepkit_django API",
        "VERSION": stepkit_django.__version__,
        "DESCRIPTION": 'Mounted with path("api/stepkit/", include("stepkit_django.api.urls")).',
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "openapi.json"
        with override_settings(SPECTACULAR_SETTINGS=spectacular):
            call_command("spectacular", format="openapi-json", file=str(out), fail_on_warn=True)
        schema = out.read_text(encoding="utf-8")
    if not OPENAPI.exists() or OPENAPI.read_text(encoding="utf-8") != schema:
        OPENAPI.parent.mkdir(parents=True, exist_ok=True)
        OPENAPI.write_text(schema, encoding="utf-8")


# -- pages ------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    source = page.file.src_uri
    _check_paths(markdown, f"docs/{source}")
    if source == "settings.md":
        _check_settings(markdown)
    if source == "reference/checks.md":
        _check_system_checks(markdown)

    def render(match: re.Match[str]) -> str:
        name = match.group(1)
        renderer = GENERATED.get(name)
        if renderer is None:
            log.warning("docs/%s: unknown marker <!-- generated: %s -->", source, name)
            return match.group(0)
        return renderer()

    return MARKER.sub(render, markdown)


ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):<code>(~?)([^<]*)</code>")


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:
    """Docstrings use Sphinx roles (``:class:`~a.B```): show them as code, shortened where ``~`` asks."""

    def plain(match: re.Match[str]) -> str:
        shorten, target = match.group(1), match.group(2)
        return f"<code>{target.rsplit('.', 1)[-1] if shorten else target}</code>"

    return ROLE.sub(plain, html_text)


# -- checks -----------------------------------------------------------------------------------

# A file of the project named in prose or code, optionally with a test: tests/test_x.py::test_name.
PROJECT_PATH = re.compile(
    r"(?<![\w./-])((?:stepkit_django|tests|example_project|benchmarks|scripts|docs)/[\w./-]*[\w/])(?:::(\w+))?"
)


def _check_paths(text: str, where: str) -> None:
    for match in PROJECT_PATH.finditer(text):
        path, name = match.group(1), match.group(2)
        target = ROOT / path
        if path == "docs/reference/openapi.json" or path.endswith(".sqlite3"):
            continue  # written by this hook; created by the demo
        if not target.exists() and path.startswith("stepkit_django/"):
            # A template's or a static file's name, as Django finds them.
            named = [ROOT / "stepkit_django" / folder / path for folder in ("templates", "static")]
            target = next((candidate for candidate in named if candidate.exists()), target)
        if not target.exists():
            log.warning("%s names %s, which does not exist", where, path)
            continue
        if name and target.is_file():
            tree = ast.parse(target.read_text(encoding="utf-8"))
            defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
            if name not in defined:
                log.warning("%s names %s::%s, which is not defined there", where, path, name)


def _check_settings(markdown: str) -> None:
    from stepkit_django.conf import DEFAULTS

    for key in DEFAULTS:
        if f"`{key}`" not in markdown:
            log.warning("docs/settings.md does not document STEPKIT[%r]", key)


def _check_system_checks(markdown: str) -> None:
    source = (ROOT / "stepkit_django" / "checks.py").read_text(encoding="utf-8")
    for check_id in sorted(set(re.findall(r"stepkit_django\.[EW]\d{3}", source))):
        if check_id not in markdown:
            log.warning("docs/reference/checks.md does not describe %s", check_id)


def _modules() -> list[str]:
    """The modules and subpackages of stepkit_django/ as CONTRIBUTING.md names them (``x.py``, ``x/``)."""
    package = ROOT / "stepkit_django"
    names = [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
    names += [f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    return sorted(names)


def _check_layout() -> None:
    """Name the modules CONTRIBUTING.md's layout misses (a notice, not a failure: modules come and go often)."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    layout = text.split("## The layout", 1)[-1]
    for name in _modules():
        if f"`{name}`" not in layout:
            log.info("CONTRIBUTING.md's layout does not list stepkit_django/%s: add one line saying what it owns", name)


# -- generated content --------------------------------------------------------------------------


def _openapi() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#schema-{name.lower()})"
    if "allOf" in schema:
        return " & ".join(_schema_type(s) for s in schema["allOf"])
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(_schema_type(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    kind = schema.get("type", "any")
    if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
        nullable = "null" in kind
        others = [k for k in kind if k != "null"]
        inner = _schema_type({**schema, "type": others[0]}) if len(others) == 1 else " or ".join(others)
        return f"{inner} or null" if nullable else inner
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"] if v not in ("", None)) or kind
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


METHODS = ("get", "post", "put", "patch", "delete")


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, ops[m]) for path, ops in schema["paths"].items() for m in METHODS if m in ops]


def _body_schema(content: dict[str, Any]) -> dict[str, Any] | None:
    for media in ("application/json", *content):
        if media in content:
            return content[media].get("schema")  # type: ignore[no-any-return]
    return None


def render_openapi_endpoints() -> str:
    schema = _openapi()
    out = [
        "| method | path | summary | status codes |",
        "| --- | --- | --- | --- |",
    ]
    for path, method, op in _operations(schema):
        anchor = op["operationId"].replace("_", "-")
        codes = ", ".join(sorted(op.get("responses", {})))
        out.append(f"| `{method.upper()}` | [`{path}`](#{anchor}) | {_cell(op.get('summary'))} | {codes} |")
    out.append("")
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, method, op in _operations(schema):
        by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
    for tag, operations in by_tag.items():
        out += [f"## {tag}", ""]
        for path, method, op in operations:
            anchor = op["operationId"].replace("_", "-")
            out += [f"### `{method.upper()} {path}` {{ #{anchor} }}", ""]
            if op.get("summary"):
                out += [f"**{_cell(op['summary'])}**", ""]
            if op.get("description"):
                out += [op["description"].strip(), ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
                for p in params:
                    required = "yes" if p.get("required") else ""
                    kind = _schema_type(p.get("schema", {}))
                    out.append(f"| `{p['name']}` | {p['in']} | {kind} | {required} | {_cell(p.get('description'))} |")
                out.append("")
            body = op.get("requestBody")
            if body:
                body_schema = _body_schema(body.get("content", {}))
                if body_schema:
                    out += [f"Request body: {_schema_type(body_schema)}", ""]
            out += ["| status | meaning | body |", "| --- | --- | --- |"]
            for code, response in sorted(op.get("responses", {}).items()):
                body_schema = _body_schema(response.get("content", {}))
                shape = _schema_type(body_schema) if body_schema else ""
                out.append(f"| {code} | {_cell(response.get('description'))} | {shape} |")
            out.append("")
    out += ["## Schemas", ""]
    for name, component in sorted(schema.get("components", {}).get("schemas", {}).items()):
        out += [f"### {name} {{ #schema-{name.lower()} }}", ""]
        if component.get("description"):
            out += [_cell(component["description"]), ""]
        properties = component.get("properties")
        if properties:
            required = set(component.get("required", []))
            out += ["| field | type | | description |", "| --- | --- | --- | --- |"]
            for field, spec in properties.items():
                notes = [n for n, on in (("required", field in required), ("read-only", spec.get("readOnly"))) if on]
                out.append(
                    f"| `{field}` | {_schema_type(spec)} | {', '.join(notes)} | {_cell(spec.get('description'))} |"
                )
            out.append("")
        elif "enum" in component:
            out += ["Values: " + ", ".join(f"`{v}`" for v in component["enum"]), ""]
    security = schema.get("components", {}).get("securitySchemes", {})
    if security:
        out += ["## Authentication", "", "| scheme | how | |", "| --- | --- | --- |"]
        for name, spec in security.items():
            where = f"{spec.get('in', '')} `{spec.get('name', spec.get('scheme', ''))}`"
            out.append(f"| `{name}` | {where} | {_cell(spec.get('description'))} |")
        out.append("")
    return "\n".join(out)


# What makes a run or a checkpoint take each move. A move in the code without a line here fails
# the build (and a line here for a move the code no longer has), so the two stay in step.
RUN_MOVES = {
    ("queued", "running"): "A worker takes the run's lease (one conditional `UPDATE`, `leases.take`). "
    "With the `inline` executor, `start()` and an approval write the run `running` directly instead.",
    ("queued", "cancelled"): "`review.cancel_run()` before a worker took it.",
    ("running", "queued"): "`stepkit_recover` finds its lease expired (the worker died), or a worker that does "
    "not know the pipeline yet puts it back (a rolling deploy, within `UNKNOWN_PIPELINE_GRACE`).",
    ("running", "paused"): "A step declared with `review=` completed (and its `when` held), or a `step_completed` "
    "receiver called `stop_pipeline()`: a pending checkpoint is created.",
    ("running", "completed"): "The last step completed; written in the statement that saves that step.",
    ("running", "failed"): "A step raised after its retries, or the pipeline stayed unknown past "
    "`UNKNOWN_PIPELINE_GRACE`.",
    ("running", "rejected"): "Allowed by the table; no service takes this move at present (a rejection "
    "applies to a paused run).",
    ("running", "cancelled"): "`review.cancel_run()` while a worker executes it: the step in flight completes, "
    "is recorded, and nothing after it runs.",
    ("paused", "queued"): 'The last required approval (`review.approve()`), or `on_timeout="approve"`, '
    "with a queued executor (`tasks`, `celery`).",
    ("paused", "running"): "The last required approval with the `inline` executor: the approving process "
    "holds the lease and runs the rest.",
    ("paused", "rejected"): '`review.reject()`, or the deadline passed with `on_timeout="reject"` (or a '
    "second deadline after an escalation).",
    ("paused", "failed"): 'The deadline passed with `on_timeout="fail"`.',
    ("paused", "cancelled"): "`review.cancel_run()`; its pending checkpoints are cancelled with it.",
    ("failed", "queued"): "`review.retry_run()`: continues after the last completed step.",
    ("failed", "running"): "Allowed by the table; no service takes this move at present (a retry queues the "
    "run, and a worker, or the inline executor, then takes it).",
    ("failed", "paused"): '`review.retry_run()` of a run that `on_timeout="fail"` failed: the review '
    "opens again, with a new pending checkpoint and a new deadline.",
    ("failed", "cancelled"): "Allowed by the table; `review.cancel_run()` refuses runs that ended, failed "
    "ones included (`ReviewConflict`).",
}

CHECKPOINT_MOVES = {
    ("pending", "approved"): 'The last required approval, or the deadline with `on_timeout="approve"`.',
    ("pending", "rejected"): "`review.reject()`.",
    ("pending", "expired"): 'The deadline passed with `on_timeout="reject"` or `"fail"` (an escalation '
    "keeps it pending, reassigned, with a new deadline).",
    ("pending", "cancelled"): "Its run was cancelled.",
    ("pending", "changes_requested"): "`review.request_changes()`: the run runs the step again with the "
    "reviewer's notes and pauses with a new checkpoint, its next revision (`revision_of` links them).",
}


def _moves(transitions: dict[str, frozenset[str]]) -> list[tuple[str, str]]:
    order = list(transitions)
    return [(str(a), str(b)) for a in order for b in sorted(transitions[a], key=lambda s: order.index(s))]


def _move_table(transitions: dict[str, frozenset[str]], described: dict[tuple[str, str], str], what: str) -> str:
    moves = _moves(transitions)
    for move in moves:
        if move not in described:
            log.warning("docs/hooks.py: the %s move %s → %s has no description in %s_MOVES", what, *move, what.upper())
    for move in described:
        if move not in moves:
            log.warning("docs/hooks.py: %s_MOVES describes %s → %s, which the code does not allow", what.upper(), *move)
    ends = [str(s) for s, targets in transitions.items() if not targets]
    out = ["| from | to | when |", "| --- | --- | --- |"]
    out += [f"| `{a}` | `{b}` | {described.get((a, b), '')} |" for a, b in moves]
    out += ["", "End states (no move out of them): " + ", ".join(f"`{s}`" for s in ends) + "."]
    return "\n".join(out)


def render_run_transitions() -> str:
    from stepkit_django.status import RUN_TRANSITIONS

    return _move_table(RUN_TRANSITIONS, RUN_MOVES, "run")


def render_checkpoint_transitions() -> str:
    from stepkit_django.transitions import CHECKPOINT_TRANSITIONS

    return _move_table(CHECKPOINT_TRANSITIONS, CHECKPOINT_MOVES, "checkpoint")


# Where each state sits in the diagrams (x, y of its centre). A state without a place fails the build.
RUN_LAYOUT = {
    "queued": (90, 200),
    "running": (250, 70),
    "paused": (570, 70),
    "failed": (730, 200),
    "rejected": (630, 340),
    "cancelled": (410, 360),
    "completed": (170, 340),
}
CHECKPOINT_LAYOUT = {
    "pending": (130, 186),
    "approved": (520, 40),
    "rejected": (520, 113),
    "expired": (520, 186),
    "cancelled": (520, 259),
    "changes_requested": (520, 332),
}
BOX_W, BOX_H = 124, 40


def _edge_end(x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
    """Where the ray from a box's centre (x, y) along (dx, dy) leaves the box."""
    scale = min(
        (BOX_W / 2 + 4) / abs(dx) if dx else math.inf,
        (BOX_H / 2 + 4) / abs(dy) if dy else math.inf,
    )
    return x + dx * scale, y + dy * scale


def _diagram(transitions: dict[str, frozenset[str]], layout: dict[str, tuple[int, int]], title: str) -> str:
    moves = _moves(transitions)
    width = max(x for x, _ in layout.values()) + BOX_W // 2 + 20
    height = max(y for _, y in layout.values()) + BOX_H // 2 + 20
    for state in transitions:
        if state not in layout:
            log.warning("docs/hooks.py: state %r has no place in the %s diagram", state, title)
            return ""
    parts = [
        f'<svg class="stepkit-diagram" role="img" viewBox="0 0 {width} {height}" style="max-width: {width}px" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{html.escape(title)}</title>',
        f'<defs><marker id="arrow-{title.split()[0].lower()}" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>',
    ]
    marker = f"url(#arrow-{title.split()[0].lower()})"
    pairs = set(moves)
    for a, b in moves:
        (x1, y1), (x2, y2) = layout[a], layout[b]
        dx, dy = x2 - x1, y2 - y1
        length = math.hypot(dx, dy)
        ox, oy = (0.0, 0.0)
        if (b, a) in pairs:  # both ways: two parallel arrows, each shifted to its right
            ox, oy = -dy / length * 7, dx / length * 7
        sx, sy = _edge_end(x1, y1, dx, dy)
        ex, ey = _edge_end(x2, y2, -dx, -dy)
        parts.append(
            f'<line class="edge" data-move="{a}-{b}" x1="{sx + ox:.1f}" y1="{sy + oy:.1f}" x2="{ex + ox:.1f}" '
            f'y2="{ey + oy:.1f}" stroke="currentColor" stroke-width="1.4" marker-end="{marker}"/>'
        )
    for state, (x, y) in layout.items():
        end = not transitions[state]
        parts.append(
            f'<g class="state{" end" if end else ""}"><rect x="{x - BOX_W / 2}" y="{y - BOX_H / 2}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="{6 if end else 18}" stroke="currentColor" stroke-width="{2.4 if end else 1.4}"/>'
            f'<text x="{x}" y="{y + 5}" text-anchor="middle">{html.escape(state)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_run_diagram() -> str:
    from stepkit_django.status import RUN_TRANSITIONS

    return _diagram(RUN_TRANSITIONS, RUN_LAYOUT, "Run states")


def render_checkpoint_diagram() -> str:
    from stepkit_django.transitions import CHECKPOINT_TRANSITIONS

    return _diagram(CHECKPOINT_TRANSITIONS, CHECKPOINT_LAYOUT, "Checkpoint states")


def render_audit_actions() -> str:
    from stepkit_django.status import AuditAction

    out = ["| action | label |", "| --- | --- |"]
    out += [f"| `{value}` | {label} |" for value, label in AuditAction.choices]
    return "\n".join(out)


COMMAND_DIRS = (
    ("stepkit_django", ROOT / "stepkit_django" / "management" / "commands"),
    ("the demo (`example_project.demo`)", ROOT / "example_project" / "demo" / "management" / "commands"),
)


# Names the commands use as defaults, shown as their values.
KNOWN_NAMES = {"DEFAULT_DB_ALIAS": "default"}


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        source = ast.unparse(node)
        return KNOWN_NAMES.get(source, source)


def _command(path: Path) -> tuple[str, list[tuple[str, str, str]]]:
    """A command's help and its options ``(flags, default, help)``, read from its source (nothing imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    help_text, options = "", []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Command":
            for item in node.body:
                if isinstance(item, ast.Assign) and any(getattr(t, "id", "") == "help" for t in item.targets):
                    help_text = str(_literal(item.value))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags = ", ".join(f"`{_literal(a)}`" for a in node.args)
            kwargs = {k.arg: _literal(k.value) for k in node.keywords}
            default = "" if kwargs.get("action") == "store_true" else kwargs.get("default")
            options.append((flags, "" if default is None else f"`{default}`", str(kwargs.get("help") or "")))
    return help_text, options


def render_management_commands() -> str:
    out: list[str] = []
    for owner, directory in COMMAND_DIRS:
        for path in sorted(directory.glob("*.py")):
            if path.name == "__init__.py":
                continue
            help_text, options = _command(path)
            rel = path.relative_to(ROOT).as_posix()
            out += [f"### `{path.stem}`", "", f"From {owner}: `{rel}`.", "", help_text.replace("%%", "%"), ""]
            if options:
                out += ["| option | default | meaning |", "| --- | --- | --- |"]
                for flags, default, text in options:
                    out.append(f"| {flags} | {default} | {_cell(text.replace('%(default)s', default.strip('`')))} |")
                out.append("")
            else:
                out += ["No options of its own (Django's common options apply).", ""]
    return "\n".join(out)


GENERATED = {
    "openapi-endpoints": render_openapi_endpoints,
    "run-transitions": render_run_transitions,
    "checkpoint-transitions": render_checkpoint_transitions,
    "run-diagram": render_run_diagram,
    "checkpoint-diagram": render_checkpoint_diagram,
    "audit-actions": render_audit_actions,
    "management-commands": render_management_commands,
}
