"""The audit trail as people read it: sentences, local times, full names, edits word by word, nothing lost."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import AuditEvent
from stepkit_django.sentences import TELLERS, actor_name, tell
from stepkit_django.status import AuditAction

pytestmark = pytest.mark.django_db

QUEUE = "/admin/stepkit_django/checkpoint/"
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a shifted time cannot pass for a UTC one
DUE = "2031-03-03T09:34:54.539890+00:00"


@pytest.fixture
def bob(people, client):
    people.bob.is_staff = True
    people.bob.save(update_fields=["is_staff"])
    client.force_login(people.bob)
    return client


@pytest.fixture
def ann(people):
    """carol, with a full name."""
    people.carol.first_name, people.carol.last_name = "Ann", "Smith"
    people.carol.save(update_fields=["first_name", "last_name"])
    return people.carol


def letter_checkpoint(people, registered_pipelines, **options):
    registered_pipelines(
        stepkit("letter").step(
            "draft",
            lambda c: {"body": "Dear Ada,\nyour parcel left today.\nThe team", "amount": 1500},
            review=Review(editable=["body", "amount"], assign_to_group="editors", **options),
        )
    )
    return start("letter", {}, user=people.alice).checkpoints.get()


def told(action, data=None, actor=None, note="", full=True):
    return tell(AuditEvent(action=action, data=data or {}, actor=actor, note=note), full=full)


def test_every_audit_action_has_its_sentence():
    assert set(TELLERS) == set(AuditAction.values)


def test_actors_are_named_by_their_full_name_else_their_username(people, ann):
    assert actor_name(ann) == "Ann Smith"
    assert actor_name(people.bob) == "bob"
    assert actor_name(None) == "the system"


def test_the_review_page_trail_reads_as_sentences(people, bob, ann, registered_pipelines):
    cp = letter_checkpoint(people, registered_pipelines, approvals_required=2, timeout=timedelta(days=2))
    review.edit(cp, ann, {"body": "Dear Ada,\nyour parcel arrives tomorrow.\nThe team"})
    review.approve(cp, ann)
    response = bob.get(f"{QUEUE}{cp.pk}/change/")
    sentences = [row.sentence for row in response.context["trail"]]
    due = timezone.localtime(cp.expires_at)
    assert sentences == [
        f"Paused at step draft for review by editors, due {due.day} {due:%b %H:%M}"
        if due.year == timezone.localtime().year
        else f"Paused at step draft for review by editors, due {due.day} {due:%b %Y, %H:%M}",
        "Edited body by Ann Smith",
        "Approved by Ann Smith (1 of 2)",
    ]
    html = response.content.decode()
    assert "assigned_groups" not in html and "expires_at" not in html  # no Python dicts any more
    edit = response.context["trail"][1].changes[0]
    assert edit.key == "body"
    assert '<del><span class="visually-hidden">[removed: </span>left today' in edit.diff
    assert '<ins><span class="visually-hidden">[added: </span>arrives tomorrow' in edit.diff
    assert str(edit.diff) in html


def test_trail_times_are_in_the_current_time_zone(people, bob, registered_pipelines):
    cp = letter_checkpoint(people, registered_pipelines)
    with timezone.override(KOLKATA):
        response = bob.get(f"{QUEUE}{cp.pk}/change/")
    html = response.content.decode()
    paused = cp.events.get(action="paused").timestamp.astimezone(KOLKATA)
    assert "Time (Asia/Kolkata)" in html
    assert f'<time datetime="{paused.isoformat()}">{paused.day} {paused:%b} {paused:%H:%M}' in html
    assert paused.isoformat().endswith("+05:30")


def test_a_deadline_is_told_in_the_current_time_zone_with_its_year_when_not_this_one():
    data = {"step": "draft", "assigned_groups": ["editors"], "assigned_users": ["dave"], "expires_at": DUE}
    with timezone.override(KOLKATA):
        assert (
            told("paused", data).sentence
            == "Paused at step draft for review by editors and dave, due 3 Mar 2031, 15:04"
        )
    with timezone.override(UTC):
        assert told("paused", data).sentence.endswith("due 3 Mar 2031, 09:34")
    this_year = datetime.now(UTC).replace(month=6, day=1, hour=12, minute=0, second=0, microsecond=0)
    with timezone.override(UTC):
        assert told("paused", {**data, "expires_at": this_year.isoformat()}).sentence.endswith("due 1 Jun 12:00")


@pytest.mark.parametrize(
    ("action", "data", "by", "sentence"),
    [
        ("run_started", {"version": 3}, "ann", "Run started by Ann Smith (pipeline version 3)"),
        ("step_completed", {"step": "draft", "duration_ms": 1234.5}, None, "Step draft completed in 1.2 s"),
        ("step_completed", {"step": "draft", "duration_ms": 0.42}, None, "Step draft completed in 0.4 ms"),
        ("paused", {"step": "draft", "assigned_groups": [], "assigned_users": [], "expires_at": None}, None,
         "Paused at step draft for review"),
        ("paused", {"step": "draft", "assigned_groups": ["editors"], "assigned_users": [], "expires_at": None,
                    "reopened_from": "1f0c"}, None,
         "Paused at step draft for review by editors, opened again by a retry"),
        ("claimed", {}, "ann", "Claimed by Ann Smith"),
        ("claimed", {"via": "claim_next"}, "ann", "Claimed by Ann Smith (next in the queue)"),
        ("released", {"claimed_by": "carol"}, "ann", "Claim released by Ann Smith"),  # carol is Ann Smith
        ("released", {"claimed_by": "bob"}, "ann", "The claim of bob released by Ann Smith"),
        ("released", {"claimed_by": "bob", "reason": "claim expired", "taken_over_by": "carol"}, "ann",
         "The claim of bob expired; taken over by Ann Smith"),
        ("released", {"claimed_by": "bob", "reason": "holder inactive", "taken_over_by": "carol"}, "ann",
         "The claim of bob lapsed (their account is inactive); taken over by Ann Smith"),
        ("reassigned", {"before": {"users": [], "groups": ["editors"]},
                        "after": {"users": ["dave"], "groups": ["managers"]}},
         "ann", "Reassigned by Ann Smith from editors to managers and dave"),
        ("reassigned", {"before": {"users": [], "groups": []}, "after": {"users": ["dave", "eve"], "groups": []}},
         "ann", "Reassigned by Ann Smith to dave and eve"),
        ("edited", {"changes": {"subject": {"before": "a", "after": "b"}, "body": {"before": "c", "after": "d"}}},
         "ann", "Edited subject and body by Ann Smith"),
        ("approved", {"approvals": 1, "required": 1, "version": 1}, "ann", "Approved by Ann Smith"),
        ("approved", {"approvals": 2, "required": 2, "version": 4}, "ann", "Approved by Ann Smith (2 of 2)"),
        ("approved", {"automatic": True, "edits_applied": ["body"]}, None,
         "Approved automatically when the deadline passed, with the edits to body"),
        ("approved", {"automatic": True, "edits_applied": [], "edits_not_applied": ["body", "subject"]}, None,
         "Approved automatically when the deadline passed, without the unapproved edits to body and subject"),
        ("rejected", {}, "ann", "Rejected by Ann Smith"),
        ("expired", {"on_timeout": "reject", "expires_at": DUE}, None,
         "The deadline of 3 Mar 2031, 09:34 passed: rejected automatically"),
        ("expired", {"on_timeout": "approve", "expires_at": DUE}, None,
         "The deadline of 3 Mar 2031, 09:34 passed: approved automatically"),
        ("expired", {"on_timeout": "fail", "expires_at": DUE}, None,
         "The deadline of 3 Mar 2031, 09:34 passed: the run failed"),
        ("escalated", {"on_timeout": "escalate", "expires_at": DUE, "to_group": "managers"}, None,
         "The deadline of 3 Mar 2031, 09:34 passed: escalated to managers"),
        ("resumed", {"after": "draft"}, "ann", "Run resumed after step draft"),
        ("run_completed", {}, None, "Run completed"),
        ("run_failed", {"step": "send", "error": "SMTPError: refused"}, None,
         "Run failed at step send: SMTPError: refused"),
        ("run_cancelled", {"checkpoints": []}, "ann", "Run cancelled by Ann Smith"),
        ("run_cancelled", {"checkpoints": ["1f0c"]}, "ann", "Run cancelled by Ann Smith, with its pending review"),
        ("run_retried", {"previous_error": "IOError: disk", "from": "send"}, "ann",
         "Retried by Ann Smith from step send (it had failed: IOError: disk)"),
        ("run_retried", {"previous_error": "Review timed out", "from": "draft", "review_reopened": "draft"}, "ann",
         "Retried by Ann Smith: the review of step draft is open again (it had failed: Review timed out)"),
        ("run_recovered", {"lease_owner": "host-1:42", "after": "draft"}, None,
         "Run recovered after its worker host-1:42 stopped; it continues after step draft"),
        ("run_recovered", {"lease_owner": "host-1:42", "after": ""}, None,
         "Run recovered after its worker host-1:42 stopped; it starts again from the beginning"),
        ("approvals_voided", {"voided": ["bob"], "changed": ["body"], "version": 3}, "ann",
         "The approval of bob no longer counts: body changed after it"),
        ("approvals_voided", {"voided": ["bob", "dave"], "changed": ["body", "subject"], "version": 3}, "ann",
         "The approvals of bob and dave no longer count: body and subject changed after them"),
    ],
)  # fmt: skip
def test_each_action_reads_as_a_sentence(ann, action, data, by, sentence):
    with timezone.override(UTC):
        assert told(action, data, actor=ann if by else None).sentence == sentence


def test_nothing_is_lost_what_the_sentence_does_not_tell_is_in_the_details(people, bob, registered_pipelines):
    assert told("approved", {"approvals": 1, "required": 2, "version": 4}).rest == {"version": 4}
    assert told("run_cancelled", {"checkpoints": ["1f0c"]}).rest == {"checkpoints": ["1f0c"]}
    assert told("paused", {"step": "s", "reopened_from": "1f0c", "new_key": [1]}).rest == {
        "reopened_from": "1f0c",
        "new_key": [1],
    }
    cp = letter_checkpoint(people, registered_pipelines)
    review.approve(cp, people.carol, comment="Fine by me")
    html = bob.get(f"{QUEUE}{cp.pk}/change/").content.decode()
    assert "<summary>More details</summary>" in html
    assert '<dt>version</dt><dd style="white-space: pre-wrap">1</dd>' in html
    assert "Comment: <q" in html and "Fine by me</q>" in html


def test_failure_messages_are_told_only_to_those_who_may_read_them():
    data = {"step": "send", "error": "SMTPError: ada@example.com refused"}
    assert told("run_failed", data, full=False).sentence == "Run failed at step send: SMTPError"
    assert told("run_failed", data, full=True).sentence == "Run failed at step send: SMTPError: ada@example.com refused"


def test_long_edits_show_their_changes_with_context_and_the_whole_text_on_demand(people, bob, registered_pipelines):
    cp = letter_checkpoint(people, registered_pipelines)
    long = " ".join(f"word{i}" for i in range(200))
    review.edit(cp, people.carol, {"body": long})
    review.edit(cp, people.carol, {"body": long.replace("word100", "CHANGED")})
    response = bob.get(f"{QUEUE}{cp.pk}/change/")
    change = response.context["trail"][-1].changes[0]
    assert "unchanged words left out" in change.diff and "word50 " not in change.diff
    assert change.full is not None and "word50 " in change.full
    assert "Show the whole text with its changes" in response.content.decode()


def test_the_run_page_and_the_event_list_tell_the_same_sentences(people, bob, ann, registered_pipelines):
    cp = letter_checkpoint(people, registered_pipelines)
    review.edit(cp, ann, {"amount": 1200})
    run_page = bob.get(f"/admin/stepkit_django/pipelinerun/{cp.run_id}/change/").content.decode()
    assert "Edited amount by Ann Smith" in run_page
    assert '<del><span class="visually-hidden">[removed: </span>1500' in run_page
    assert "Run started by alice (pipeline version 1)" in run_page
    assert "<time datetime=" in run_page
    events = bob.get("/admin/stepkit_django/auditevent/?action__exact=edited").content.decode()
    assert "Edited amount by Ann Smith" in events
