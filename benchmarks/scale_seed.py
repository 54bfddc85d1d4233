"""The million-row queue's data: seeded once in SQL (``generate_series``), kept between runs.

:func:`ensure_seeded` seeds the scale database when its marker table ``stepkit_scale_seed`` does not
hold :data:`SEED_VERSION` (a new version re-seeds), then runs ``VACUUM ANALYZE``. Every ``INSERT``
names its columns, so columns added later with a default or NULL do not break it.

What it writes (``i`` from 1 to :data:`CHECKPOINTS`, one run and one checkpoint each, created over the
last year, the newest last):

* runs of four registered pipelines (``email-approval``, ``payment-approval``, ``load-review``,
  ``bench-pause``), started by one of :data:`USERS` users;
* a checkpoint per run: a fifth pending (``paused`` runs), the rest decided within two days
  (approved, 4% rejected, 2% expired; their runs ended, so the purge finds them), with a title
  ``Pay Supplier 01234 5678 EUR`` (:data:`PAYEES` payees), a summary, a small context;
  assigned to nobody (half), to the group ``scale-editors`` (30%), to ``scale-reviewer`` (10%),
  or to ``scale-legal`` (10%, out of the reviewer's sight), each with the audience of its assignees
  (``Checkpoint.audience``, audiences made through the ORM); one pending in twenty claimed;
* a thousandth of them (:data:`ORPHANS`, a hundredth of the legal ones) *orphans*: assigned, no assignee
  left (no assignment row), half with no audience, half with the audience of a group deleted since
  (``scale-gone``, no members left): a reassigner's queue shows them (see ``permissions._orphaned``);
* an approval per approved checkpoint;
* :data:`EVENTS_PER_RUN` audit events per run, a second apart.

The bulk load runs with ``session_replication_role = replica`` (no foreign-key checks or triggers
per row: the rows are consistent by construction) and the tables' secondary indexes dropped and
re-created after it, which is several times faster than maintaining them row by row; it needs a
superuser, as the local benchmark server's ``postgres`` is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from importlib import import_module
from typing import Any

#: How many checkpoints (and runs); ``SCALE_CHECKPOINTS`` makes a smaller database to try the bench on.
CHECKPOINTS = int(os.environ.get("SCALE_CHECKPOINTS", "1000000"))
#: Change it to re-seed a database seeded by an older version (the count is part of it).
SEED_VERSION = f"scale-2-{CHECKPOINTS}"
EVENTS_PER_RUN = 10
USERS = 20
PAYEES = 20_000
#: The share of checkpoints whose assignees are all gone (a reassigner's orphans), taken from the legal ones.
ORPHANS = 0.001
#: Runs inserted per statement (and their events), so that progress can be reported.
CHUNK = min(100_000, CHECKPOINTS)
#: (pipeline, its review step), all registered by the test project or the benchmark app.
PIPELINES = (
    ("email-approval", "generate"),
    ("payment-approval", "check"),
    ("load-review", "draft"),
    ("bench-pause", "s1"),
)
PERMISSION = "stepkit_django.review_checkpoint"
#: The audit action of each of a run's events, in order.
ACTIONS = (
    "run_started",
    "step_completed",
    "paused",
    "claimed",
    "edited",
    "approved",
    "resumed",
    "step_completed",
    "step_completed",
    "run_completed",
)
TABLES = (
    "stepkit_django_pipelinerun",
    "stepkit_django_checkpoint",
    "stepkit_django_checkpoint_assigned_users",
    "stepkit_django_checkpoint_assigned_groups",
    "stepkit_django_approval",
    "stepkit_django_auditevent",
)

MARKER = """
CREATE TABLE IF NOT EXISTS stepkit_scale_seed (
    version text PRIMARY KEY, seeded_at timestamptz NOT NULL, seconds double precision NOT NULL,
    checkpoints integer NOT NULL, events bigint NOT NULL
)
"""


def _people() -> dict[str, Any]:
    """The bench's users and groups (through the ORM): their ids go into the SQL."""
    from django.contrib.auth.models import Group, Permission, User

    review = Permission.objects.get(content_type__app_label="stepkit_django", codename="review_checkpoint")
    manage = Permission.objects.get(content_type__app_label="stepkit_django", codename="manage_pipelinerun")
    editors, _ = Group.objects.get_or_create(name="scale-editors")
    legal, _ = Group.objects.get_or_create(name="scale-legal")
    reviewer, _ = User.objects.get_or_create(username="scale-reviewer", defaults={"is_staff": True})
    reviewer.user_permissions.add(review)
    reviewer.groups.add(editors)
    manager, _ = User.objects.get_or_create(username="scale-manager", defaults={"is_staff": True})
    manager.user_permissions.add(review, manage)
    users = []
    for n in range(USERS):
        user, _ = User.objects.get_or_create(username=f"scale-user-{n:02d}")
        users.append(user.pk)
    # The sets of assignees the checkpoints have, as the application keeps them (Checkpoint.audience).
    from stepkit_django.audiences import audience_of

    gone = Group.objects.create(name=f"scale-gone-{Group.objects.count()}")
    audience = {
        "editors": audience_of([], [editors.pk]),
        "legal": audience_of([], [legal.pk]),
        "reviewer": audience_of([reviewer.pk], []),
        "gone": audience_of([], [gone.pk]),
    }
    gone.delete()  # its audience keeps its id and loses its only member, as a deleted group's does
    return {
        "reviewer": reviewer.pk,
        "editors": editors.pk,
        "legal": legal.pk,
        "users": users,
        "audiences": {name: row.pk for name, row in audience.items() if row is not None},
    }


def _array(values: list[int]) -> str:
    return "(ARRAY[" + ",".join(str(int(v)) for v in values) + "])"


def _statements(first: int, last: int, people: dict[str, Any]) -> list[str]:
    """The INSERTs of runs ``first`` to ``last``; ``i`` numbers them, everything else derives from it."""
    users = _array(people["users"])
    pipelines = "(ARRAY[" + ",".join(f"'{name}'" for name, _ in PIPELINES) + "])"
    steps = "(ARRAY[" + ",".join(f"'{step}'" for _, step in PIPELINES) + "])"
    actions = "(ARRAY[" + ",".join(f"'{a}'" for a in ACTIONS) + "])"
    audiences = people["audiences"]
    # The columns every statement derives from i (a LATERAL so each is computed once per row).
    derived = f"""
        FROM generate_series({first}, {last}) AS i,
        LATERAL (SELECT
            md5('run-' || i)::uuid AS run_id,
            md5('cp-' || i)::uuid AS cp_id,
            {pipelines}[1 + i % {len(PIPELINES)}] AS pipeline,
            {steps}[1 + i % {len(PIPELINES)}] AS step,
            now() - make_interval(secs => ({CHECKPOINTS} - i) * 31536000.0 / {CHECKPOINTS}) AS created,
            CASE WHEN i % 5 = 0 THEN 'pending' WHEN i % 25 = 1 THEN 'rejected' WHEN i % 50 = 3 THEN 'expired'
                 ELSE 'approved' END AS status,
            (i / 5) % 10 AS assignment,
            {users}[1 + i % {USERS}] AS decider,
            {users}[1 + (i + 7) % {USERS}] AS starter,
            'Supplier ' || lpad((i % {PAYEES})::text, 5, '0') AS payee,
            1000 + i % 9000 AS amount,
            (i / 5) % 10 = 9 AND (i / 50) % {round(0.1 / ORPHANS)} = 0 AS orphan
        ) AS d,
        LATERAL (SELECT
            CASE WHEN d.status <> 'pending' THEN least(now(), d.created + make_interval(hours => i % 48)) END AS decided
        ) AS t
    """
    return [
        f"""
        INSERT INTO stepkit_django_pipelinerun (id, pipeline_name, pipeline_version, status, input, context,
            outer_contexts, position, current_step, error, traceback, created_at, updated_at, started_at,
            finished_at, started_by_id, lease_owner)
        SELECT d.run_id, d.pipeline, 1,
               CASE d.status WHEN 'pending' THEN 'paused' WHEN 'approved' THEN 'completed'
                    WHEN 'rejected' THEN 'rejected' ELSE 'cancelled' END,
               jsonb_build_object('payee', d.payee, 'amount', d.amount), jsonb_build_object('invoice', 'INV-' || i),
               '[]', '[0]', d.step, '', '', d.created, coalesce(t.decided, d.created), d.created,
               t.decided + interval '1 minute', d.starter, ''
        {derived}
        """,
        f"""
        INSERT INTO stepkit_django_checkpoint (id, run_id, pipeline_name, step, position, token, context, review,
            status, claimed_by_id, claimed_at, decided_by_id, decided_at, override_data, comment, escalated,
            version, created_at, updated_at, permission, assigned, audience_id, title, summary, revision)
        SELECT d.cp_id, d.run_id, d.pipeline, d.step, '[0]', 'token',
               jsonb_build_object('payee', d.payee, 'amount', d.amount, 'invoice', 'INV-' || i,
                                  'note', repeat('lorem ipsum ', 16)),
               '{{"permission": "{PERMISSION}", "approvals_required": 1}}', d.status,
               CASE WHEN d.status = 'pending' AND (i / 5) % 20 = 3 THEN d.decider END,
               CASE WHEN d.status = 'pending' AND (i / 5) % 20 = 3 THEN d.created + interval '1 hour' END,
               CASE WHEN d.status IN ('approved', 'rejected') THEN d.decider END, t.decided, '{{}}', '', false,
               CASE WHEN d.status = 'pending' THEN 1 ELSE 3 END, d.created, coalesce(t.decided, d.created),
               '{PERMISSION}', d.assignment >= 5,
               CASE WHEN d.orphan THEN (CASE WHEN (i / 5000) % 2 = 0 THEN {audiences["gone"]} END)
                    WHEN d.assignment IN (5, 6, 7) THEN {audiences["editors"]} WHEN d.assignment = 9
                    THEN {audiences["legal"]} WHEN d.assignment = 8 THEN {audiences["reviewer"]} END,
               'Pay ' || d.payee || ' ' || d.amount || ' EUR',
               jsonb_build_object('Invoice', 'INV-' || i, 'Memo', 'order ' || (i % 777)), 1
        {derived}
        """,
        f"""
        INSERT INTO stepkit_django_checkpoint_assigned_groups (checkpoint_id, group_id)
        SELECT d.cp_id, CASE WHEN d.assignment = 9 THEN {people["legal"]} ELSE {people["editors"]} END
        {derived} WHERE d.assignment IN (5, 6, 7, 9) AND NOT d.orphan
        """,
        f"""
        INSERT INTO stepkit_django_checkpoint_assigned_users (checkpoint_id, user_id)
        SELECT d.cp_id, {people["reviewer"]} {derived} WHERE d.assignment = 8
        """,
        f"""
        INSERT INTO stepkit_django_approval (checkpoint_id, user_id, "group", created_at)
        SELECT d.cp_id, d.decider, '', t.decided {derived} WHERE d.status = 'approved'
        """,
        f"""
        INSERT INTO stepkit_django_auditevent (run_id, checkpoint_id, pipeline_name, action, actor_id, timestamp,
            data, note)
        SELECT d.run_id, CASE WHEN j BETWEEN 3 AND 7 THEN d.cp_id END, d.pipeline, {actions}[j],
               CASE WHEN j IN (4, 5, 6) THEN d.decider END, d.created + make_interval(secs => j),
               jsonb_build_object('step', d.step), ''
        {derived}, generate_series(1, {EVENTS_PER_RUN}) AS j
        """,
    ]


def seeded(cursor: Any) -> dict[str, Any] | None:
    """The marker row of :data:`SEED_VERSION`, or None when the database must be (re-)seeded."""
    cursor.execute(MARKER)
    cursor.execute(
        "SELECT seeded_at, seconds, checkpoints, events FROM stepkit_scale_seed WHERE version = %s", [SEED_VERSION]
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return {"seeded_at": row[0], "seconds": row[1], "checkpoints": row[2], "events": row[3], "now": False}


def _secondary_indexes(cursor: Any) -> list[tuple[str, str]]:
    """(name, definition) of the seeded tables' indexes that back no constraint (those are kept)."""
    cursor.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        """,
        [list(TABLES)],
    )
    return list(cursor.fetchall())


def ensure_seeded(say: Callable[[str], None] = print) -> dict[str, Any]:
    """Seed the database behind Django's default connection unless it holds this seed version already;
    the marker's figures (``seconds``: how long the seeding took; ``now``: whether it happened now)."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        found = seeded(cursor)
    if found is not None:
        return found
    people = _people()
    started = time.perf_counter()
    # One transaction: a seed that fails midway leaves the database (and its indexes) as they were.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM stepkit_scale_seed")
        cursor.execute("TRUNCATE " + ", ".join(TABLES) + ", stepkit_django_notification CASCADE")
        indexes = _secondary_indexes(cursor)
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET LOCAL session_replication_role = replica")
        for first in range(1, CHECKPOINTS + 1, CHUNK):
            last = min(CHECKPOINTS, first + CHUNK - 1)
            for statement in _statements(first, last, people):
                cursor.execute(statement)
            say(f"  seeded runs {first:,}–{last:,} ({time.perf_counter() - started:.0f} s)")
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        # The summary of pending checkpoints, which the trigger keeps and the replica role skipped (migration 0019).
        cursor.execute("DELETE FROM stepkit_django_pendingcount")
        cursor.execute(import_module("stepkit_django.migrations.0019_pending_counts").FILL)
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        say(f"  indexes re-created ({time.perf_counter() - started:.0f} s)")
        # The identity sequences past the rows written with their defaults.
        for table in TABLES[2:]:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
            )
        cursor.execute("SELECT count(*) FROM stepkit_django_auditevent")
        events = cursor.fetchone()[0]
    # Outside a transaction (Django's connection autocommits): VACUUM sets the visibility map, as autovacuum would.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE " + ", ".join(TABLES))
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO stepkit_scale_seed (version, seeded_at, seconds, checkpoints, events) "
            "VALUES (%s, now(), %s, %s, %s)",
            [SEED_VERSION, seconds, CHECKPOINTS, events],
        )
        found = seeded(cursor)
    assert found is not None
    return {**found, "now": True}
