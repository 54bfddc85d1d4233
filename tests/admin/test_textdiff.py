"""The word-level diff (stepkit_django.textdiff): exact, readable, and safe to put in a page."""

import html
import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from stepkit_django.textdiff import Chunk, diff_html, render, shorten, tokens, word_diff


def side(chunks, kind):
    return "".join(c.text for c in chunks if c.kind in ("equal", kind))


def visible_text(markup):
    """What a sighted reader sees: the markup without its tags and without the screen-reader labels."""
    without_labels = re.sub(r'<span class="visually-hidden">.*?</span>', "", markup)
    return html.unescape(re.sub(r"<[^>]+>", "", without_labels))


texts = st.text(alphabet=st.sampled_from(list("ab c\n\r.,<>&\"'é_1")), max_size=40)


@given(texts)
def test_tokens_give_the_text_back_exactly(text):
    assert "".join(tokens(text)) == text


@given(texts, texts)
def test_the_chunks_give_both_texts_back_exactly(before, after):
    chunks = word_diff(before, after)
    assert side(chunks, "delete") == before
    assert side(chunks, "insert") == after
    assert all(c.text for c in chunks)  # no empty chunk
    assert all(a.kind != b.kind for a, b in itertools.pairwise(chunks))  # neighbours merged


def test_a_changed_word_is_removed_and_added_the_rest_is_unchanged():
    assert word_diff("Hello Ada, thanks for writing.", "Hello Ada, thanks for your letter.") == [
        Chunk("equal", "Hello Ada, thanks for "),
        Chunk("delete", "writing"),
        Chunk("insert", "your letter"),
        Chunk("equal", "."),
    ]


def test_words_are_compared_whole_not_letter_by_letter():
    assert word_diff("within one business day", "within one day") == [
        Chunk("equal", "within one "),
        Chunk("delete", "business "),
        Chunk("equal", "day"),
    ]
    assert word_diff("cat", "cart") == [Chunk("delete", "cat"), Chunk("insert", "cart")]


def test_a_space_between_two_changed_words_belongs_to_the_change():
    assert word_diff("the cat sat", "a dog sat") == [
        Chunk("delete", "the cat"),
        Chunk("insert", "a dog"),
        Chunk("equal", " sat"),
    ]


def test_line_breaks_are_kept_and_an_added_blank_line_is_one_insertion():
    assert word_diff("Dear Ada,\nBye", "Dear Ada,\n\nBye") == [
        Chunk("equal", "Dear Ada,\n"),
        Chunk("insert", "\n"),
        Chunk("equal", "Bye"),
    ]


def test_equal_texts_are_one_unchanged_chunk():
    assert word_diff("same\ntext", "same\ntext") == [Chunk("equal", "same\ntext")]
    assert word_diff("", "") == []
    assert word_diff("", "new") == [Chunk("insert", "new")]


def test_html_marks_removed_and_added_text_for_eyes_and_screen_readers():
    markup = diff_html("pay 1500 now", "pay 1200 now")
    assert markup.startswith('<span class="stepkit-textdiff">pay ')
    assert '<del><span class="visually-hidden">[removed: </span>1500' in markup
    assert '<ins><span class="visually-hidden">[added: </span>1200' in markup
    assert markup.count('class="visually-hidden"') == 4  # start and end of each change
    assert visible_text(markup) == "pay 15001200 now"


def test_html_escapes_markup_in_every_part():
    before = 'Hi <script>alert("x")</script> & bye'
    after = "Hi <img src=x onerror=alert(1)> & <b>bye</b>"
    markup = str(diff_html(before, after))
    assert "<script" not in markup and "<img" not in markup and "<b>" not in markup
    assert "&lt;script&gt;" in markup or "&lt;" in markup
    # What remains as markup is only the diff's own tags.
    assert set(re.findall(r"</?([a-z]+)", markup)) <= {"span", "del", "ins"}
    chunks = word_diff(before, after)
    assert visible_text(str(render([c for c in chunks if c.kind != "insert"]))) == before
    assert visible_text(str(render([c for c in chunks if c.kind != "delete"]))) == after


def test_a_removed_or_added_line_break_can_be_seen():
    markup = diff_html("one\ntwo", "one\n\ntwo")
    assert "<ins>" in markup and "↵" in markup


def test_shorten_leaves_out_long_unchanged_stretches_but_keeps_context():
    words = " ".join(f"w{i}" for i in range(60))
    chunks = word_diff(words, words.replace("w30", "CHANGED"))
    short = shorten(chunks, 4)
    assert [c.kind for c in short] == ["skip", "equal", "delete", "insert", "equal", "skip"]
    assert short[1].text == "w28 w29 " and short[4].text == " w31 w32"
    assert "".join(c.text for c in short if c.kind != "insert") == words  # the skipped text is kept
    assert "unchanged words left out" in str(render(short))
    assert shorten(word_diff("a b", "a c"), 4) == word_diff("a b", "a c")  # short texts stay whole


def test_very_long_texts_are_shown_as_removed_and_added_whole():
    from stepkit_django import textdiff

    before, after = "a " * 3000, "b " * 3000
    assert len(tokens(before)) * len(tokens(after)) > textdiff.MAX_WORK
    assert word_diff(before, after) == [Chunk("delete", before), Chunk("insert", after)]


def test_shorten_keeps_the_changed_line_and_leaves_out_the_other_lines():
    before = (
        "Dear Ada Lovelace of London,\n\nthanks for your letter. Your parcel left today.\n\nBest regards,\nThe team"
    )
    after = before.replace("left today", "arrives tomorrow")
    short = shorten(word_diff(before, after), 40)
    assert [c.kind for c in short] == ["skip", "equal", "delete", "insert", "equal", "skip"]
    assert short[1].text == "thanks for your letter. Your parcel "
    assert short[4].text == "."
    assert visible_text(str(render(short))) == (
        "[…]\nthanks for your letter. Your parcel left todayarrives tomorrow.\n[…]"
    )
    few = "Dear Ada,\nYour parcel left today."  # too little to leave out
    assert shorten(word_diff(few, few.replace("left", "arrives")), 40) == word_diff(few, few.replace("left", "arrives"))
