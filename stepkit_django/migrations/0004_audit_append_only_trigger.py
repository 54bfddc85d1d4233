"""On PostgreSQL, refuse UPDATE and DELETE of audit events in the database itself.

The model and queryset guards stop the ORM; this trigger also stops raw SQL and
other programs. Other databases keep the ORM guards only.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION stepkit_django_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'stepkit_django audit events are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER stepkit_django_audit_append_only
    BEFORE UPDATE OR DELETE ON stepkit_django_auditevent
    FOR EACH ROW EXECUTE FUNCTION stepkit_django_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS stepkit_django_audit_append_only ON stepkit_django_auditevent;
DROP FUNCTION IF EXISTS stepkit_django_audit_append_only();
"""


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("stepkit_django", "0003_leases")]

    operations = [migrations.RunPython(create, drop)]
