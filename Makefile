# stepkit_django developer commands. `make test` is what CI runs.
#
# Two environments: .venv (Python 3.12 + Django 6.1, the primary target) and
# .venv311 (Python 3.11 + Django 5.2 LTS). Each is created on first use and
# refreshed when pyproject.toml changes.

PYTHON ?= $(shell PYENV_VERSION=3.12 pyenv which python3 2>/dev/null || command -v python3.12 || command -v python3)
PYTHON311 ?= $(shell PYENV_VERSION=3.11 pyenv which python3 2>/dev/null || command -v python3.11)
VENV ?= .venv
VENV311 ?= .venv311
# Django 6 needs Python 3.12+: on an older interpreter the main environment falls back to 5.2 LTS.
DJANGO ?= $(shell $(PYTHON) -c 'import sys; print("django>=6.1,<6.2" if sys.version_info >= (3, 12) else "django>=5.2,<5.3")')
DJANGO311 ?= django>=5.2,<5.3
PYTEST_ARGS ?=
# PostgreSQL used by the *-pg targets; pytest-django creates and drops test_<name> on it.
PG_URL ?= postgres://postgres@127.0.0.1:5432/stepkit
# The browser journeys run on SQLite (both Python/Django pairs): what they check is the pages, not the
# database. The load-with-faults test (slow) runs once, on PostgreSQL with the primary pair. A -m in
# PYTEST_ARGS comes later on the command line, so it wins.
PG_MARKS ?= -m "not browser"
COMPAT_PG_MARKS ?= -m "not browser and not slow"

.PHONY: help venv demo demo-cli messages test lint test-main test-main-pg test-compat test-compat-pg bench bench-engine bench-workers bench-scale clean

help:
	@echo "make demo          serve the demo on 127.0.0.1:8000 (creates .venv, migrates SQLite, seeds users and runs)"
	@echo "make demo-cli      run the email-approval story once on the command line"
	@echo "make test          lint, type-check and run the suite on both Python/Django pairs, SQLite and PostgreSQL"
	@echo "make docs          build the documentation site into site/ (mkdocs build --strict)"
	@echo "make messages      extract the strings to translate into each locale's .po, then compile the .mo files"
	@echo "make bench-engine  print the engine's per-step overhead"
	@echo "make bench-workers runs/s and per-step latency of 1, 2 and 4 db_worker processes on PostgreSQL"
	@echo "make bench         this app against LangGraph, DBOS and raw psycopg; writes benchmarks/results.md"
	@echo "make bench-scale   the million-row queue alone (seeds stepkit_scale once); rewrites its section of results.md"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e . --group dev "$(DJANGO)"
	touch $@

$(VENV311)/.installed: pyproject.toml
	@test -n "$(PYTHON311)" || { echo "Python 3.11 not found: set PYTHON311=/path/to/python3.11"; exit 1; }
	$(PYTHON311) -m venv $(VENV311)
	$(VENV311)/bin/python -m pip install --quiet --upgrade pip
	$(VENV311)/bin/python -m pip install --quiet -e . --group test "$(DJANGO311)"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/python manage.py migrate --verbosity 0
	$(VENV)/bin/python manage.py stepkit_seed_demo
	@echo ""
	@echo "  Review queue (admin): http://127.0.0.1:8000/admin/stepkit_django/checkpoint/"
	@echo "  Queue overview:       http://127.0.0.1:8000/admin/stepkit_django/checkpoint/overview/"
	@echo "  REST API:             http://127.0.0.1:8000/api/stepkit/"
	@echo "  OpenAPI schema:       http://127.0.0.1:8000/api/stepkit/schema/"
	@echo "  A db_worker process advances the runs; Ctrl-C stops both."
	@echo ""
	$(VENV)/bin/python manage.py db_worker --interval 0.5 --no-reload & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/python manage.py runserver 127.0.0.1:8000

demo-cli: $(VENV)/.installed
	$(VENV)/bin/python manage.py migrate --verbosity 0
	$(VENV)/bin/python manage.py stepkit_demo

# The SQLite and PostgreSQL suites of one pair run side by side (two cores; SQLite's suite uses no PostgreSQL,
# Redis or broker, so the PostgreSQL suite's restart of the cluster cannot touch it); the two pairs one after
# the other, so that only one suite at a time uses PostgreSQL. Each suite's output is printed when it ends.
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-main test-main-pg
	$(MAKE) --no-print-directory -j2 --output-sync=target test-compat test-compat-pg
	$(MAKE) --no-print-directory package docs

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy stepkit_django tests example_project benchmarks
	$(VENV)/bin/python manage.py check --fail-level WARNING
	DJANGO_SETTINGS_MODULE=tests.settings $(VENV)/bin/python -m django makemigrations --check --dry-run

test-main: $(VENV)/.installed
	@$(VENV)/bin/python -c 'import sys, django; print("== Python %s, Django %s, SQLite" % (sys.version.split()[0], django.get_version()))'
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-main-pg: $(VENV)/.installed
	@$(VENV)/bin/python -c 'import sys, django; print("== Python %s, Django %s, PostgreSQL" % (sys.version.split()[0], django.get_version()))'
	DATABASE_URL=$(PG_URL) $(VENV)/bin/pytest $(PG_MARKS) $(PYTEST_ARGS)

test-compat: $(VENV311)/.installed
	@$(VENV311)/bin/python -c 'import sys, django; print("== Python %s, Django %s, SQLite" % (sys.version.split()[0], django.get_version()))'
	$(VENV311)/bin/pytest $(PYTEST_ARGS)

bench-engine: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/engine.py

bench-workers: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/workers.py

# The million-row queue alone: 1,000,000 checkpoints and 10,000,000 audit events in stepkit_scale (seeded once,
# about 3 minutes, kept between runs; SCALE_DATABASE_URL picks another database); rewrites its section of results.md.
bench-scale: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/scale.py

# Side by side with LangGraph and DBOS on the local PostgreSQL; writes benchmarks/results.md (the scale
# scenario included, run in a subprocess on its own database).
bench: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet --group bench
	$(VENV)/bin/python benchmarks/bench.py

clean:
	rm -rf $(VENV) $(VENV311) build *.egg-info example_project/db.sqlite3

test-compat-pg: $(VENV311)/.installed
	@$(VENV311)/bin/python -c 'import sys, django; print("== Python %s, Django %s, PostgreSQL" % (sys.version.split()[0], django.get_version()))'
	DATABASE_URL=$(PG_URL) $(VENV311)/bin/pytest $(COMPAT_PG_MARKS) $(PYTEST_ARGS)

# Build the sdist and wheel into dist/, check their metadata and contents, install the wheel
# into a fresh virtual environment (its dependencies from the index, nothing from the checkout)
# and run a smoke test there, outside the checkout: a new project, migrate, one run paused and
# approved, the admin pages rendered.
.PHONY: package
package: $(VENV)/.installed
	rm -rf dist
	$(VENV)/bin/python -m build --quiet --outdir dist .
	$(VENV)/bin/twine check --strict dist/*
	$(VENV)/bin/python scripts/check_dist.py dist
	@smoke=$$(mktemp -d "$${TMPDIR:-/tmp}/stepkit-package-smoke.XXXXXX") && trap 'rm -rf "$$smoke"' EXIT && \
	echo "== fresh environment in $$smoke: installing the wheel" && \
	$(PYTHON) -m venv "$$smoke/venv" && \
	"$$smoke/venv/bin/python" -m pip install --quiet --disable-pip-version-check dist/*.whl && \
	"$$smoke/venv/bin/python" -m pip list --disable-pip-version-check --format=freeze && \
	cd "$$smoke" && "$$smoke/venv/bin/python" -I "$(CURDIR)/scripts/package_smoke.py" "$$smoke/project"

# The translations: new and changed strings into each locale's django.po (translate them there), then the
# compiled django.mo that the package ships. Needs GNU gettext; tests/test_translations.py runs the same extraction.
LOCALES ?= fr
messages: $(VENV)/.installed
	cd stepkit_django && PYTHONPATH=.. DJANGO_SETTINGS_MODULE=tests.settings $(abspath $(VENV))/bin/python -m django \
		makemessages $(addprefix -l ,$(LOCALES)) --add-location=file --no-wrap --no-obsolete
	cd stepkit_django && PYTHONPATH=.. DJANGO_SETTINGS_MODULE=tests.settings $(abspath $(VENV))/bin/python -m django compilemessages

# The documentation site (MkDocs + Material + mkdocstrings) into site/; warnings, broken links and
# anchors fail the build. Open site/index.html: it loads nothing from another host.
.PHONY: docs
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
