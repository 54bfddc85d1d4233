"""The compiled statements of the hot paths (stepkit_django.execution._sql): same rows as the ORM, all or nothing."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import DataError, connection
from django.utils import timezone

from stepkit_django.execution import _sql as sql
from stepkit_django.models import Approval, AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import AuditAction, CheckpointStatus, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def paused():
    run = PipelineRun.objects.create(
        pipeline_name="p", status=RunStatus.PAUSED, input={"a": 1}, context={"a": 1, "when": "2026-01-02"}
    )
    cp = Checkpoint.objects.create(
        run=run, pipeline_name="p", step="s", token="t", context={"a": 1}, review={"approvals_required": 1}
    )
    return cp


def event(run, action, **fields):
    return AuditEvent(run=run, pipeline_name=run.pipeline_name, action=action, **fields)


def decide(cp, *, version, run_from):
    now = timezone.now()
    updates = [
        sql.Update(
            Checkpoint,
            cp.pk,
            {"status": CheckpointStatus.APPROVED, "decided_at": now},
            where={"status": CheckpointStatus.PENDING, "version": version},
            increment=("version",),
        ),
        sql.Update(PipelineRun, cp.run_id, {"status": RunStatus.QUEUED}, where={"status": run_from}),
    ]
    user = User.objects.create(username=f"u{version}{run_from}")
    rows = [
        sql.Insert.of([event(cp.run, AuditAction.APPROVED, checkpoint=cp, actor=user)]),
        sql.Insert.of([Approval(checkpoint=cp, user=user, created_at=now)]),
    ]
    return sql.write(updates, rows)


def test_write_applies_every_update_and_insert(paused):
    assert decide(paused, version=paused.version, run_from=RunStatus.PAUSED) is None
    paused.refresh_from_db()
    assert paused.status == CheckpointStatus.APPROVED and paused.version == 2
    assert paused.run.status == RunStatus.QUEUED
    assert paused.events.get().action == AuditAction.APPROVED and paused.approvals.count() == 1


@pytest.mark.parametrize(
    ("version", "run_from", "failed"), [(7, RunStatus.PAUSED, 0), (1, RunStatus.RUNNING, 1)], ids=["first", "second"]
)
def test_write_is_all_or_nothing_and_names_the_update_that_found_no_row(paused, version, run_from, failed):
    assert decide(paused, version=version, run_from=run_from) == failed
    paused.refresh_from_db()
    assert paused.status == CheckpointStatus.PENDING and paused.version == 1  # the first update was undone too
    assert paused.run.status == RunStatus.PAUSED
    assert not AuditEvent.objects.exists() and not Approval.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("version", "run_from", "failed"),
    [(1, RunStatus.PAUSED, None), (7, RunStatus.PAUSED, 0), (1, RunStatus.RUNNING, 1)],
    ids=["done", "first", "second"],
)
def test_write_outside_a_transaction_is_one_statement_that_undoes_itself(paused, version, run_from, failed):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert decide(paused, version=version, run_from=run_from) == failed
    sent = [q["sql"].split()[0] for q in queries.captured_queries if "auth_user" not in q["sql"]]
    if failed == 1:  # the statement aborted itself; the retry in a transaction tells which UPDATE failed
        assert sent == ["WITH", "BEGIN", "WITH", "ROLLBACK"]
    else:
        assert sent == ["WITH"]  # no BEGIN, no COMMIT
    paused.refresh_from_db()
    if failed is None:
        assert paused.status == CheckpointStatus.APPROVED and paused.run.status == RunStatus.QUEUED
        assert AuditEvent.objects.count() == 1 and Approval.objects.count() == 1
    else:
        assert paused.status == CheckpointStatus.PENDING and paused.version == 1  # the first update was undone
        assert paused.run.status == RunStatus.PAUSED
        assert not AuditEvent.objects.exists() and not Approval.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_write_with_autocommit_off_leaves_the_callers_transaction_usable(paused):
    from django.db import transaction

    transaction.set_autocommit(False)
    try:
        PipelineRun.objects.filter(pk=paused.run_id).update(current_step="mine")  # the caller's own work
        assert decide(paused, version=1, run_from=RunStatus.RUNNING) == 1
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    paused.refresh_from_db()
    assert paused.run.current_step == "mine" and paused.status == CheckpointStatus.PENDING


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_write_reraises_other_data_errors_and_writes_nothing(paused):
    rows = [event(paused.run, AuditAction.APPROVED)]
    rows[0].pipeline_name = "x" * 201  # too long for the column: not the statement's own abort
    updates = [
        sql.Update(Checkpoint, paused.pk, {"comment": "c"}, where={"status": CheckpointStatus.PENDING}),
        sql.Update(PipelineRun, paused.run_id, {"current_step": "s"}, where={"status": RunStatus.PAUSED}),
    ]
    with pytest.raises(DataError, match="too long"):
        sql.write(updates, [sql.Insert.of(rows)])
    paused.refresh_from_db()
    assert paused.comment == "" and paused.run.current_step == ""


def test_write_inserts_several_rows_with_null_foreign_keys(paused):
    # Rows whose nullable columns are all NULL: on PostgreSQL the VALUES list is typed by casts.
    rows = [event(paused.run, AuditAction.STEP_COMPLETED, data={"step": f"s{i}"}) for i in range(3)]
    update = sql.Update(PipelineRun, paused.run_id, {"current_step": "s2"}, where={"status": RunStatus.PAUSED})
    assert sql.write([update], [sql.Insert.of(rows)]) is None
    stored: list[tuple[object, ...]] = list(
        AuditEvent.objects.order_by("id").values_list("actor_id", "checkpoint_id", "data")
    )
    assert stored == [(None, None, {"step": f"s{i}"}) for i in range(3)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_write_checks_the_column_length_instead_of_truncating(paused):
    rows = [event(paused.run, AuditAction.STEP_COMPLETED)]
    rows[0].pipeline_name = "x" * 201  # max_length is 200; a cast to varchar(200) would cut it silently
    update = sql.Update(PipelineRun, paused.run_id, {"current_step": "s"}, where={"status": RunStatus.PAUSED})
    with pytest.raises(DataError):
        sql.write([update], [sql.Insert.of(rows)])
    assert PipelineRun.objects.get().current_step == ""  # the statement failed as a whole


def test_merge_needs_postgresql(paused):
    update = sql.Update(PipelineRun, paused.run_id, {"context": {"b": 2}}, where={}, merge=("context",))
    if connection.vendor == "postgresql":
        assert sql.write([update]) is None
        assert PipelineRun.objects.get().context == {"a": 1, "when": "2026-01-02", "b": 2}
    else:
        with pytest.raises(ValueError, match="PostgreSQL"):
            sql.write([update])


def test_get_loads_the_same_instances_as_the_orm(paused):
    when = datetime.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=datetime.UTC)
    Checkpoint.objects.filter(pk=paused.pk).update(decided_at=when, override_data={"x": [1, {"y": None}]})
    expected = Checkpoint.objects.select_related("run").get(pk=paused.pk)
    loaded = sql.get(Checkpoint, str(paused.pk), related="run")
    for model, a, b in ((Checkpoint, expected, loaded), (PipelineRun, expected.run, loaded.run)):
        for field in model._meta.concrete_fields:
            assert getattr(b, field.attname) == getattr(a, field.attname), field.name
    assert loaded.decided_at == when and loaded.override_data == {"x": [1, {"y": None}]}
    assert not loaded._state.adding and loaded._state.db == "default"
    with pytest.raises(Checkpoint.DoesNotExist):
        sql.get(Checkpoint, "00000000-0000-0000-0000-000000000000", related="run")


class Name(str):
    """A ``str`` subclass: the shortcut for plain values must not take it for one."""


@pytest.mark.parametrize(
    ("model", "name", "value"),
    [
        (PipelineRun, "pipeline_name", "p"),
        (PipelineRun, "pipeline_name", Name("p")),
        (PipelineRun, "pipeline_name", 12),
        (PipelineRun, "current_step", None),
        (PipelineRun, "id", "9b2f6c1e-2d5b-4f8a-9a43-0c2d7f1e8b11"),
        (PipelineRun, "updated_at", timezone.now()),
        (PipelineRun, "updated_at", datetime.datetime(2026, 1, 2, 3, 4, 5)),  # naive: converted (and warned)
        (PipelineRun, "lease_expires_at", None),
        (PipelineRun, "audit_head", b"\x00\x01"),
        (PipelineRun, "audit_head", None),
        (PipelineRun, "context", {"a": [1, "b"]}),
        (PipelineRun, "pipeline_version", 3),
        (PipelineRun, "pipeline_version", True),
        (AuditEvent, "run", "9b2f6c1e-2d5b-4f8a-9a43-0c2d7f1e8b11"),
        (AuditEvent, "actor", None),
        (AuditEvent, "actor", 7),
        (AuditEvent, "data", {}),
        (AuditEvent, "chain", b"\xff" * 32),
    ],
)
@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime")
def test_prepared_values_are_the_fields_own(model, name, value):
    """What the hot path sends for a value is what the field's get_db_prep_save() gives (its shortcuts skip
    the call only where that gives the value back as it is): compared by what the database stores."""
    field = model._meta.get_field(name)
    expected = field.get_db_prep_save(value, connection)
    prepared = sql.prep(model, name, value)
    if type(expected).__name__ in ("Binary", "Jsonb"):  # the driver's wrappers compare by identity
        expected, prepared = getattr(expected, "obj", expected), getattr(prepared, "obj", prepared)
    assert prepared == expected
    assert type(prepared) is type(expected) or (isinstance(expected, bytes | memoryview) and prepared == expected)
