"""The admin review queue, driven with the Django test client."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}
QUEUE = "/admin/stepkit_django/checkpoint/"


def staff(*users):
    for user in users:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


@pytest.fixture
def bob(people, client):
    staff(people.bob, people.carol, people.eve, people.alice)
    client.force_login(people.bob)
    return client


def paused(people, n=1, **input):
    runs = [start("email-approval", {**EMAIL, **input}, user=people.alice) for _ in range(n)]
    return runs[0] if n == 1 else runs


def page(checkpoint):
    return f"{QUEUE}{checkpoint.pk}/change/"


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def rows(response):
    return list(response.context["cl"].result_list)


# -- the changelist is the queue -------------------------------------------------------------


def test_queue_shows_pending_items_oldest_first_with_the_columns(people, bob):
    runs = paused(people, 3)
    review.reject(runs[1].checkpoints.get(), people.carol)
    response = bob.get(QUEUE)
    assert response.status_code == 200
    assert [cp.run_id for cp in rows(response)] == [runs[0].pk, runs[2].pk]
    html = response.content.decode()
    for column in ("Title", "Waiting", "Due in", "Assigned to", "Approvals"):
        assert f">{column}</a></div>" in html or f">{column}</span></div>" in html, column
    assert "email-approval · generate" in html  # the pipeline and step, under each title
    assert "0/1" in html and "editors" in html
    assert "Queue overview" in html
    everything = bob.get(QUEUE + "?status=all")
    assert len(rows(everything)) == 3
    assert [cp.status for cp in rows(bob.get(QUEUE + "?status=rejected"))] == ["rejected"]


def test_queue_filters(people, bob, registered_pipelines):
    registered_pipelines(
        stepkit("timed").step("s", lambda c: {}, review=Review(timeout=timedelta(hours=1), assign_to_group="managers"))
    )
    a, b = paused(people, 2)
    late = start("timed", {}, user=people.alice)
    Checkpoint.objects.filter(run=late).update(expires_at=timezone.now() - timedelta(minutes=1))
    review.claim(a.checkpoints.get(), people.bob)
    people.bob.groups.add(people.managers)

    def runs_for(query):
        return {cp.run_id for cp in rows(bob.get(QUEUE + query))}

    assert runs_for("?claimed_by_me=yes") == {a.pk}
    assert runs_for("?unclaimed=yes") == {b.pk, late.pk}
    assert runs_for("?overdue=yes") == {late.pk}
    assert runs_for("?pipeline_name=timed") == {late.pk}
    assert runs_for("?step=generate") == {a.pk, b.pk}
    assert runs_for("?assigned_to_me=yes") == {a.pk, b.pk, late.pk}
    people.bob.groups.remove(people.managers)
    assert runs_for("?assigned_to_me=yes") == {a.pk, b.pk}


def test_facet_counts_on_demand_and_no_date_hierarchy(people, bob):
    paused(people, 2)
    html = bob.get(QUEUE).content.decode()
    assert "Pending (2)" not in html  # counts are on demand on a large queue
    assert "_facets=True" in html  # the "Show counts" link
    assert "Pending (2)" in bob.get(QUEUE + "?_facets=True").content.decode()
    assert "created_at__year=" not in html  # no date hierarchy: its queries read the whole visible queue


def test_pipeline_and_step_filters_come_from_the_registry_without_scanning_the_table(people, bob):
    paused(people)
    with CaptureQueriesContext(connection) as queries:
        response = bob.get(QUEUE)
    assert not [q for q in queries if "DISTINCT" in q["sql"] and '"pipeline_name"' in q["sql"]]
    filters = {str(spec.title): [c["display"] for c in spec.choices(response.context["cl"])] for spec in
               response.context["cl"].filter_specs}  # fmt: skip
    assert {"email-approval", "payment-approval", "five-steps"} <= set(filters["pipeline"])
    assert {"generate", "check"} <= set(filters["step"])  # steps declared with review=
    assert "send" not in filters["step"]
    chosen = bob.get(QUEUE + "?pipeline_name=email-approval")
    steps = next(spec for spec in chosen.context["cl"].filter_specs if str(spec.title) == "step")
    assert [c["display"] for c in steps.choices(chosen.context["cl"])][1:] == ["generate"]


def test_the_changelist_query_count_does_not_grow_with_rows(people, bob):
    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert bob.get(QUEUE).status_code == 200
        return len(queries)

    paused(people, 2)
    few = count_queries()
    paused(people, 12)
    many = count_queries()
    assert len(rows(bob.get(QUEUE))) == 14
    assert many == few


def test_the_queue_page_reads_neither_the_run_nor_the_contexts_nor_empty_assignments(people, bob, registered_pipelines):
    registered_pipelines(stepkit("open").step("s", lambda c: {"n": 1}, review=Review()))
    start("open", {}, user=people.alice)

    def queue_sql():
        with CaptureQueriesContext(connection) as queries:
            response = bob.get(QUEUE + "?pipeline_name=open")
        assert response.status_code == 200 and len(rows(response)) == 1
        return response, [q["sql"] for q in queries.captured_queries]

    response, sent = queue_sql()
    page_query = next(sql for sql in sent if "ORDER BY" in sql and 'FROM "stepkit_django_checkpoint"' in sql)
    assert 'JOIN "stepkit_django_pipelinerun"' not in page_query  # the run is not read
    for column in ("context", "override_data", "token"):
        assert f'"stepkit_django_checkpoint"."{column}"' not in page_query
    assert not [sql for sql in sent if "_assigned_" in sql.split(" WHERE ")[0]]  # assigned to nobody: no lookups
    # Assigned later through the ORM: the page reads and shows the assignment.
    Checkpoint.objects.get(pipeline_name="open").assigned_users.add(people.bob)
    response, sent = queue_sql()
    assert len([sql for sql in sent if "_assigned_" in sql.split(" WHERE ")[0]]) == 2
    assert '<td class="field-assigned_to">bob</td>' in response.content.decode()


def test_the_selection_checkbox_is_djangos_markup(people):
    from django.contrib import admin as django_admin
    from django.contrib.admin import ModelAdmin

    cp = paused(people).checkpoints.get()
    model_admin = django_admin.site.get_model_admin(Checkpoint)
    ours = model_admin.action_checkbox(cp)
    assert ours.startswith(ModelAdmin.action_checkbox(model_admin, cp))
    assert f'value="{cp.pk}"' in ours
    assert ours.endswith(f'<input type="hidden" name="version-{cp.pk}" value="{cp.version}">')  # what was listed


def test_users_without_the_review_permission_cannot_open_the_queue(people, client):
    staff(people.eve)
    client.force_login(people.eve)
    assert client.get(QUEUE).status_code == 403


def test_reviewers_only_see_checkpoints_they_may_review(people, bob, registered_pipelines):
    registered_pipelines(stepkit("managers").step("s", lambda c: {}, review=Review(assign_to_group="managers")))
    hidden = start("managers", {}, user=people.alice).checkpoints.get()
    paused(people)
    assert [cp.pipeline_name for cp in rows(bob.get(QUEUE))] == ["email-approval"]
    assert bob.get(page(hidden)).status_code == 404


# -- the review page -------------------------------------------------------------------------


def test_review_page_shows_steps_context_typed_fields_and_buttons(people, bob):
    cp = paused(people).checkpoints.get()
    response = bob.get(page(cp))
    assert response.status_code == 200
    html = response.content.decode()
    assert "generate — paused here (generate)" in html
    assert "send — to run after approval" in html
    assert '<th scope="row">customer</th>' in html  # the context as a table
    assert "&quot;customer&quot;: &quot;Ada&quot;" in html  # and as indented JSON, folded
    form = response.context["form"]
    assert [f.name for f in form.edit_fields()] == ["edit__subject", "edit__body"]
    assert form.fields["edit__subject"].max_length == 200
    assert form["edit__body"].value() == "Hello Ada, thanks for writing."
    for button in ("Claim", "Save edits", "Approve and resume", "Reject"):
        assert f">{button}</button>" in html
    assert "Audit trail" in html and "Paused for review" in html


def test_schema_types_become_typed_fields(people, bob, registered_pipelines):
    schema = {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "minimum": 0},
            "count": {"type": "integer"},
            "urgent": {"type": "boolean"},
            "channel": {"enum": ["email", "sms"]},
            "tags": {"type": "array"},
        },
    }
    registered_pipelines(
        stepkit("typed").step(
            "s",
            lambda c: {"amount": 10.5, "count": 2, "urgent": False, "channel": "email", "tags": ["a"]},
            review=Review(editable=["amount", "count", "urgent", "channel", "tags"], schema=schema),
        )
    )
    cp = start("typed", {}, user=people.alice).checkpoints.get()
    fields = bob.get(page(cp)).context["form"].fields
    kinds = {
        name.removeprefix("edit__"): type(field).__name__ for name, field in fields.items() if name.startswith("edit__")
    }
    assert kinds == {
        "amount": "NumberField",  # a FloatField that keeps whole numbers whole
        "count": "IntegerField",
        "urgent": "BooleanField",
        "channel": "TypedChoiceField",
        "tags": "PrettyJSONField",
    }
    response = bob.post(
        page(cp),
        {
            "_action": "approve",
            "expected_version": cp.version,
            "edit__amount": "99.5",
            "edit__count": "2",
            "edit__channel": "sms",
            "edit__tags": '["a", "b"]',
            "comment": "",
        },
        follow=True,
    )
    assert messages_of(response)[0].startswith("Approved “")
    cp.refresh_from_db()
    assert cp.override_data == {"amount": 99.5, "channel": "sms", "tags": ["a", "b"]}


def post(client, cp, action, **data):
    return client.post(
        page(cp), {"_action": action, "expected_version": cp.version, "comment": "", **data}, follow=True
    )


def test_claim_release_save_edits_approve_buttons(people, bob):
    run = paused(people)
    cp = run.checkpoints.get()
    assert messages_of(post(bob, cp, "claim")) == ["You claimed this checkpoint."]
    cp.refresh_from_db()
    assert ">Release</button>" in bob.get(page(cp)).content.decode()
    assert messages_of(post(bob, cp, "release")) == ["You released your claim."]
    cp.refresh_from_db()
    body = {"edit__subject": "Re: Hello", "edit__body": "Edited in the admin"}
    assert messages_of(post(bob, cp, "edit", **body)) == ["Saved edits to body."]
    cp.refresh_from_db()
    assert messages_of(post(bob, cp, "approve", **body, comment="Looks good"))[0].startswith("Approved “")
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert SideEffect.objects.get().payload["body"] == "Edited in the admin"
    assert [e.action for e in cp.events.all()] == ["paused", "claimed", "released", "edited", "approved", "resumed"]


def test_reject_button(people, bob):
    run = paused(people)
    cp = run.checkpoints.get()
    response = post(bob, cp, "reject", comment="Not our tone", edit__subject="x", edit__body="y")
    assert messages_of(response)[0].endswith(": the run will not continue.")
    run.refresh_from_db()
    assert run.status == RunStatus.REJECTED
    assert cp.events.get(action="rejected").note == "Not our tone"


def test_invalid_edits_show_field_errors_next_to_the_fields_and_change_nothing(people, bob):
    cp = paused(people).checkpoints.get()
    response = post(bob, cp, "approve", edit__subject="x" * 201, edit__body="ok")
    assert response.status_code == 200
    assert messages_of(response) == ["Please correct the errors below."]
    assert response.context["form"].errors["edit__subject"]
    cp.refresh_from_db()
    assert cp.status == CheckpointStatus.PENDING and cp.override_data == {}


def test_service_validation_errors_are_shown_on_the_fields(people, bob, registered_pipelines):
    registered_pipelines(
        stepkit("strict").step(
            "s",
            lambda c: {"code": "AB"},
            review=Review(editable=["code"], schema={"properties": {"code": {"pattern": "^[A-Z]{2}$"}}}),
        )
    )
    cp = start("strict", {}, user=people.alice).checkpoints.get()
    response = post(bob, cp, "edit", edit__code='"abc"')
    assert messages_of(response) == ["The edits were refused; see the errors below."]
    assert "does not match" in str(response.context["form"].errors["edit__code"])
    assert AuditEvent.objects.filter(action="edited").count() == 0


def test_conflict_and_permission_messages(people, bob, client):
    cp = paused(people).checkpoints.get()
    cp = review.claim(cp, people.carol)
    response = post(bob, cp, "approve", edit__subject="s", edit__body="b")
    assert messages_of(response) == ["This checkpoint is claimed by carol."]
    # stale version: carol edits while bob still has the old page
    review.release(cp, people.carol)
    seen = Checkpoint.objects.get(pk=cp.pk)
    review.edit(seen, people.carol, {"subject": "carol's subject"})
    response = post(bob, seen, "approve", edit__subject="s", edit__body="b")
    assert "changed since you loaded it" in messages_of(response)[0]
    # four-eyes in the admin: alice has the permission now, but started the run
    people.alice.user_permissions.add(people.review_permission)
    client.force_login(people.alice)
    response = post(client, Checkpoint.objects.get(pk=cp.pk), "approve", edit__subject="s", edit__body="b")
    assert messages_of(response) == ["Four-eyes rule: the user who started the run may not review it."]
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING


def test_reassign_replaces_the_assignment_and_drops_the_claim(people, bob):
    people.grant_reassign("bob")
    cp = paused(people).checkpoints.get()
    review.claim(cp, people.bob)
    cp.refresh_from_db()
    response = bob.post(
        page(cp),
        {"_action": "reassign", "expected_version": cp.version, "reassign-to_users": "dave, carol",
         "reassign-to_groups": ["managers"]},
        follow=True,
    )  # fmt: skip
    assert "Reassigned to dave, carol, managers." in response.content.decode()
    assert response.redirect_chain[-1][0] == QUEUE  # bob no longer reviews it: back to his queue
    cp.refresh_from_db()
    assert sorted(u.username for u in cp.assigned_users.all()) == ["carol", "dave"]
    assert [g.name for g in cp.assigned_groups.all()] == ["managers"]
    assert cp.claimed_by is None
    event = AuditEvent.objects.get(checkpoint=cp, action="reassigned")
    assert event.actor == people.bob and event.data["after"]["groups"] == ["managers"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"reassign-to_users": "nobody, dave"}, "There is no user &#x27;nobody&#x27;."),
        ({}, "Choose at least one user or group."),
        ({"reassign-to_groups": ["no such group"]}, "Select a valid choice."),
    ],
)
def test_reassign_errors_are_shown_and_change_nothing(people, bob, data, error):
    people.grant_reassign("bob")
    cp = paused(people).checkpoints.get()
    before = (cp.version, AuditEvent.objects.count())
    response = bob.post(page(cp), {"_action": "reassign", "expected_version": cp.version, **data})
    assert response.status_code == 200
    assert error in response.content.decode()
    cp.refresh_from_db()
    assert (cp.version, AuditEvent.objects.count()) == before
    assert [g.name for g in cp.assigned_groups.all()] == ["editors"]


def test_decided_checkpoints_are_read_only(people, bob):
    cp = paused(people).checkpoints.get()
    review.reject(cp, people.carol, comment="no")
    response = bob.get(page(cp))
    html = response.content.decode()
    assert "This checkpoint is read-only." in html
    assert "Approve and resume" not in html
    response = post(bob, Checkpoint.objects.get(pk=cp.pk), "approve")
    assert messages_of(response) == ["This checkpoint was already rejected by carol."]


# -- bulk actions ---------------------------------------------------------------------------


# -- runs, events, overview ------------------------------------------------------------------


def test_run_admin_is_read_only_with_the_audit_trail_inline(people, bob):
    run = paused(people)
    review.edit(run.checkpoints.get(), people.bob, {"body": "New body"})
    response = bob.get(f"/admin/stepkit_django/pipelinerun/{run.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html  # read-only: no save button
    assert "Edited body by bob" in html
    assert '<del><span class="visually-hidden">[removed: </span>Hello Ada, thanks for writing.' in html
    assert '<ins><span class="visually-hidden">[added: </span>New body' in html
    assert bob.get("/admin/stepkit_django/pipelinerun/add/").status_code == 403


def test_run_actions_cancel_and_retry(people, client, registered_pipelines):
    attempts = []

    def flaky(ctx):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("temporary")
        return {}

    registered_pipelines(stepkit("flaky-admin").step("s", flaky))
    failed = start("flaky-admin", {}, user=people.alice)
    waiting = paused(people)
    client.force_login(people.root)
    url = "/admin/stepkit_django/pipelinerun/"
    response = client.post(url, {"action": "retry_runs", "_selected_action": [str(failed.pk)]}, follow=True)
    assert messages_of(response) == ["Retried 1 of 1 run(s)."]
    response = client.post(url, {"action": "cancel_runs", "_selected_action": [str(waiting.pk)]}, follow=True)
    assert messages_of(response) == ["Cancelled 1 of 1 run(s)."]
    assert {r.status for r in PipelineRun.objects.all()} == {"completed", "cancelled"}


def test_audit_event_admin_lists_and_filters_read_only(people, bob):
    run = paused(people)
    review.approve(run.checkpoints.get(), people.bob)
    response = bob.get("/admin/stepkit_django/auditevent/?action__exact=approved")
    assert response.status_code == 200
    assert [e.action for e in response.context["cl"].result_list] == ["approved"]
    response = bob.get(f"/admin/stepkit_django/auditevent/?actor__id__exact={people.bob.pk}")
    assert {e.action for e in response.context["cl"].result_list} == {"approved", "resumed"}
    event = AuditEvent.objects.first()
    assert bob.post(f"/admin/stepkit_django/auditevent/{event.pk}/delete/").status_code == 403


def test_overview_page_linked_from_the_index(people, bob):
    runs = paused(people, 3)
    review.approve(runs[0].checkpoints.get(), people.bob)
    review.reject(runs[1].checkpoints.get(), people.bob)
    index = bob.get("/admin/").content.decode()
    assert "/admin/stepkit_django/queueoverview/" in index
    assert bob.get("/admin/stepkit_django/queueoverview/")["Location"] == reverse(
        "admin:stepkit_django_checkpoint_overview"
    )
    response = bob.get(reverse("admin:stepkit_django_checkpoint_overview"))
    assert response.status_code == 200
    assert response.context["pending_total"] == 1
    assert response.context["decisions_total"] == 2
    html = response.content.decode()
    assert "<svg" in html and "1 approved" in html and "1 rejected" in html
