"""Titles and summaries: what tells one item of the queue from the next, filled in when the run pauses."""

import pytest

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import Checkpoint
from stepkit_django.review_spec import MAX_TITLE_LENGTH, default_title
from stepkit_django.status import RunStatus

pytestmark = pytest.mark.django_db

PAYMENT = {"payee": "ACME Ltd", "amount": 1200, "invoice_no": "INV-7", "iban": "DE02 1203"}


def paused_with(registered_pipelines, people, spec, data=PAYMENT, name="pay-titles"):
    registered_pipelines(stepkit(name).step("check", lambda ctx: {"checked": True}, review=spec))
    return start(name, data, user=people.alice)


def returning(value):
    return lambda ctx: value


def raising(error):
    def fail(ctx):
        raise error

    return fail


# -- titles -------------------------------------------------------------------------------------


def test_a_format_string_title_is_filled_in_from_the_context_when_the_run_pauses(people, registered_pipelines):
    run = paused_with(registered_pipelines, people, Review(title="Pay {payee} {amount:,.2f} EUR"))
    checkpoint = run.checkpoints.get()
    assert checkpoint.title == "Pay ACME Ltd 1,200.00 EUR"
    assert checkpoint.review["title"] == "Pay ACME Ltd 1,200.00 EUR"  # its settings: the title as shown


def test_the_title_sees_the_context_after_the_step_and_nested_keys(people, registered_pipelines):
    registered_pipelines(
        stepkit("nested-title").step(
            "check", lambda ctx: {"account": {"owner": "Grace"}}, review=Review(title="{account[owner]}: {payee}")
        )
    )
    run = start("nested-title", PAYMENT, user=people.alice)
    assert run.checkpoints.get().title == "Grace: ACME Ltd"


def test_a_callable_title_receives_the_context(people, registered_pipelines):
    run = paused_with(registered_pipelines, people, Review(title=lambda ctx: f"{ctx['payee'].upper()} ({ctx['iban']})"))
    assert run.checkpoints.get().title == "ACME LTD (DE02 1203)"


def test_a_plain_string_is_just_a_title_and_double_braces_are_literal(people, registered_pipelines):
    run = paused_with(registered_pipelines, people, Review(title="Payments over 1000 need a manager"))
    assert run.checkpoints.get().title == "Payments over 1000 need a manager"
    run = paused_with(registered_pipelines, people, Review(title="{{draft}} for {payee}"), name="braces")
    assert run.checkpoints.get().title == "{draft} for ACME Ltd"


def test_without_a_title_the_pipeline_and_step_are_humanised(people, registered_pipelines):
    run = paused_with(registered_pipelines, people, Review())
    assert run.checkpoints.get().title == "Pay titles: check"
    assert default_title("content-moderation", "route/suspicious/hold") == (
        "Content moderation: route / suspicious / hold"
    )
    # A title that renders empty (or blank) falls back too.
    run = paused_with(registered_pipelines, people, Review(title="{memo}"), {"memo": "  "}, name="blank")
    assert run.checkpoints.get().title == "Blank: check"


def test_a_long_title_is_cut_with_an_ellipsis_and_kept_on_one_line(people, registered_pipelines):
    data = {"text": "word\nnext " * 100}
    run = paused_with(registered_pipelines, people, Review(title="Check {text}"), data)
    title = run.checkpoints.get().title
    assert len(title) == MAX_TITLE_LENGTH and title.endswith("…")
    assert title.startswith("Check word next word next") and "\n" not in title


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (Review(title="Pay {payee} {currency}"), "its title 'Pay {payee} {currency}' names the key 'currency', "),
        (Review(title="{account[owner]}"), "names the key 'account'"),
        (Review(title="{amount:%Y}"), "its title '{amount:%Y}' cannot be filled in from the context"),
        (Review(title=lambda ctx: ctx["currency"]), "its title function raised KeyError: 'currency'"),
        (Review(title=lambda ctx: ctx["amount"]), "its title function returned int, not a string"),
        (Review(summary=["payee", "currency"]), "its summary names the key(s) 'currency', which the context"),
        (Review(summary=raising(ZeroDivisionError("no"))), "its summary function raised ZeroDivisionError: no"),
        (Review(summary=returning(["payee"])), "its summary function returned list, not a mapping"),
        (Review(summary=returning({1: "x"})), "its summary function returned the label 1, not a string"),
        (Review(summary=returning({str(i): i for i in range(7)})), "returned 7 entries; at most 6"),
    ],
)
def test_a_title_or_summary_that_cannot_be_filled_in_fails_the_run_naming_the_step_and_the_key(
    people, registered_pipelines, spec, says
):
    run = paused_with(registered_pipelines, people, spec)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("ReviewMisconfigured: Review of step 'check': ")
    assert says in run.error
    assert not Checkpoint.objects.filter(run=run).exists()  # nobody gets an item they cannot tell apart


def test_a_missing_key_message_lists_the_keys_the_context_has(people, registered_pipelines):
    run = paused_with(registered_pipelines, people, Review(title="{payer}"))
    assert "(it has 'amount', 'checked', 'iban', 'invoice_no', 'payee')" in run.error


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"title": "Pay {payee"}, "is not a valid format string"),
        ({"title": "Pay {} now"}, "each {...} must name a context key"),
        ({"title": "Pay {0}"}, "each {...} must name a context key"),
        ({"title": 42}, "must be a string"),
        ({"summary": "payee"}, "must be a list of context key names"),
        ({"summary": ["a", "b", "c", "d", "e", "f", "g"]}, "names more than 6 keys"),
    ],
)
def test_a_malformed_title_or_summary_is_refused_when_the_review_is_declared(kwargs, error):
    with pytest.raises((TypeError, ValueError), match=error.replace("{", r"\{").replace(".", r"\.")):
        Review(**kwargs)


# -- summaries ----------------------------------------------------------------------------------


def test_a_summary_of_key_names_labels_them_for_people(people, registered_pipelines):
    run = paused_with(registered_pipelines, people, Review(summary=["invoice_no", "amount", "iban"]))
    assert run.checkpoints.get().summary == {"Invoice no": "INV-7", "Amount": "1200", "Iban": "DE02 1203"}


def test_a_summary_callable_chooses_its_labels_and_values_become_short_strings(people, registered_pipelines):
    def summary(ctx):
        return {"Invoice": ctx["invoice_no"], "Lines": [1, 2], "Memo": None, "Note": "x" * 500}

    run = paused_with(registered_pipelines, people, Review(summary=summary))
    stored = run.checkpoints.get().summary
    assert stored["Invoice"] == "INV-7" and stored["Lines"] == "[1, 2]" and stored["Memo"] == ""
    assert len(stored["Note"]) == 120 and stored["Note"].endswith("…")


def test_without_a_summary_it_is_empty(people, registered_pipelines):
    assert paused_with(registered_pipelines, people, Review()).checkpoints.get().summary == {}


def test_a_reopened_review_keeps_its_title_and_summary(people, registered_pipelines):
    from datetime import timedelta

    from django.utils import timezone

    spec = Review(title="Pay {payee}", summary=["invoice_no"], timeout=timedelta(hours=1), on_timeout="fail")
    run = paused_with(registered_pipelines, people, spec)
    Checkpoint.objects.filter(run=run).update(expires_at=timezone.now() - timedelta(minutes=1))
    review.expire_due()
    run = review.retry_run(run, people.alice)
    reopened = Checkpoint.objects.filter(run=run).latest("created_at")
    assert reopened.is_pending
    assert (reopened.title, reopened.summary) == ("Pay ACME Ltd", {"Invoice no": "INV-7"})


def test_the_review_settings_keep_the_title_template_and_the_summary_keys(registered_pipelines):
    spec = Review(title="Pay {payee}", summary=["payee"])
    assert (spec.snapshot()["title"], spec.snapshot()["summary"]) == ("Pay {payee}", ["payee"])
    callables = Review(title=lambda ctx: "t", summary=lambda ctx: {})
    assert (callables.snapshot()["title"], callables.snapshot()["summary"]) == ("", None)
