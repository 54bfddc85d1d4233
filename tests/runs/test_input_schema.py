"""A pipeline's input_schema: checked at registration, and by start() before anything is written."""

import pytest

import stepkit_django
from stepkit_django import InvalidInput, PipelineAlreadyRegistered, StepkitError, register, start, stepkit
from stepkit_django.describe import describe_pipeline
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.registry import get_registration
from tests.testapp.models import SideEffect

PAYMENT = {
    "type": "object",
    "properties": {
        "payee": {"type": "string", "minLength": 1},
        "amount": {"type": "integer", "minimum": 1},
        "to": {"type": "string", "format": "email"},
        "priority": {"enum": ["low", "high"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["payee", "amount"],
}


def recorded(ctx):
    SideEffect.objects.create(kind="paid", key=ctx["payee"])
    return {"paid": True}


@pytest.fixture
def payments(registered_pipelines):
    return registered_pipelines(stepkit("typed-payments").step("pay", recorded), input_schema=PAYMENT)


def written():
    """Everything a refused start must leave as it was."""
    return (
        PipelineRun.objects.count(),
        AuditEvent.objects.count(),
        Checkpoint.objects.count(),
        SideEffect.objects.count(),
    )


# -- registration ---------------------------------------------------------------------------------------


def test_the_exception_is_a_named_stepkit_error_and_a_value_error_exported_by_the_package():
    assert issubclass(InvalidInput, StepkitError) and issubclass(InvalidInput, ValueError)
    assert stepkit_django.InvalidInput is InvalidInput and "InvalidInput" in stepkit_django.__all__


def test_the_registration_keeps_the_input_schema(payments):
    assert get_registration("typed-payments").input_schema == PAYMENT
    assert describe_pipeline(payments)["input_schema"] == PAYMENT


def test_an_invalid_schema_is_refused_at_registration_naming_the_pipeline_and_the_place(registered_pipelines):
    bad = {"type": "object", "properties": {"amount": {"type": "money"}}}
    with pytest.raises(ValueError, match=r"input_schema of pipeline 'bad-schema' is not a valid JSON Schema "
                                         r"\(at properties/amount/type\)"):  # fmt: skip
        register(stepkit("bad-schema").step("s"), input_schema=bad)
    assert "bad-schema" not in stepkit_django.registered()


def test_a_schema_of_something_else_than_an_object_is_refused(registered_pipelines):
    with pytest.raises(ValueError, match=r"must describe an object"):
        register(stepkit("list-input").step("s"), input_schema={"type": "array"})
    with pytest.raises(TypeError, match=r"must be a JSON Schema \(a dict\)"):
        register(stepkit("list-input").step("s"), input_schema='{"type": "object"}')
    assert "list-input" not in stepkit_django.registered()


def test_registering_again_with_another_input_schema_is_refused(payments):
    assert register(payments, input_schema=PAYMENT) is payments  # the same options: a no-op
    with pytest.raises(PipelineAlreadyRegistered, match="an input_schema"):
        register(payments)
    with pytest.raises(PipelineAlreadyRegistered):
        register(payments, input_schema={"type": "object"})
    assert get_registration("typed-payments").input_schema == PAYMENT


# -- start() --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_valid_input_starts_the_run(payments):
    run = start("typed-payments", {"payee": "ACME", "amount": 250, "to": "pay@acme.test"})
    assert run.status == "completed" and run.input == {"payee": "ACME", "amount": 250, "to": "pay@acme.test"}


@pytest.mark.django_db
def test_bad_input_raises_invalid_input_with_a_message_per_field_and_writes_nothing(payments):
    before = written()
    with pytest.raises(InvalidInput) as refused:
        start("typed-payments", {"amount": "250", "to": "nobody", "priority": "urgent"}, idempotency_key="k")
    assert refused.value.errors == {
        "amount": ["Enter a whole number."],
        "payee": ["This field is required."],
        "priority": ["Choose one of: low, high."],
        "to": ["Enter a valid email."],
    }
    assert "amount: Enter a whole number." in str(refused.value)
    assert written() == before
    assert not PipelineRun.objects.filter(idempotency_key="k").exists()


@pytest.mark.django_db
def test_no_input_at_all_is_checked_too(payments):
    with pytest.raises(InvalidInput) as refused:
        start("typed-payments")
    assert set(refused.value.errors) == {"payee", "amount"}
    assert PipelineRun.objects.count() == 0


@pytest.mark.django_db
def test_limits_are_said_in_words(payments):
    with pytest.raises(InvalidInput) as refused:
        start("typed-payments", {"payee": "", "amount": 0})
    assert refused.value.errors == {
        "amount": ["Enter a value of at least 1."],
        "payee": ["Enter at least 1 character."],
    }


@pytest.mark.django_db
def test_an_error_inside_an_object_is_reported_on_its_top_level_key_saying_where(payments):
    with pytest.raises(InvalidInput) as refused:
        start("typed-payments", {"payee": "ACME", "amount": 1, "address": {"city": 7, "street": "x"}})
    assert refused.value.errors == {"address": ["city: Enter text."]}
    with pytest.raises(InvalidInput) as refused:
        start("typed-payments", {"payee": "ACME", "amount": 1, "address": {}})
    assert refused.value.errors == {"address": ["city: This field is required."]}


@pytest.mark.django_db
def test_a_pipeline_without_input_schema_takes_any_input():
    run = start("payment-approval", {"amount": "not checked"})
    assert run.input == {"amount": "not checked"}


@pytest.mark.django_db
def test_a_boolean_is_no_integer(registered_pipelines):
    registered_pipelines(
        stepkit("counted").step("s"), input_schema={"type": "object", "properties": {"n": {"type": "integer"}}}
    )
    with pytest.raises(InvalidInput) as refused:
        start("counted", {"n": True})
    assert refused.value.errors == {"n": ["Enter a whole number."]}
    assert start("counted", {"n": 3}).input == {"n": 3}


def test_each_missing_key_is_reported_on_itself_for_reviewer_edits_too():
    from stepkit_django.overrides import validate_override

    schema = {"type": "object", "required": ["subject", "body"]}
    with pytest.raises(stepkit_django.InvalidOverride) as refused:
        validate_override({}, context={}, editable=None, schema=schema)
    assert set(refused.value.errors) == {"subject", "body"}
