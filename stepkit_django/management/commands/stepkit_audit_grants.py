from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from stepkit_django.models import AuditEvent


def identifier(name: str) -> str:
    """``name`` as a PostgreSQL quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """``value`` as a PostgreSQL string literal (``standard_conforming_strings``, the default since 9.1)."""
    return "'" + value.replace("'", "''") + "'"


def grants_sql(role: str, table: str) -> str:
    """The script that leaves ``role`` able to SELECT and INSERT audit events, and nothing else on ``table``."""
    tag = "$stepkit$"
    while tag in role or tag in table:  # the DO blocks' quotes must not occur in what they quote
        tag = tag[:-1] + "_$"
    who, audit = identifier(role), identifier(table)
    return f"""\
-- stepkit_django: make the audit trail append-only for role {who} (PostgreSQL).
-- Run it as the table's owner or a superuser, e.g. psql -v ON_ERROR_STOP=1 -f audit-grants.sql;
-- again after any GRANT on all tables, and after a migration that re-creates the table.
-- The check at the end fails, and everything is rolled back, if {who} could still change the
-- trail: as a superuser, as the table's owner (who can grant itself anything back), or
-- through a role it is a member of.
BEGIN;
REVOKE ALL ON TABLE {audit} FROM PUBLIC;
REVOKE ALL ON TABLE {audit} FROM {who};
GRANT SELECT, INSERT ON TABLE {audit} TO {who};
DO {tag}
DECLARE
    app CONSTANT name := {literal(role)};
    audit CONSTANT regclass := {literal(audit)};
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = app) THEN
        RAISE EXCEPTION 'role % is a superuser: no privilege binds it; connect the application as another role',
            quote_ident(app);
    END IF;
    IF pg_has_role(app, (SELECT relowner FROM pg_class WHERE oid = audit), 'MEMBER') THEN
        RAISE EXCEPTION 'role % owns % (or is a member of its owner) and can grant itself anything back: '
            'make another role the owner (ALTER TABLE % OWNER TO ...) and run migrations as that role',
            quote_ident(app), audit, audit;
    END IF;
    IF EXISTS (
        SELECT FROM pg_roles AS r
        WHERE pg_has_role(app, r.oid, 'MEMBER')
            AND (has_table_privilege(r.oid, audit, 'UPDATE') OR has_table_privilege(r.oid, audit, 'DELETE')
                OR has_table_privilege(r.oid, audit, 'TRUNCATE'))
    ) THEN
        RAISE EXCEPTION 'role % may still UPDATE, DELETE or TRUNCATE % through a role it is a member of',
            quote_ident(app), audit;
    END IF;
END
{tag};
COMMIT;
"""


class Command(BaseCommand):
    help = (
        "Print the PostgreSQL statements that leave the application's role unable to UPDATE, DELETE or "
        "TRUNCATE the audit trail (SELECT and INSERT stay granted). Prints SQL only: run it yourself, as "
        "the table's owner or a superuser."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--role", help="The application's database role (default: the USER of the database connection)."
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="The database connection to read the USER of (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        if alias not in connections:
            raise CommandError(f"No database {alias!r} in DATABASES.")
        connection = connections[alias]
        if connection.vendor != "postgresql":
            raise CommandError(
                f"The statements are for PostgreSQL; database {alias!r} is {connection.vendor}. "
                "(On SQLite, migration 0008's triggers refuse UPDATE and DELETE of audit events.)"
            )
        role = options["role"] or connection.settings_dict.get("USER") or ""
        if not role:
            raise CommandError(f"Database {alias!r} has no USER: name the application's role with --role NAME.")
        self.stdout.write(grants_sql(role, AuditEvent._meta.db_table), ending="")
