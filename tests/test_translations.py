"""The translations: every string ``makemessages`` finds is translated in French, and the shipped ``.mo`` is
the committed ``.po`` compiled.

Adding a user-facing string without translating it fails here: run ``make messages`` (``makemessages``
then ``compilemessages``), translate the new entries of ``stepkit_django/locale/fr/LC_MESSAGES/django.po``,
run it again and commit both files.
"""

import gettext
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import translation
from django.utils.translation import gettext as gettext_
from django.utils.translation import ngettext, pgettext

from tests.pofile import Entry, read_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "stepkit_django"
LOCALES = ("fr",)
#: The options ``make messages`` passes to ``makemessages`` (one location per file: less churn in reviews).
MAKEMESSAGES_OPTIONS = {"add_location": "file", "no_wrap": True, "no_obsolete": True}

needs_gettext = pytest.mark.skipif(
    shutil.which("xgettext") is None and os.environ.get("STEPKIT_REQUIRE_GETTEXT") != "1",
    reason="makemessages needs GNU gettext (apt-get install gettext); .ci/run installs it",
)


def catalogue(language: str) -> Path:
    return PACKAGE / "locale" / language / "LC_MESSAGES" / "django.po"


def messages(language: str) -> dict[tuple[str | None, str], Entry]:
    """The committed catalogue's messages (the header left out), by context and msgid."""
    return {entry.key: entry for entry in read_po(catalogue(language))[1:]}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str | None, str], Entry]:
    """What ``makemessages`` extracts from the package as it is now: the ``.pot`` of a copy of it."""
    if shutil.which("xgettext") is None:
        pytest.fail("xgettext is missing (STEPKIT_REQUIRE_GETTEXT=1): apt-get install gettext")
    copy = tmp_path_factory.mktemp("messages") / "stepkit_django"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cwd = Path.cwd()
    os.chdir(copy)  # makemessages reads the current directory (a module fixture: monkeypatch is per test)
    try:
        call_command(
            "makemessages", locale=list(LOCALES), keep_pot=True, verbosity=0, stdout=StringIO(), **MAKEMESSAGES_OPTIONS
        )
    finally:
        os.chdir(cwd)
    return {entry.key: entry for entry in read_po(copy / "locale" / "django.pot")[1:]}


def _named(keys: Iterable[tuple[str | None, str]]) -> str:
    return "\n".join(f"  {context + ' | ' if context else ''}{msgid!r}" for context, msgid in sorted(keys, key=str))


@needs_gettext
@pytest.mark.parametrize("language", LOCALES)
def test_every_string_makemessages_finds_is_translated(extracted, language):
    committed = messages(language)
    missing = [key for key in extracted if key not in committed]
    assert not missing, f"not in {catalogue(language).relative_to(ROOT)} (run make messages):\n{_named(missing)}"
    untranslated = [key for key in extracted if not committed[key].translated]
    assert not untranslated, f"untranslated or fuzzy in the {language} catalogue:\n{_named(untranslated)}"


@needs_gettext
@pytest.mark.parametrize("language", LOCALES)
def test_the_catalogue_holds_no_message_the_code_no_longer_has(extracted, language):
    stale = [key for key in messages(language) if key not in extracted]
    assert not stale, f"in the {language} catalogue but no longer in the code (run make messages):\n{_named(stale)}"


@needs_gettext
def test_makemessages_extracts_strings_of_python_and_of_templates(extracted):
    # The extraction itself works: one string of each kind the package marks is found.
    assert (None, "Review queue") in extracted  # gettext() in admin/checkpoints.py
    assert ("review item status", "Pending") in extracted  # pgettext_lazy() in status.py
    assert (None, "Approved on timeout") in extracted  # gettext_noop() in review.py
    assert (None, "Approve and resume") in extracted  # {% translate %} in review.html
    plural = extracted[(None, "You are about to approve this item:")]  # {% blocktranslate count %}
    assert plural.plural == "You are about to approve these %(counter)s items:"


@pytest.mark.parametrize("language", LOCALES)
def test_no_message_is_fuzzy_or_empty(language):
    entries = read_po(catalogue(language))
    assert not entries[0].fuzzy, "the header is marked fuzzy"
    bad = [entry.key for entry in entries[1:] if not entry.translated]
    assert not bad, f"untranslated or fuzzy:\n{_named(bad)}"


@pytest.mark.parametrize("language", LOCALES)
def test_no_other_apps_catalogue_hides_a_translation(language):
    # Django looks a message up in the catalogues of the installed apps in their order, and the admin comes
    # before stepkit_django: a msgid the admin translates otherwise ("Run": "Exécuter") needs a context.
    hidden = []
    with translation.override(language):
        for entry in messages(language).values():
            if entry.plural is None:
                said = pgettext(entry.context, entry.msgid) if entry.context else gettext_(entry.msgid)
                if said != entry.strings[0]:
                    hidden.append(f"  {entry.msgid!r}: {said!r} instead of {entry.strings[0]!r}")
            else:
                said = ngettext(entry.msgid, entry.plural, 2)
                if said != entry.strings[2]:
                    hidden.append(f"  {entry.msgid!r} (2): {said!r} instead of {entry.strings[2]!r}")
    assert not hidden, "shown with another app's translation (give the message a context):\n" + "\n".join(hidden)


PLACEHOLDER = re.compile(r"%\(\w+\)[sdrf]|\{\w*\}")


@pytest.mark.parametrize("language", LOCALES)
def test_each_translation_keeps_the_placeholders_of_its_message(language):
    wrong = []
    for entry in messages(language).values():
        expected = sorted(PLACEHOLDER.findall(entry.plural or entry.msgid))
        for form, text in enumerate(entry.strings):
            found = sorted(PLACEHOLDER.findall(text))
            # A plural form may leave out the count ("Vous allez approuver cet élément"); no form adds one.
            if found != expected and not (entry.plural and set(found) <= set(expected) and form == 0):
                wrong.append(f"  {entry.msgid!r} [{form}]: {found} instead of {expected}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("language", LOCALES)
def test_plural_messages_have_every_form_the_language_has(language):
    header = read_po(catalogue(language))[0].strings[0]
    forms = int(re.search(r"nplurals=(\d+)", header).group(1))
    short = [entry.msgid for entry in messages(language).values() if entry.plural and len(entry.strings) != forms]
    assert not short, f"plural messages without {forms} forms: {short}"


@pytest.mark.parametrize("language", LOCALES)
def test_the_shipped_mo_is_the_committed_po_compiled(language):
    path = catalogue(language)
    with path.with_suffix(".mo").open("rb") as compiled:
        mo = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
    entries = read_po(path)
    # msgfmt leaves out the header's POT-Creation-Date (so that a new extraction alone changes no .mo).
    header = "".join(line for line in entries[0].strings[0].splitlines(True) if not line.startswith("POT-Creation"))
    expected: dict[object, str] = {"": header}
    for entry in entries[1:]:
        key = entry.msgid if entry.context is None else f"{entry.context}\x04{entry.msgid}"
        if entry.plural is None:
            expected[key] = entry.strings[0]
        else:
            expected.update({(key, form): text for form, text in enumerate(entry.strings)})
    stale = sorted(str(key) for key in expected if mo.get(key) != expected[key])
    extra = sorted(str(key) for key in mo if key not in expected)
    assert not stale and not extra, (
        f"{path.with_suffix('.mo').name} is not {path.name} compiled (run make messages): "
        f"differs for {stale[:5]}, has {extra[:5]} besides"
    )


def test_the_package_imports_without_settings(tmp_path):
    # pipelines.py modules import stepkit_django before Django is set up: marking a string for translation
    # at import time must not read the settings (gettext_noop does; the lazy functions do not).
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    code = "import stepkit_django, stepkit_django.status, stepkit_django.inputs, stepkit_django.exceptions"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
