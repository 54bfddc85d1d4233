"""Checkpoints: stop_pipeline, resume with override data, signing and refusal."""

import asyncio
import datetime
import decimal
import json
import uuid
from urllib.parse import quote

import pytest
from django.core import signing
from django.test import override_settings

from stepkit_django import (
    CheckpointError,
    InvalidCheckpoint,
    StepkitError,
    decode_checkpoint,
    otherwise,
    stepkit,
    when,
)
from stepkit_django.engine import events as events_module
from stepkit_django.engine.checkpoint import encode_checkpoint


def calc():
    return (
        stepkit("calc")
        .step("add-one", lambda c: {"a": c["a"] + 1})
        .step("double", lambda c: {"a": c["a"] * 2})
        .step("finish", lambda c: {"sum": c["a"] + c.get("b", 0)})
    )


def checkpoints_of(pipeline, input, **config):
    tokens = {}
    output = pipeline.run(input, on_step_complete=lambda e: tokens.__setitem__(e.step_name, e.checkpoint), **config)
    return output, tokens


def test_calc_example_resumes_after_double_with_b_10():
    _, tokens = checkpoints_of(calc(), {"a": 1})
    resumed = calc().run_checkpoint(tokens["double"], override_data={"b": 10})
    assert resumed["sum"] == 14
    assert asyncio.run(calc().arun_checkpoint(tokens["double"], override_data={"b": 10}))["sum"] == 14


def test_resuming_from_any_checkpoint_equals_the_full_run():
    full, tokens = checkpoints_of(calc(), {"a": 1})
    assert set(tokens) == {"add-one", "double", "finish"}
    for name, token in tokens.items():
        assert calc().run_checkpoint(token) == full, name


def test_override_data_merge_is_shallow():
    p = stepkit("p").step("draft", lambda c: {"email": {"subject": "Hi", "body": "draft"}, "tags": ["a", "b"]})
    p = p.step("send", lambda c: {"sent": dict(c["email"])})
    _, tokens = checkpoints_of(p, {})
    out = p.run_checkpoint(tokens["draft"], override_data={"email": {"body": "edited"}, "tags": ["z"]})
    # whole objects and lists are replaced, not merged
    assert out["email"] == {"body": "edited"}
    assert out["tags"] == ["z"]
    assert out["sent"] == {"body": "edited"}


def human_approval():
    sent = []
    p = (
        stepkit("reply")
        .step("generate", lambda c: {"reply": f"Reply: {c['body']}"})
        .step("send", lambda c: sent.append(c["reply"]) or {"sent": True})
    )
    return p, sent


def test_stop_pipeline_from_a_sync_handler_returns_context_including_the_step():
    p, sent = human_approval()
    saved = {}

    def on_complete(event):
        if event.step_name == "generate":
            saved["token"] = event.checkpoint
            event.stop_pipeline()

    assert p.run({"body": "hello"}, on_step_complete=on_complete) == {"body": "hello", "reply": "Reply: hello"}
    assert sent == []
    assert p.run_checkpoint(saved["token"], override_data={"reply": "Edited"})["sent"] is True
    assert sent == ["Edited"]


def test_stop_pipeline_from_an_async_handler():
    p, sent = human_approval()

    async def on_complete(event):
        await asyncio.sleep(0)
        if event.step_name == "generate":
            event.stop_pipeline()

    assert "sent" not in p.run({"body": "x"}, on_step_complete=on_complete)
    assert "sent" not in asyncio.run(p.arun({"body": "x"}, on_step_complete=on_complete))
    assert sent == []


def test_config_and_run_handlers_are_both_called_config_first():
    calls = []
    p = stepkit(on_step_complete=lambda e: calls.append(("config", e.step_name))).step("s", lambda c: {})
    p.run({}, on_step_complete=lambda e: calls.append(("run", e.step_name)))
    assert calls == [("config", "s"), ("run", "s")]


def test_event_carries_name_duration_and_a_copy_of_the_context():
    events = []
    p = stepkit("p").step("s", lambda c: {"items": [1]}).step("t", lambda c: {"more": True})
    p.run({}, on_step_complete=events.append)
    first = events[0]
    assert first.step_name == "s"
    assert isinstance(first.duration, float) and first.duration >= 0
    assert first.context == {"items": [1]}  # the context after that step, even when read later
    first.context["items"].append("changed")
    assert first.context == {"items": [1]}
    assert isinstance(first.checkpoint, str)


def test_stop_pipeline_inside_a_nested_pipeline_merges_and_stops_the_containers():
    inner = stepkit().step("draft", lambda c: {"draft": "d"}).step("inner-after", lambda c: {"inner_after": 1})
    p = stepkit("outer-p").step("compose", inner).step("send", lambda c: {"sent": True})
    names = []

    def handler(event):
        names.append(event.step_name)
        if event.step_name == "compose/draft":
            event.stop_pipeline()

    assert p.run({}, on_step_complete=handler) == {"draft": "d"}
    assert names == ["compose/draft"]


def nested_pipeline():
    review = (
        stepkit()
        .step("draft", lambda c: {"text": f"draft {c['n']}"})
        .step("polish", lambda c: {"text": c["text"] + "!"})
    )
    return (
        stepkit("nested")
        .step("start", lambda c: {"n": c["n"] + 1})
        .step("compose", review)
        .branch_on(
            "route",
            when(
                lambda c: c["n"] % 2 == 0,
                lambda b: b.step("even-step", lambda c: {"kind": "even"}).step("even-2", lambda c: {"k2": 2}),
                name="even",
            ),
            otherwise(lambda b: b.step("odd-step", lambda c: {"kind": "odd"})),
        )
        .step("end", lambda c: {"done": c["text"] + c["kind"]})
    )


@pytest.mark.parametrize("n", [1, 2])
def test_nested_and_branch_resume_from_an_inner_step_equals_the_full_run(n):
    full, tokens = checkpoints_of(nested_pipeline(), {"n": n})
    assert "compose/draft" in tokens
    assert any(name.startswith("route/") and name.count("/") == 2 for name in tokens)
    for name, token in tokens.items():
        assert nested_pipeline().run_checkpoint(token) == full, name
        assert asyncio.run(nested_pipeline().arun_checkpoint(token)) == full, name


def test_resume_into_a_nested_step_continues_after_it_with_override():
    _, tokens = checkpoints_of(nested_pipeline(), {"n": 1})
    names = []
    out = nested_pipeline().run_checkpoint(
        tokens["compose/draft"],
        override_data={"text": "edited"},
        on_step_complete=lambda e: names.append(e.step_name),
    )
    assert names == ["compose/polish", "compose", "route/even/even-step", "route/even/even-2", "route", "end"]
    assert out["done"] == "edited!even"


def test_resume_into_a_branch_does_not_re_evaluate_predicates():
    _, tokens = checkpoints_of(nested_pipeline(), {"n": 1})
    # n is 2 at the checkpoint (even case); force an odd n: the case already chosen continues
    out = nested_pipeline().run_checkpoint(tokens["route/even/even-step"], override_data={"n": 3})
    assert out["kind"] == "even" and out["k2"] == 2


# -- tokens ------------------------------------------------------------------------


def test_checkpoint_is_url_safe_and_decodes_to_its_contents():
    _, tokens = checkpoints_of(calc(), {"a": 1})
    token = tokens["double"]
    assert quote(token, safe="") == token
    payload = decode_checkpoint(token)
    assert payload["format"] == 1
    assert payload["pipeline"] == "calc"
    assert payload["version"] == 1
    assert payload["step"] == "double"
    assert payload["steps"] == ["add-one", "double", "finish"]
    assert payload["context"] == {"a": 4}


def test_large_contexts_are_compressed():
    big = {"text": "lorem ipsum " * 5000}
    _, tokens = checkpoints_of(stepkit("p").step("s", lambda c: {}), big)
    assert tokens["s"].startswith(".")  # Django's marker for a compressed payload
    assert len(tokens["s"]) < 2000


def test_checkpoint_is_not_computed_when_nobody_reads_it(monkeypatch):
    calls = []
    real = encode_checkpoint
    monkeypatch.setattr(events_module, "encode_checkpoint", lambda **kw: calls.append(1) or real(**kw))
    calc().run({"a": 1}, on_step_complete=lambda e: e.step_name)
    assert calls == []
    calc().run({"a": 1}, on_step_complete=lambda e: e.checkpoint)
    assert calls == [1, 1, 1]


def test_datetime_decimal_and_uuid_round_trip_as_strings():
    when_ = datetime.datetime(2026, 11, 27, 12, 30, 15, 123000, tzinfo=datetime.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    p = (
        stepkit("p")
        .step(
            "s",
            lambda c: {"at": when_, "day": datetime.date(2026, 1, 2), "amount": decimal.Decimal("12.50"), "id": ident},
        )
        .step("t")
    )
    _, tokens = checkpoints_of(p, {})
    resumed = p.run_checkpoint(tokens["s"])
    assert resumed == {"at": "2026-11-27T12:30:15.123Z", "day": "2026-01-02", "amount": "12.50", "id": str(ident)}
    assert datetime.datetime.fromisoformat(resumed["at"]) == when_
    assert decimal.Decimal(resumed["amount"]) == decimal.Decimal("12.50")


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"user": {"created": object()}}, "context['user']['created']"),
        ({"items": [1, {"bad": {1, 2}}]}, "context['items'][1]['bad']"),
        ({"ratio": float("nan")}, "context['ratio']"),
        ({"map": {1: "int key"}}, "context['map']"),
    ],
)
def test_a_non_serialisable_value_raises_checkpoint_error_naming_its_key_path(value, path):
    p = stepkit("p").step("s", lambda c: value)
    with pytest.raises(CheckpointError) as info:
        p.run({}, on_step_complete=lambda e: e.checkpoint)
    assert path in str(info.value)
    # without reading the checkpoint the same pipeline runs fine
    assert p.run({})


def fresh_token():
    _, tokens = checkpoints_of(calc(), {"a": 1})
    return tokens["double"]


def refused(token, pipeline=None, match=""):
    ran = []
    p = pipeline or calc().step("spy", lambda c: ran.append(1))
    with pytest.raises(InvalidCheckpoint, match=match):
        p.run_checkpoint(token)
    assert ran == []


def test_invalid_checkpoint_is_a_checkpoint_error_a_stepkit_error_and_a_value_error():
    assert issubclass(InvalidCheckpoint, CheckpointError)
    assert issubclass(CheckpointError, StepkitError)
    assert issubclass(CheckpointError, ValueError)


@pytest.mark.parametrize(
    ("token", "match"), [("", "empty"), ("   ", "empty"), (None, "must be a string"), (42, "must be a string")]
)
def test_empty_or_non_string_tokens_are_refused(token, match):
    refused(token, match=match)


@pytest.mark.parametrize("token", ["not a token", "eyJhIjoxfQ==", "a.b", "a.b.c.d", "%%%.abc.def"])
def test_undecodable_tokens_are_refused(token):
    refused(token, match="not decodable")


def test_tampered_payload_is_refused_as_a_signature_mismatch():
    token = fresh_token()
    _payload, timestamp, signature = token.rsplit(".", 2)
    forged_payload = decode_checkpoint(token) | {"context": {"a": 1000}}
    forged = signing.b64_encode(json.dumps(forged_payload).encode()).decode()
    refused(f"{forged}.{timestamp}.{signature}", match="signature does not match")


def test_every_single_character_change_is_refused():
    token = fresh_token()
    for i, char in enumerate(token):
        for replacement in {"A", "z", "0", "-", "."} - {char}:
            changed = token[:i] + replacement + token[i + 1 :]
            with pytest.raises(InvalidCheckpoint):
                decode_checkpoint(changed)


def test_token_signed_with_another_key_is_refused():
    with override_settings(SECRET_KEY="another-key-entirely-another-key-entirely"):
        token = fresh_token()
    refused(token, match="signature does not match")


def test_token_signed_with_a_rotated_key_still_loads_through_fallbacks():
    old = "the-old-secret-key-the-old-secret-key-123"
    with override_settings(SECRET_KEY=old):
        token = fresh_token()
    with override_settings(SECRET_KEY="the-new-secret-key-the-new-secret-key-456", SECRET_KEY_FALLBACKS=[old]):
        assert calc().run_checkpoint(token, override_data={"b": 10})["sum"] == 14


def test_token_from_another_pipeline_names_both():
    other = stepkit("other").step("double", lambda c: {})
    refused(fresh_token(), pipeline=other, match="made by pipeline 'calc', not by 'other'")


def test_unknown_step_is_named_and_known_steps_are_listed():
    renamed = stepkit("calc").step("add-one", lambda c: {}).step("twice", lambda c: {})
    refused(
        fresh_token(),
        pipeline=renamed,
        match=r"step 'double' is not a step of pipeline 'calc'; known steps: add-one, twice",
    )


def test_unsupported_format_version_is_refused():
    signer = signing.TimestampSigner(salt="stepkit_django.checkpoint", sep=".")
    token = signer.sign_object({"format": 99, "pipeline": "calc"}, compress=True)
    refused(token, match="format version 99 is not supported")


def test_expired_tokens_are_refused_when_a_max_age_is_set():
    token = fresh_token()
    with override_settings(STEPKIT={"CHECKPOINT_MAX_AGE": -1}):
        refused(token, match="expired")


def test_override_data_must_be_a_dict():
    with pytest.raises(TypeError, match="override_data must be a dict"):
        calc().run_checkpoint(fresh_token(), override_data=[("b", 1)])
