"""Word-level differences between two texts, as data and as accessible, escaped HTML.

Pure: no models, no settings. The texts are cut into words, line breaks, runs of other
whitespace and single punctuation marks (:func:`tokens`; joined again they give the text back
exactly), compared with :class:`difflib.SequenceMatcher`, and returned as
:class:`Chunk` objects: unchanged, removed or added text. :func:`diff_html` renders
them with ``<del>`` and ``<ins>``, each announced to screen readers by a visually
hidden label, every piece of text escaped (reviewed data often comes from a model's
output: it may hold markup).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

__all__ = ["Chunk", "diff_html", "render", "shorten", "tokens", "word_diff"]

Kind = Literal["equal", "delete", "insert", "skip"]

#: A word, a line break, a run of other whitespace, or any other single character.
_TOKEN = re.compile(r"\w+|\r\n|\n|\r|[^\S\r\n]+|[^\w\s]")
_WORD = re.compile(r"\w")

#: Above this many token comparisons, texts are shown as removed and added whole: SequenceMatcher is
#: quadratic in the worst case, and a review page must not take seconds to render.
MAX_WORK = 4_000_000


@dataclass(frozen=True)
class Chunk:
    """A piece of text: ``equal`` (in both), ``delete`` (only before), ``insert`` (only after), or ``skip``
    (unchanged text left out by :func:`shorten`)."""

    kind: Kind
    text: str


def tokens(text: str) -> list[str]:
    """``text`` cut into words, line breaks (one token each), other whitespace runs and punctuation marks.

    ``"".join(tokens(text)) == text``.
    """
    return _TOKEN.findall(text)


def word_diff(before: str, after: str) -> list[Chunk]:
    """The chunks that turn ``before`` into ``after``, word by word.

    Joining the ``equal`` and ``delete`` chunks gives ``before``; the ``equal`` and
    ``insert`` chunks give ``after``. Within a change, a deletion comes before its
    insertion; a space or a few punctuation marks alone between two changes are counted
    in the change, so that "the cat" → "a dog" reads as one replacement, not two.
    """
    if before == after:
        return [Chunk("equal", before)] if before else []
    old, new = tokens(before), tokens(after)
    if len(old) * len(new) > MAX_WORK:
        return _merged([Chunk("delete", before), Chunk("insert", after)])
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    chunks: list[Chunk] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            chunks.append(Chunk("equal", "".join(old[i1:i2])))
            continue
        if i2 > i1:
            chunks.append(Chunk("delete", "".join(old[i1:i2])))
        if j2 > j1:
            chunks.append(Chunk("insert", "".join(new[j1:j2])))
    return _merged(_absorb_lone_whitespace(chunks))


def _absorb_lone_whitespace(chunks: list[Chunk]) -> list[Chunk]:
    """Unchanged whitespace or punctuation alone between two changes becomes part of both (removed and added
    again): "<b>x</b>" → "<i>y</i>" reads as one replacement, not three."""
    result: list[Chunk] = []
    for index, chunk in enumerate(chunks):
        between_changes = 0 < index < len(chunks) - 1 and "equal" not in (
            chunks[index - 1].kind,
            chunks[index + 1].kind,
        )
        if chunk.kind == "equal" and between_changes and _is_filler(chunk.text):
            result += [Chunk("delete", chunk.text), Chunk("insert", chunk.text)]
        else:
            result.append(chunk)
    return result


def _is_filler(text: str) -> bool:
    """Whitespace without a line break, or at most three punctuation marks: too little to read as unchanged."""
    if not text.strip():
        return "\n" not in text and "\r" not in text
    return len(text.strip()) <= 3 and not _WORD.search(text) and "\n" not in text


def _merged(chunks: list[Chunk]) -> list[Chunk]:
    """Adjacent chunks of one kind joined; between two equal chunks, deletions before insertions; no empty chunk."""
    result: list[Chunk] = []
    pending: dict[str, list[str]] = {"delete": [], "insert": []}

    def flush() -> None:
        for kind in ("delete", "insert"):
            if pending[kind]:
                result.append(Chunk(kind, "".join(pending[kind])))
                pending[kind] = []

    for chunk in chunks:
        if not chunk.text:
            continue
        if chunk.kind in pending:
            pending[chunk.kind].append(chunk.text)
            continue
        flush()
        if result and result[-1].kind == chunk.kind:
            result[-1] = Chunk(chunk.kind, result[-1].text + chunk.text)
        else:
            result.append(chunk)
    flush()
    return result


#: A stretch of unchanged text is left out only when it holds more words than this.
MIN_SKIPPED_WORDS = 3


def shorten(chunks: list[Chunk], context: int) -> list[Chunk]:
    """``chunks`` with long unchanged stretches left out, keeping around each change at most ``context``
    tokens of its own line.

    What is left out becomes a ``skip`` chunk holding the text it stands for.
    """
    result: list[Chunk] = []
    last = len(chunks) - 1
    for index, chunk in enumerate(chunks):
        if chunk.kind != "equal":
            result.append(chunk)
            continue
        parts = tokens(chunk.text)
        head = _within_line(parts, context) if index > 0 else 0  # after a change: the rest of its line
        tail = _within_line(parts[::-1], context) if index < last else 0  # before a change: its line so far
        skipped = parts[head : len(parts) - tail]
        if sum(1 for token in skipped if _WORD.match(token)) <= MIN_SKIPPED_WORDS:
            result.append(chunk)
            continue
        result += [
            Chunk("equal", "".join(parts[:head])),
            Chunk("skip", "".join(skipped)),
            Chunk("equal", "".join(parts[len(parts) - tail :])),
        ]
    return [chunk for chunk in result if chunk.text]


def _within_line(parts: list[str], limit: int) -> int:
    """How many of ``parts`` to keep: at most ``limit``, and none from the first line break on."""
    for count, token in enumerate(parts[:limit]):
        if token in ("\n", "\r\n", "\r"):
            return count
    return min(limit, len(parts))


def _changed_text(text: str) -> SafeString:
    """Removed or added text, escaped; a line break alone is shown as ↵ so that it can be seen."""
    if text.strip():
        return escape(text)
    return mark_safe("".join("↵\n" if char == "\n" else escape(char) for char in text if char != "\r"))


def _edge(char: str) -> str:
    """What to put between a ``[…]`` marker and the text next to it: a line break, a space, or nothing."""
    if char in "\r\n":
        return "\n"
    return " " if char.isspace() else ""


def render(chunks: list[Chunk]) -> SafeString:
    """``chunks`` as HTML: ``<del>`` and ``<ins>`` with visually hidden labels, ``…`` for skipped text."""
    removed, added = gettext("removed:"), gettext("added:")
    end = gettext("end of change")
    parts: list[str] = []
    for chunk in chunks:
        if chunk.kind == "equal":
            parts.append(escape(chunk.text))
        elif chunk.kind == "skip":
            count = sum(1 for token in tokens(chunk.text) if _WORD.match(token))
            label = ngettext("%(count)d unchanged word left out", "%(count)d unchanged words left out", count) % {
                "count": count
            }
            # On a line of its own when it stands for whole lines.
            before = _edge(chunk.text[0])
            after = _edge(chunk.text[-1])
            marker = format_html('<span class="stepkit-skipped" title="{}">[…]</span>', label)
            parts.append(format_html("{}{}{}", before, marker, after))
        else:
            tag, label = ("del", removed) if chunk.kind == "delete" else ("ins", added)
            parts.append(
                format_html(
                    '<{}><span class="visually-hidden">[{} </span>{}<span class="visually-hidden"> {}]</span></{}>',
                    tag,
                    label,
                    _changed_text(chunk.text),
                    end,
                    tag,
                )
            )
    # Every part was escaped above (escape, format_html).
    return mark_safe('<span class="stepkit-textdiff">' + "".join(parts) + "</span>")


def diff_html(before: str, after: str, *, context: int | None = None) -> SafeString:
    """The word-level difference of ``before`` and ``after`` as HTML (see :func:`render`).

    ``context``: keep that many tokens of unchanged text around each change and leave
    out the rest (None: keep everything).
    """
    chunks = word_diff(before, after)
    return render(shorten(chunks, context) if context is not None else chunks)
