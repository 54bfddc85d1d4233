"""Migrations that change data, run forward and back over existing rows."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("stepkit_django", "0005_audit_event_fk_indexes_covered")
AFTER = ("stepkit_django", "0006_checkpoint_permission_assigned")


@pytest.mark.django_db(transaction=True)
def test_0006_fills_the_queue_columns_of_existing_checkpoints_and_goes_back():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("stepkit_django")
    try:
        executor.migrate([BEFORE])
        old = executor.loader.project_state([BEFORE]).apps
        run_model = old.get_model("stepkit_django", "PipelineRun")
        checkpoint_model = old.get_model("stepkit_django", "Checkpoint")
        group = old.get_model("auth", "Group").objects.create(name="migration-reviewers")
        run = run_model.objects.create(pipeline_name="p", status="paused")
        review = {"permission": "stepkit_django.review_checkpoint"}
        open_one = checkpoint_model.objects.create(run=run, pipeline_name="p", step="a", token="t", review=review)
        assigned = checkpoint_model.objects.create(run=run, pipeline_name="p", step="b", token="t", review=review)
        assigned.assigned_groups.add(group)
        legacy = checkpoint_model.objects.create(run=run, pipeline_name="p", step="c", token="t", review={})

        executor = MigrationExecutor(connection)  # a fresh graph, as `migrate` would load it
        executor.migrate([AFTER])
        new = executor.loader.project_state([AFTER]).apps.get_model("stepkit_django", "Checkpoint")
        rows = {row.step: (row.permission, row.assigned) for row in new.objects.all()}
        assert rows == {
            "a": ("stepkit_django.review_checkpoint", False),
            "b": ("stepkit_django.review_checkpoint", True),
            "c": ("", False),  # no permission in its review settings: only superusers and its starter see it
        }
        assert {open_one.pk, assigned.pk, legacy.pk} == set(new.objects.values_list("pk", flat=True))

        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])  # and back
        executor.loader.build_graph()
        columns = [
            c.name
            for c in connection.introspection.get_table_description(connection.cursor(), "stepkit_django_checkpoint")
        ]
        assert "permission" not in columns and "assigned" not in columns
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)


@pytest.mark.django_db(transaction=True)
def test_0009_titles_existing_checkpoints_from_their_review_or_their_pipeline_and_step_and_goes_back():
    before = ("stepkit_django", "0008_audit_append_only_sqlite")
    after = ("stepkit_django", "0009_checkpoint_title_summary")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("stepkit_django")
    try:
        executor.migrate([before])
        old = executor.loader.project_state([before]).apps
        run = old.get_model("stepkit_django", "PipelineRun").objects.create(pipeline_name="payment-approval")
        checkpoints = old.get_model("stepkit_django", "Checkpoint").objects
        for step, review in [
            ("check", {"title": "Payments over {limit} need a manager"}),  # free-form then: kept as it is
            ("check", {"title": ""}),
            ("route/suspicious/hold", {}),
        ]:
            checkpoints.create(run=run, pipeline_name=run.pipeline_name, step=step, token="t", review=review)

        executor = MigrationExecutor(connection)
        executor.migrate([after])
        new = executor.loader.project_state([after]).apps.get_model("stepkit_django", "Checkpoint")
        assert sorted(new.objects.values_list("title", "summary")) == [
            ("Payment approval: check", {}),
            ("Payment approval: route / suspicious / hold", {}),
            ("Payments over {limit} need a manager", {}),
        ]

        executor = MigrationExecutor(connection)
        executor.migrate([before])
        executor.loader.build_graph()
        columns = [
            c.name
            for c in connection.introspection.get_table_description(connection.cursor(), "stepkit_django_checkpoint")
        ]
        assert "title" not in columns and "summary" not in columns
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)


@pytest.mark.django_db(transaction=True)
def test_0018_gives_existing_checkpoints_the_audience_of_their_assignees_and_goes_back():
    before = ("stepkit_django", "0017_audit_chain")
    after = ("stepkit_django", "0018_checkpoint_audience")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("stepkit_django")
    try:
        executor.migrate([before])
        old = executor.loader.project_state([before]).apps
        checkpoint_model = old.get_model("stepkit_django", "Checkpoint")
        group = old.get_model("auth", "Group").objects.create(name="migration-editors")
        user = old.get_model("auth", "User").objects.create(username="migration-reviewer")
        run = old.get_model("stepkit_django", "PipelineRun").objects.create(pipeline_name="p", status="paused")

        def checkpoint(step, assigned, users=(), groups=()):
            cp = checkpoint_model.objects.create(run=run, pipeline_name="p", step=step, token="t", assigned=assigned)
            cp.assigned_users.set(users)
            cp.assigned_groups.set(groups)

        checkpoint("nobody", False)
        checkpoint("group", True, groups=[group])
        checkpoint("both", True, users=[user], groups=[group])
        checkpoint("both-again", True, users=[user], groups=[group])
        checkpoint("gone", True)  # its assignees were deleted

        executor = MigrationExecutor(connection)
        executor.migrate([after])
        new = executor.loader.project_state([after]).apps.get_model("stepkit_django", "Checkpoint")
        rows = {
            cp.step: None
            if cp.audience is None
            else (
                sorted(cp.audience.users.values_list("username", flat=True)),
                sorted(cp.audience.groups.values_list("name", flat=True)),
            )
            for cp in new.objects.select_related("audience")
        }
        assert rows == {
            "nobody": None,
            "group": ([], ["migration-editors"]),
            "both": (["migration-reviewer"], ["migration-editors"]),
            "both-again": (["migration-reviewer"], ["migration-editors"]),
            "gone": None,
        }
        assert new.objects.get(step="both").audience_id == new.objects.get(step="both-again").audience_id

        executor = MigrationExecutor(connection)
        executor.migrate([before])  # and back
        executor.loader.build_graph()
        columns = [
            c.name
            for c in connection.introspection.get_table_description(connection.cursor(), "stepkit_django_checkpoint")
        ]
        assert "audience_id" not in columns
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)


def _event_indexes():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "stepkit_django_auditevent")
    return {
        tuple(info["columns"])
        for info in constraints.values()
        if info["index"] and not info["primary_key"] and not info.get("foreign_key")
    }, set(constraints)


@pytest.mark.django_db(transaction=True)
def test_0020_makes_the_checkpoint_and_actor_indexes_partial_and_goes_back():
    before = ("stepkit_django", "0019_pending_counts")
    after = ("stepkit_django", "0020_event_partial_indexes")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("stepkit_django")
    try:
        executor.migrate([before])
        columns, names = _event_indexes()
        assert ("checkpoint_id",) in columns and "stepkit_event_actor" in names
        executor = MigrationExecutor(connection)
        executor.migrate([after])
        columns, names = _event_indexes()
        # One index on each column, the partial one: Django's plain index on checkpoint_id is gone.
        assert [c for c in columns if c[0] == "checkpoint_id"] == [("checkpoint_id",)]
        assert {"stepkit_event_checkpoint", "stepkit_event_by_actor"} <= names
        assert "stepkit_event_actor" not in names
        assert not [n for n in names if n.startswith("stepkit_django_auditevent_checkpoint_id")]
        executor = MigrationExecutor(connection)
        executor.migrate([before])  # and back
        columns, names = _event_indexes()
        assert "stepkit_event_actor" in names and "stepkit_event_checkpoint" not in names
        assert [n for n in names if n.startswith("stepkit_django_auditevent_checkpoint_id")]
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)
