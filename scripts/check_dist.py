"""Check the built sdist and wheel in ``dist/`` (run by ``make package`` after ``twine check``).

The wheel must hold exactly the package as it is in the source tree: every module,
``py.typed``, every migration, every template and the translations (``.po`` and compiled
``.mo`` of each language in :data:`LOCALES`), and nothing else (no ``tests/``,
``benchmarks/``, ``example_project/``, no compiled files). The sdist must hold the
same package files plus what building the wheel from it needs. Exits non-zero,
naming each problem, otherwise prints a summary of what ships.

    python scripts/check_dist.py [dist]
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from collections import Counter
from email.parser import Parser
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "stepkit_django"
FORBIDDEN = ("tests", "benchmarks", "example_project", "docs", "scripts")
SDIST_FORBIDDEN = tuple(name for name in FORBIDDEN if name != "tests")
#: The languages whose translations the package ships (stepkit_django/locale/<language>/LC_MESSAGES/).
LOCALES = ("fr",)


def source_files() -> set[str]:
    """The package's files in the checkout, as paths relative to the project root."""
    found = set()
    for path in (ROOT / PACKAGE).rglob("*"):
        rel = path.relative_to(ROOT)
        if not path.is_file() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if any(part.startswith(".") for part in rel.parts):  # editor and OS droppings
            continue
        found.add(rel.as_posix())
    return found


def version() -> str:
    text = (ROOT / PACKAGE / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no __version__ in {PACKAGE}/__init__.py")
    return match.group(1)


def check_package_files(kind: str, shipped: set[str], expected: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """Problems with the ``stepkit_django/`` part of one archive."""
    problems = []
    package = {name for name in shipped if name.startswith(f"{PACKAGE}/")}
    for name in sorted(expected - package):
        problems.append(f"{kind}: missing {name}")
    for name in sorted(package - expected):
        problems.append(f"{kind}: {name} is not in the source tree (stale build?)")
    required = [f"{PACKAGE}/py.typed", f"{PACKAGE}/migrations/__init__.py", f"{PACKAGE}/migrations/0001_initial.py"]
    problems += [f"{kind}: missing {name}" for name in required if name not in package]
    if not any(name.startswith(f"{PACKAGE}/templates/") and name.endswith(".html") for name in package):
        problems.append(f"{kind}: no templates under {PACKAGE}/templates/")
    # Compiled catalogues ship, so that installs need no gettext tools; each with the .po it was compiled from.
    for language in LOCALES:
        for suffix in ("po", "mo"):
            name = f"{PACKAGE}/locale/{language}/LC_MESSAGES/django.{suffix}"
            if name not in package:
                problems.append(f"{kind}: missing {name}")
    for name in sorted(shipped):
        parts = PurePosixPath(name).parts
        if any(part in forbidden for part in parts[:1]) or "__pycache__" in parts or name.endswith((".pyc", ".pyo")):
            problems.append(f"{kind}: must not ship {name}")
    return list(dict.fromkeys(problems))


def check_wheel(wheel: Path, expected: set[str], ver: str) -> list[str]:
    dist_info = f"{PACKAGE}-{ver}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if not name.endswith("/")}
        if f"{dist_info}/METADATA" not in names:
            return [f"wheel: no {dist_info}/METADATA"]
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
    problems = check_package_files("wheel", names, expected, FORBIDDEN)
    for name in sorted(names):
        if not (name.startswith(f"{PACKAGE}/") or name.startswith(f"{dist_info}/")):
            problems.append(f"wheel: unexpected top-level file {name}")
    if metadata["Version"] != ver:
        problems.append(f"wheel: METADATA says version {metadata['Version']}, the package says {ver}")
    requires = metadata.get_all("Requires-Dist") or []
    for dependency in ("Django", "djangorestframework", "django-filter", "jsonschema", "drf-spectacular"):
        if not any(re.match(rf"{dependency}\b", line, re.IGNORECASE) for line in requires):
            problems.append(f"wheel: no Requires-Dist on {dependency}")
    if not wheel.name.endswith("-py3-none-any.whl"):
        problems.append(f"wheel: {wheel.name} is not a pure-Python py3-none-any wheel")
    return problems


def check_sdist(sdist: Path, expected: set[str], ver: str) -> list[str]:
    prefix = f"{PACKAGE}-{ver}/"
    with tarfile.open(sdist) as archive:
        members = [m.name for m in archive.getmembers() if m.isfile()]
    problems = [f"sdist: {name} is outside {prefix}" for name in members if not name.startswith(prefix)]
    names = {name.removeprefix(prefix) for name in members}
    # setuptools adds tests/test*.py to every sdist by default (a MANIFEST.in could prune them).
    problems += check_package_files("sdist", names, expected, SDIST_FORBIDDEN)
    problems += [f"sdist: missing {name}" for name in ("pyproject.toml", "README.md", "PKG-INFO") if name not in names]
    return problems


def main() -> int:
    dist = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist")
    ver = version()
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"check_dist: expected one wheel and one sdist in {dist}, found {[p.name for p in (*wheels, *sdists)]}")
        return 1
    expected = source_files()
    problems = check_wheel(wheels[0], expected, ver) + check_sdist(sdists[0], expected, ver)
    if problems:
        print(f"check_dist: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    modules = sorted(name for name in expected if name.endswith(".py"))
    migrations = [name for name in modules if name.startswith(f"{PACKAGE}/migrations/0")]
    data = sorted(expected - set(modules))
    print(f"check_dist: OK {wheels[0].name} ({wheels[0].stat().st_size // 1024} KiB), {sdists[0].name}")
    print(f"  {len(modules)} modules, {len(migrations)} migrations, {len(data)} data files:")
    for name in data:
        print(f"    {name}")
    print(f"  wheel: nothing from {', '.join(FORBIDDEN)}; no compiled files")
    with tarfile.open(sdists[0]) as archive:
        tops = [PurePosixPath(m.name).parts[1:2] for m in archive.getmembers() if m.isfile()]
    counts = Counter(top[0] for top in tops if top and top[0] != PACKAGE)
    carried = (f"{name} ({n} files)" if n > 1 else name for name, n in sorted(counts.items()))
    print(f"  sdist also carries: {', '.join(carried)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
