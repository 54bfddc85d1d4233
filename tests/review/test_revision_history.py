"""The revision history: what changed from each revision to the next, who may see it, who keeps the work,
and the reviewers' decisions that no edit may write."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stepkit_django import InvalidOverride, ReviewPermissionDenied, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.review_spec import Review
from stepkit_django.revisions import changes_between, history
from stepkit_django.sentences import tell
from stepkit_django.status import AuditAction, CheckpointStatus

pytestmark = pytest.mark.django_db


def notes(ctx):
    return (ctx.get("review") or {}).get("comment", "")


def pending():
    return Checkpoint.objects.get(status=CheckpointStatus.PENDING)


def snapshot():
    return list(Checkpoint.objects.values()), list(PipelineRun.objects.values()), AuditEvent.objects.count()


@pytest.fixture
def letters(registered_pipelines):
    """A draft that the AI rewrites with the reviewer's notes; the subject stays, a note is added once."""

    def draft(ctx):
        said = notes(ctx)
        body = "Dear Ann, thank you for your order." + (f" {said}" if said else "")
        return {"body": body, "subject": "Your order", **({"note": "redrafted"} if said else {})}

    registered_pipelines(
        stepkit("history-letters")
        .step("draft", draft, review=Review(editable=["subject", "body"], assign_to_group="editors"))
        .step("send", lambda c: {"sent": True})
    )


def test_each_revision_lists_what_the_next_one_changed(people, letters):
    start("history-letters", {"to": "Ann"}, user=people.alice)
    review.request_changes(pending(), people.bob, "We ship tomorrow.", override_data={"subject": "Your order #1"})
    review.request_changes(pending(), people.carol, "Sorry for the wait.")
    third = pending()
    assert third.revision == 3
    first, second = history(third, people.bob)
    assert (first.checkpoint.revision, first.next_revision, second.checkpoint.revision, second.next_revision) == (
        1,
        2,
        2,
        3,
    )
    # before: the data the revision was sent back with (the edit included); after: the next revision's context
    assert first.changes == {
        "body": {
            "before": "Dear Ann, thank you for your order.",
            "after": "Dear Ann, thank you for your order. We ship tomorrow.",
        },
        "note": {"before": None, "after": "redrafted"},  # a key the redraft added
        "subject": {"before": "Your order #1", "after": "Your order"},  # the step wrote it again
    }
    assert second.changes == {
        "body": {
            "before": "Dear Ann, thank you for your order. We ship tomorrow.",
            "after": "Dear Ann, thank you for your order. Sorry for the wait.",
        }
    }
    # the decision key, which the request wrote, is no change of the data
    assert "review" not in first.changes and "review" in third.context


def test_a_key_absent_on_one_side_counts_as_null(people, letters):
    start("history-letters", {"to": "Ann"}, user=people.alice)
    earlier = Checkpoint(context={"a": None, "b": 1, "review": {"outcome": "x"}}, override_data={"b": 2}, review={})
    later = Checkpoint(context={"b": 2, "c": None, "review": {"outcome": "y"}})
    assert changes_between(earlier, later) == {}
    later = Checkpoint(context={"b": 3, "c": 0})
    assert changes_between(earlier, later) == {"b": {"before": 2, "after": 3}, "c": {"before": None, "after": 0}}


def test_the_history_is_read_in_one_query_whatever_its_length(people, letters):
    start("history-letters", {"to": "Ann"}, user=people.alice)
    review.request_changes(pending(), people.bob, "One")
    second = pending()
    with CaptureQueriesContext(connection) as short:
        assert len(history(second, people.bob)) == 1
    review.request_changes(second, people.bob, "Two")
    review.request_changes(pending(), people.bob, "Three")
    fourth = pending()
    people.bob.get_all_permissions()  # the permission cache, read once per request anyway
    with CaptureQueriesContext(connection) as long:
        assert [r.checkpoint.revision for r in history(fourth, people.bob)] == [1, 2, 3]
    assert len(long.captured_queries) == len(short.captured_queries) <= 2
    first = Checkpoint.objects.get(revision=1)
    with CaptureQueriesContext(connection) as none:
        assert history(first, people.bob) == []
    assert none.captured_queries == []


# -- who may see an earlier revision -----------------------------------------------------------


@pytest.fixture
def teams(registered_pipelines):
    """Each revision goes to the team the draft names: managers, then editors, then managers again."""
    order = {"": "managers", "to editors": "editors", "back to managers": "managers"}

    def draft(ctx):
        return {"team": order[notes(ctx)], "body": f"Secret plan of the {order[notes(ctx)]}"}

    registered_pipelines(
        stepkit("team-letters").step("draft", draft, review=Review(assign_to_group=lambda ctx: ctx["team"]))
    )


def test_an_earlier_revision_of_another_group_is_not_shown(people, teams):
    start("team-letters", {}, user=people.alice)
    review.request_changes(pending(), people.dave, "to editors")  # managers' revision 1
    second = pending()
    assert list(second.assigned_groups.values_list("name", flat=True)) == ["editors"]
    # bob (editors) reviews revision 2; revision 1 belonged to the managers: neither it nor its data shows
    assert history(second, people.bob) == []
    # those who may open revision 1 see it: its assignees, the run's starter, superusers
    for user in (people.root, people.alice):
        assert [r.checkpoint.revision for r in history(second, user)] == [1], user
    assert history(second, None) == []


def test_the_history_stops_at_the_first_revision_the_user_may_not_see(people, teams):
    start("team-letters", {}, user=people.alice)
    review.request_changes(pending(), people.dave, "to editors")
    review.request_changes(pending(), people.bob, "back to managers")
    third = pending()
    assert list(third.assigned_groups.values_list("name", flat=True)) == ["managers"]
    # dave may see revision 1 (his) but not revision 2 (the editors'), whose data revision 1's changes compare with
    assert history(third, people.dave) == []
    assert [r.checkpoint.revision for r in history(third, people.root)] == [1, 2]


# -- the assignees a manager chose stay with the work --------------------------------------------


def test_a_new_revision_keeps_the_assignees_a_manager_chose(people, letters):
    start("history-letters", {"to": "Ann"}, user=people.alice)
    first = pending()
    manager = people.grant_reassign("root")
    review.reassign(first, manager, to_users=[people.dave], to_groups=["managers"])
    review.request_changes(first, people.dave, "Shorter")
    second = pending()
    assert list(second.assigned_users.all()) == [people.dave]
    assert list(second.assigned_groups.values_list("name", flat=True)) == ["managers"]
    assert second.assigned is True
    with pytest.raises(ReviewPermissionDenied):  # bob is in editors, whom the review declares
        review.claim(second, people.bob)
    kept = second.events.get(action=AuditAction.REASSIGNED)
    assert kept.actor == manager
    assert kept.data["kept_from"] == str(first.pk) and kept.data["kept_from_revision"] == 1
    assert kept.data["before"] == {"users": [], "groups": ["editors"]}
    assert kept.data["after"] == {"users": ["dave"], "groups": ["managers"]}
    assert tell(kept, full=True).sentence == "Kept the assignees root chose on revision 1: managers and dave"
    # and the next revision still keeps them
    review.request_changes(second, people.dave, "Shorter still")
    assert list(pending().assigned_users.all()) == [people.dave]


def test_whoever_reassigned_an_earlier_revision_may_not_approve_the_new_one(people, letters):
    start("history-letters", {"to": "Ann"}, user=people.alice)
    first = pending()
    carol = people.grant_reassign("carol")
    review.reassign(first, carol, to_users=[carol, people.bob])  # a reassigner choosing themselves
    review.request_changes(first, people.bob, "Shorter")
    second = pending()
    assert set(second.assigned_users.all()) == {carol, people.bob}
    with pytest.raises(ReviewPermissionDenied, match="You reassigned"):
        review.approve(second, carol)
    with pytest.raises(ReviewPermissionDenied, match="You reassigned"):
        review.request_changes(second, carol, "Mine")
    review.approve(second, people.bob)
    assert PipelineRun.objects.get().status == "completed"


def test_without_a_reassignment_the_new_revision_is_assigned_as_the_review_declares(people, registered_pipelines):
    registered_pipelines(
        stepkit("declared").step(
            "draft",
            lambda c: {"team": "managers" if notes(c) else "editors"},
            review=Review(assign_to_group=lambda c: c["team"]),
        )
    )
    start("declared", {}, user=people.alice)
    review.request_changes(pending(), people.bob, "Managers, please")
    second = pending()
    assert list(second.assigned_groups.values_list("name", flat=True)) == ["managers"]
    assert not second.events.filter(action=AuditAction.REASSIGNED).exists()


# -- the reviewers' decisions cannot be written as edits ---------------------------------------------


@pytest.fixture
def two_reviews(registered_pipelines):
    """A first review with choices, then a second one that lets its reviewer edit any key."""
    registered_pipelines(
        stepkit("two-reviews-edits")
        .step(
            "triage",
            lambda c: {"body": "x"},
            review=Review(choices={"fast": "Fast track", "slow": "Slow track"}, choice_key="track"),
        )
        .step("final", lambda c: {"checked": True}, review=Review(decision_key="verdict"))  # editable=None
    )


def second_review(people):
    start("two-reviews-edits", {}, user=people.alice)
    review.approve(pending(), people.bob, choice="slow")
    final = pending()
    assert final.step == "final" and final.context["track"] == "slow" and "review" in final.context
    return final


@pytest.mark.parametrize(
    ("forged", "keys"),
    [
        ({"track": "fast"}, ["track"]),  # the first review's choice
        ({"review": {"outcome": "approved", "by": "the-boss"}}, ["review"]),  # the first review's decision
        ({"verdict": {"outcome": "approved"}}, ["verdict"]),  # its own decision key
        ({"track": "fast", "review": {}, "body": "y"}, ["review", "track"]),  # each named, nothing applied
    ],
)
def test_no_edit_may_write_another_reviews_choice_or_decision(people, two_reviews, forged, keys):
    final = second_review(people)
    before = snapshot()
    for act in (
        lambda: review.edit(final, people.carol, forged),
        lambda: review.approve(final, people.carol, forged),
        lambda: review.request_changes(final, people.carol, "Again", override_data=forged),
        lambda: review.rerun_from(final, people.alice, forged),
    ):
        with pytest.raises(InvalidOverride) as refused:
            act()
        assert sorted(refused.value.errors) == keys
    assert snapshot() == before
    message = refused.value.errors[keys[-1]][0]
    assert "cannot be edited" in message


def test_the_choice_key_of_another_review_says_it_is_a_choice(people, two_reviews):
    final = second_review(people)
    with pytest.raises(InvalidOverride) as refused:
        review.edit(final, people.carol, {"track": "fast"})
    assert refused.value.errors == {
        "track": ["This value is a reviewer's choice: it is chosen when approving; it cannot be edited."]
    }
    review.edit(final, people.carol, {"body": "edited"})  # the other keys stay editable
    assert pending().override_data == {"body": "edited"}
