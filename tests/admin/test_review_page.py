"""The review page as an editor uses it: fields typed from the value, no false edits, the data readable."""

from html.parser import HTMLParser

import pytest

from stepkit_django import Review, review, start, stepkit
from stepkit_django.admin.checkpoints import CheckpointAdmin
from stepkit_django.models import AuditEvent, Checkpoint
from stepkit_django.reviewing.forms import NumberField, PrettyJSONField, TextField
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db

QUEUE = "/admin/stepkit_django/checkpoint/"
LETTER = "Dear Ada,\n\nthanks for your letter.\nYour parcel left today.\n\nBest regards,\nThe team"


@pytest.fixture
def bob(people, client):
    people.bob.is_staff = True
    people.bob.save(update_fields=["is_staff"])
    client.force_login(people.bob)
    return client


def page(cp):
    return f"{QUEUE}{cp.pk}/change/"


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def paused_with(registered_pipelines, people, context, *, name="letter", **review_options):
    """A run of a one-step pipeline that pauses with ``context`` (``editable`` defaults to all its keys)."""
    review_options.setdefault("editable", list(context))

    def send(ctx):
        SideEffect.objects.create(kind="sent", key=name, payload=ctx)
        return {}

    registered_pipelines(stepkit(name).step("draft", lambda c: dict(context), review=Review(**review_options)).step(
        "send", send
    ))  # fmt: skip
    return start(name, {}, user=people.alice).checkpoints.get()


def as_the_browser_sends(form):
    """The POST of the review form as the page showed it, sent back untouched by a browser.

    Text areas come back with CRLF line breaks, unchecked boxes not at all, everything else as
    the text the field showed.
    """
    data = {"expected_version": form.initial["expected_version"], "comment": ""}
    for field in form.edit_fields():
        value = field.value()
        widget = field.field.widget
        if getattr(widget, "input_type", None) == "checkbox":
            if value:
                data[field.html_name] = "on"
            continue
        text = "" if value is None else str(value)
        if widget.__class__.__name__ == "Textarea":
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        data[field.html_name] = text
    return data


def post(client, cp, action, data):
    return client.post(page(cp), {**data, "_action": action}, follow=True)


# -- fields typed from the value ------------------------------------------------------------------


EVERY_KIND = {
    "subject": "Your parcel",
    "body": LETTER,
    "summary": "A sentence that is long enough to need more than one line of a one-line input box, surely.",
    "amount": 1500,
    "rate": 0.25,
    "urgent": False,
    "tags": ["parcel", "late"],
    "meta": {"source": "model", "score": 0.9},
    "note": None,
}


def test_without_a_schema_fields_are_typed_from_the_value(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, EVERY_KIND)
    form = bob.get(page(cp)).context["form"]
    fields = {name.removeprefix("edit__"): form.fields[name] for name in form.fields if name.startswith("edit__")}
    kinds = {key: (type(f).__name__, type(f.widget).__name__) for key, f in fields.items()}
    assert kinds == {
        "subject": ("TextField", "TextInput"),  # one line: a one-line input
        "body": ("TextField", "Textarea"),  # line breaks: a text area
        "summary": ("TextField", "Textarea"),  # longer than 80 characters
        "amount": ("IntegerField", "NumberInput"),
        "rate": ("NumberField", "NumberInput"),
        "urgent": ("BooleanField", "CheckboxInput"),
        "tags": ("PrettyJSONField", "Textarea"),
        "meta": ("PrettyJSONField", "Textarea"),
        "note": ("PrettyJSONField", "Textarea"),
    }


def test_plain_text_without_a_schema_is_saved_as_typed_without_json_quotes(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, {"subject": "Your parcel", "body": LETTER})
    response = post(
        bob, cp, "edit", {"expected_version": cp.version, "edit__subject": "Your parcel, today", "edit__body": LETTER}
    )
    assert messages_of(response) == ["Saved edits to subject."]
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {"subject": "Your parcel, today"}


@pytest.mark.parametrize(
    "schema",
    [None, {"type": "integer"}, {"type": "number"}],
    ids=["no-schema", "schema-integer", "schema-number"],
)
def test_an_integer_amount_edited_to_1200_is_stored_as_the_integer_1200(people, bob, registered_pipelines, schema):
    options = {"schema": {"type": "object", "properties": {"amount": schema}}} if schema else {}
    cp = paused_with(registered_pipelines, people, {"amount": 1500}, **options)
    response = post(bob, cp, "approve", {"expected_version": cp.version, "edit__amount": "1200", "comment": ""})
    assert messages_of(response)[0].startswith("Approved “")
    stored = Checkpoint.objects.get(pk=cp.pk).override_data["amount"]
    assert stored == 1200 and type(stored) is int  # not 1200.0
    assert type(SideEffect.objects.get().payload["amount"]) is int  # the run resumed with it
    edit = AuditEvent.objects.get(action="edited").data["changes"]["amount"]
    assert edit == {"before": 1500, "after": 1200} and type(edit["after"]) is int


def test_numbers_keep_their_kind(people, bob, registered_pipelines):
    schema = {"type": "object", "properties": {"rate": {"type": "number"}, "amount": {"type": "number"}}}
    cp = paused_with(registered_pipelines, people, {"rate": 0.25, "amount": 1500}, schema=schema)
    post(bob, cp, "edit", {"expected_version": cp.version, "edit__rate": "1", "edit__amount": "1200.5"})
    edits = Checkpoint.objects.get(pk=cp.pk).override_data
    assert edits == {"rate": 1.0, "amount": 1200.5}
    assert type(edits["rate"]) is float  # it was a float: it stays one


def test_a_number_field_refuses_what_is_not_a_number_and_changes_nothing(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, {"amount": 1500, "rate": 0.5})
    for data in ({"edit__amount": "12 hundred", "edit__rate": "0.5"}, {"edit__amount": "1" * 5000, "edit__rate": "0.5"},
                 {"edit__amount": "1500", "edit__rate": "1" * 5000}):  # fmt: skip
        response = post(bob, cp, "approve", {"expected_version": cp.version, **data})
        assert response.status_code == 200
        assert messages_of(response) == ["Please correct the errors below."]
    assert Checkpoint.objects.get(pk=cp.pk).version == cp.version
    assert not AuditEvent.objects.filter(action__in=["edited", "approved"]).exists()


def test_number_field_keeps_whole_numbers_whole_only_when_the_value_was_not_a_float():
    assert NumberField(current=1500).clean("1200") == 1200
    assert type(NumberField(current=1500).clean("1200")) is int
    assert type(NumberField(current=None).clean("7")) is int
    assert type(NumberField(current=1500).clean("1200.0")) is float  # typed with a decimal point
    assert type(NumberField(current=2.5).clean("3")) is float


def test_a_boolean_is_a_checkbox_and_unticking_it_stores_false(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, {"urgent": True, "subject": "s"})
    post(bob, cp, "edit", {"expected_version": cp.version, "edit__subject": "s"})  # the box unticked
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {"urgent": False}


def test_with_a_schema_its_types_decide_and_integers_stay_integers(people, bob, registered_pipelines):
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "code": {"type": "string", "maxLength": 10},
            "title": {"type": "string", "minLength": 1},
            "letter": {"type": "string", "maxLength": 5000},
        },
    }
    context = {"count": 2, "ratio": 1, "flag": False, "code": "AB", "title": "One line", "letter": "Short for now",
               "other": "described by no property"}  # fmt: skip
    cp = paused_with(registered_pipelines, people, context, schema=schema)
    form = bob.get(page(cp)).context["form"]
    assert type(form.fields["edit__count"]).__name__ == "IntegerField"
    assert isinstance(form.fields["edit__ratio"], NumberField)
    assert type(form.fields["edit__flag"]).__name__ == "BooleanField"
    assert isinstance(form.fields["edit__code"], TextField) and form.fields["edit__code"].max_length == 10
    widgets = {key: type(form.fields[f"edit__{key}"].widget).__name__ for key in ("code", "title", "letter")}
    assert widgets == {"code": "TextInput", "title": "TextInput", "letter": "Textarea"}  # the value, or room for more
    assert isinstance(form.fields["edit__other"], TextField)  # the schema says nothing: typed from the value
    assert not isinstance(form.fields["edit__other"], PrettyJSONField)


# -- no false edits -------------------------------------------------------------------------------


TEXT_SCHEMA = {"type": "object", "properties": {"body": {"type": "string", "minLength": 1}}}


@pytest.mark.parametrize("schema", [TEXT_SCHEMA, None], ids=["string-schema", "no-schema"])
def test_approving_a_letter_untouched_records_no_edit_and_sends_it_unchanged(people, bob, registered_pipelines, schema):
    cp = paused_with(registered_pipelines, people, {"body": LETTER}, editable=["body"], schema=schema)
    data = as_the_browser_sends(bob.get(page(cp)).context["form"])
    assert "\r\n" in data["edit__body"]  # as a browser sends a text area
    response = post(bob, cp, "approve", data)
    assert messages_of(response)[0].startswith("Approved “")
    cp.refresh_from_db()
    assert cp.override_data == {}
    assert not AuditEvent.objects.filter(action="edited").exists()
    assert SideEffect.objects.get().payload["body"] == LETTER  # "\n", as the model wrote it


def test_saving_a_page_submitted_as_shown_changes_nothing(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, EVERY_KIND)
    events = AuditEvent.objects.count()
    data = as_the_browser_sends(bob.get(page(cp)).context["form"])
    response = post(bob, cp, "edit", data)
    assert messages_of(response) == ["Nothing changed."]
    assert Checkpoint.objects.get(pk=cp.pk).version == cp.version  # no new version
    assert AuditEvent.objects.count() == events
    # and approving it untouched sends no override at all
    response = post(bob, cp, "approve", data)
    assert messages_of(response)[0].startswith("Approved “")
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {}
    assert not AuditEvent.objects.filter(action="edited").exists()
    payload = SideEffect.objects.get().payload
    assert payload.pop("review")["outcome"] == "approved"  # the decision, which the next step reads
    assert payload == EVERY_KIND


def test_the_form_sends_only_the_keys_whose_value_changed(people, bob, registered_pipelines, monkeypatch):
    cp = paused_with(registered_pipelines, people, EVERY_KIND)
    sent = []
    monkeypatch.setattr(review, "approve", lambda cp, user, override, *a, **k: sent.append(override))
    data = as_the_browser_sends(bob.get(page(cp)).context["form"])
    post(bob, cp, "approve", {**data, "edit__amount": "1200"})
    post(bob, cp, "approve", data)
    assert sent == [{"amount": 1200}, None]


def test_edited_text_keeps_the_line_endings_of_the_value(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, {"body": LETTER, "crlf": "one\r\ntwo"})
    data = as_the_browser_sends(bob.get(page(cp)).context["form"])
    data["edit__body"] = data["edit__body"].replace("today", "this morning")
    data["edit__crlf"] = "one\r\ntwo\r\nthree"
    post(bob, cp, "edit", data)
    edits = Checkpoint.objects.get(pk=cp.pk).override_data
    assert edits == {"body": LETTER.replace("today", "this morning"), "crlf": "one\r\ntwo\r\nthree"}
    assert "\r" not in edits["body"]


def test_text_field_returns_the_current_value_for_text_equal_but_for_line_endings():
    field = TextField(current="a\nb")
    assert field.clean("a\r\nb") == "a\nb"
    assert field.clean("a\r\nb\r\nc") == "a\nb\nc"
    assert TextField(current="a\r\nb").clean("a\nb") == "a\r\nb"
    assert TextField(current="a\r\nb").clean("a\r\nc") == "a\r\nc"
    assert TextField(current="  padded ").clean("  padded ") == "  padded "  # not stripped


# -- the data, readable ---------------------------------------------------------------------------


def test_the_data_is_a_table_with_line_breaks_kept_and_nested_values_folded(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, EVERY_KIND)
    response = bob.get(page(cp))
    html = response.content.decode()
    rows = {row.key: row for row in response.context["data_rows"]}
    assert list(rows) == list(EVERY_KIND)  # as editable lists them, on every database
    assert f'<div class="stepkit-text">{LETTER}</div>' in html  # the text itself, its line breaks kept
    assert "\\n" not in html.split('id="context-json"')[0]  # no JSON escapes before the raw JSON block
    assert rows["tags"].cell.kind == "nested"
    assert (
        '<details class="stepkit-more"><summary><code>[&quot;parcel&quot;, &quot;late&quot;]</code> (2 items)' in html
    )
    assert (
        "{\n  &quot;score&quot;: 0.9,\n  &quot;source&quot;: &quot;model&quot;\n}</pre></details>" in html
    )  # keys sorted
    assert rows["urgent"].cell.text == "No" and rows["note"].cell.text == "(no value)"
    assert "Nothing has been edited." in html


def test_edited_keys_are_marked_in_words_and_their_changes_shown_word_by_word(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, {"subject": "Your parcel", "body": LETTER})
    review.edit(cp, people.carol, {"body": LETTER.replace("left today", "arrives tomorrow")})
    response = bob.get(page(cp))
    html = response.content.decode()
    rows = {row.key: row for row in response.context["data_rows"]}
    assert rows["body"].edited and not rows["subject"].edited
    assert '<th scope="row">body <span class="stepkit-badge">Edited</span></th>' in html
    assert '<th scope="row">subject</th>' in html
    assert "Edited: body." in html
    diff = str(rows["body"].change.diff)
    assert '<del><span class="visually-hidden">[removed: </span>left today' in diff
    assert '<ins><span class="visually-hidden">[added: </span>arrives tomorrow' in diff
    assert diff in html


def test_model_output_with_markup_is_shown_as_text_never_run(people, bob, registered_pipelines):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    cp = paused_with(registered_pipelines, people, {"body": f"Hello {evil}", "evil_key<b>": 1})
    review.edit(cp, people.carol, {"body": f"Bye {evil} <script>more()</script>"})
    html = bob.get(page(cp)).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<script>more" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_the_heading_is_the_checkpoint_title(people, bob, registered_pipelines):
    run = start("email-approval", {"message": "m", "customer": "Ada", "to": "a@example.com"}, user=people.alice)
    cp = run.checkpoints.get()
    assert "<h1>Email approval: generate</h1>" in bob.get(page(cp)).content.decode()  # no Review title: the default
    registered_pipelines(
        stepkit("parcel").step("draft", lambda ctx: {}, review=Review(title="Reply to {customer} about her parcel"))
    )
    titled = start("parcel", {"customer": "Ada"}, user=people.alice).checkpoints.get()
    assert "<h1>Reply to Ada about her parcel</h1>" in bob.get(page(titled)).content.decode()
    titled.title = ""  # a row without one (written around the app)
    assert CheckpointAdmin._heading(titled) == "Review: parcel / draft"


# -- keyboard and labels --------------------------------------------------------------------------


class Controls(HTMLParser):
    """The review form's controls, its labels and its first submit button."""

    def __init__(self):
        super().__init__()
        self.form = None
        self.controls, self.labels, self.buttons = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.form = attrs.get("id")
        if self.form != "review-form":
            return
        if tag == "label" and attrs.get("for"):
            self.labels.add(attrs["for"])
        if tag in ("input", "textarea", "select") and attrs.get("type") != "hidden":
            self.controls.append(attrs.get("id"))
        if tag == "button":
            self.buttons.append(attrs.get("value"))

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None


def test_every_field_has_its_label_and_enter_saves_edits_rather_than_deciding(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, EVERY_KIND)
    parser = Controls()
    parser.feed(bob.get(page(cp)).content.decode())
    assert len(parser.controls) == len(EVERY_KIND) + 1  # and the comment
    assert set(parser.controls) <= parser.labels
    # Enter in a one-line field presses the form's first submit button.
    assert parser.buttons == ["edit", "approve", "request_changes", "reject"]


def test_rejecting_without_the_required_reason_shows_the_error_at_the_comment_and_keeps_the_page(
    people, bob, registered_pipelines
):
    cp = paused_with(registered_pipelines, people, {"body": LETTER}, require_reject_reason=True)
    html = bob.get(page(cp)).content.decode()
    assert "To reject, say why: the reason is required." in html
    data = as_the_browser_sends(bob.get(page(cp)).context["form"])
    response = post(bob, cp, "reject", {**data, "edit__body": "typed, not lost"})
    assert response.status_code == 200 and not response.redirect_chain
    assert messages_of(response) == ["The decision was refused; see the errors below."]
    assert response.context["form"].errors["comment"] == ["Say why you reject this: the reason is required."]
    assert response.context["form"]["edit__body"].value() == "typed, not lost"
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_the_table_lists_what_cannot_be_edited_first_then_the_editable_keys_in_order(people, bob, registered_pipelines):
    context = {"to": "ada@example.com", "customer": "Ada", "body": LETTER, "subject": "Your parcel"}
    cp = paused_with(registered_pipelines, people, context, editable=["subject", "body"])
    rows = bob.get(page(cp)).context["data_rows"]
    assert [row.key for row in rows] == ["customer", "to", "subject", "body"]


def test_a_decided_item_says_where_it_was_reviewed_and_shows_no_deadline(people, bob, registered_pipelines):
    from datetime import timedelta

    cp = paused_with(registered_pipelines, people, {"note": "hi"}, timeout=timedelta(days=1))
    pending = bob.get(page(cp)).content.decode()
    assert "paused here (draft)" in pending and "to run after approval" in pending
    assert ">Due</th>" in pending
    review.reject(cp, people.bob, "no")
    decided = bob.get(page(cp)).content.decode()
    assert "reviewed here (draft)" in decided and "after this review" in decided
    assert "paused here" not in decided and "to run after approval" not in decided
    assert ">Due</th>" not in decided


def test_the_assignees_are_listed_with_commas(people, bob, registered_pipelines):
    cp = paused_with(registered_pipelines, people, {"note": "hi"}, assign_to_group="editors", assign_to_user="carol")
    html = bob.get(page(cp)).content.decode()
    assert '<td id="assigned-to">editors, carol' in html


def test_once_no_more_changes_may_be_requested_the_comment_is_not_said_to_be_needed_for_it(
    people, bob, registered_pipelines
):
    cp = paused_with(registered_pipelines, people, {"note": "hi"}, max_revisions=0)
    html = bob.get(page(cp)).content.decode()
    assert "Required to request changes" not in html
    assert "Optional: the person who started the run and the trail show it." in html
