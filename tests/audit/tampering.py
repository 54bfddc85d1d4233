"""What an attacker with the database owner's rights can do: change or delete audit events with the
append-only triggers out of the way (PostgreSQL: ``ALTER TABLE ... DISABLE TRIGGER``; SQLite: the
triggers dropped), in the test's transaction."""

from django.db import connection

from stepkit_django.models import AuditEvent, PipelineRun

TABLE = AuditEvent._meta.db_table
RUNS = PipelineRun._meta.db_table
_SQLITE_TRIGGERS = ("stepkit_django_audit_no_update", "stepkit_django_audit_no_delete")


def key(run):
    """The run's key as the database stores it (SQLite: 32 hex digits)."""
    return run.pk.hex if connection.vendor == "sqlite" else run.pk


def tamper(statement, params=()):
    """Run ``statement`` (SQL) with the audit trail's guards out of the way, as its owner could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending foreign key checks
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER stepkit_django_audit_append_only")
            try:
                cursor.execute(statement, params)
            finally:
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER stepkit_django_audit_append_only")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            return
        saved = dict(
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN (%s, %s)", _SQLITE_TRIGGERS
            ).fetchall()
        )
        for name in saved:
            cursor.execute(f"DROP TRIGGER {name}")
        try:
            cursor.execute(statement, params)
        finally:
            for sql in saved.values():
                cursor.execute(sql)
