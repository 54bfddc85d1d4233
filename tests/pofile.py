"""A small reader of gettext ``.po`` files, enough for the translation tests (no dependency on polib).

It reads what ``makemessages`` writes: comments, flags (``#, fuzzy, python-format``), ``msgctxt``,
``msgid``, ``msgid_plural``, ``msgstr`` and ``msgstr[n]``, strings continued over several lines,
and obsolete entries (``#~``), which it skips.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Entry", "read_po"]


@dataclass
class Entry:
    """One message of a catalogue."""

    msgid: str
    context: str | None = None
    plural: str | None = None
    #: ``msgstr``, or ``msgstr[0]``, ``msgstr[1]``… of a message with a plural.
    strings: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    locations: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str | None, str]:
        """What identifies the message: its context and its msgid."""
        return (self.context, self.msgid)

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags

    @property
    def translated(self) -> bool:
        """Every form has a translation, and none is fuzzy."""
        return bool(self.strings) and all(self.strings) and not self.fuzzy


def _unquote(text: str) -> str:
    text = text.strip()
    if not (text.startswith('"') and text.endswith('"')):
        raise ValueError(f"not a quoted string: {text!r}")
    return str(ast.literal_eval(text))


def read_po(path: Path) -> list[Entry]:
    """The entries of ``path``, the header (msgid ``""``) first, obsolete ones left out."""
    entries: list[Entry] = []
    current: Entry | None = None
    target: tuple[str, int] | None = None  # ("msgid" | "plural" | "context" | "msgstr", index)
    pending_flags: set[str] = set()
    pending_locations: list[str] = []

    def finish() -> None:
        nonlocal current
        if current is not None:
            entries.append(current)
        current = None

    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#,"):
            finish()
            pending_flags |= {flag.strip() for flag in line[2:].split(",") if flag.strip()}
            continue
        if line.startswith("#:"):
            finish()
            pending_locations += line[2:].split()
            continue
        if line.startswith("#"):
            finish()
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgctxt" or (keyword == "msgid" and (current is None or current.strings)):
            finish()
        if keyword in ("msgctxt", "msgid") and current is None:
            current = Entry(msgid="", flags=pending_flags, locations=pending_locations)
            pending_flags, pending_locations = set(), []
        if line.startswith('"'):
            if current is None or target is None:
                raise ValueError(f"a continued string outside an entry: {raw!r}")
            name, index = target
            value = _unquote(line)
            if name == "msgid":
                current.msgid += value
            elif name == "plural":
                current.plural = (current.plural or "") + value
            elif name == "context":
                current.context = (current.context or "") + value
            else:
                current.strings[index] += value
            continue
        if current is None:
            raise ValueError(f"{keyword} outside an entry: {raw!r}")
        value = _unquote(rest)
        if keyword == "msgctxt":
            current.context, target = value, ("context", 0)
        elif keyword == "msgid":
            current.msgid, target = value, ("msgid", 0)
        elif keyword == "msgid_plural":
            current.plural, target = value, ("plural", 0)
        elif keyword == "msgstr":
            current.strings.append(value)
            target = ("msgstr", len(current.strings) - 1)
        elif keyword.startswith("msgstr["):
            index = int(keyword[len("msgstr[") : -1])
            if index != len(current.strings):
                raise ValueError(f"plural forms out of order: {raw!r}")
            current.strings.append(value)
            target = ("msgstr", index)
        else:
            raise ValueError(f"unknown keyword {keyword!r}: {raw!r}")
    finish()
    return entries
