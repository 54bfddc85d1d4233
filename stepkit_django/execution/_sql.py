"""Statements compiled once, for the writes of the hot path (private to :mod:`stepkit_django.execution`).

Building a query through the ORM costs more than the round trip that sends it
(about 1 ms for a conditional UPDATE, 3 ms for a bulk INSERT, against 0.2 ms on
the wire). These helpers build each statement once per database vendor, model
and set of columns, from the models' own table and column names, and prepare
each value with its model field (``get_db_prep_save``), as the ORM would.

Like ``QuerySet.update()`` and ``bulk_create()``, they send no model signals and
do not read primary keys back.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DataError, connection, connections, models, transaction
from django.utils.asyncio import async_unsafe

__all__ = [
    "Insert",
    "Update",
    "alias",
    "column",
    "cursor",
    "get",
    "insert",
    "insert_objects",
    "prep",
    "quote",
    "single_statement",
    "table",
    "update",
    "write",
]


def quote(name: str) -> str:
    return str(connection.ops.quote_name(name))


def column(model: type[models.Model], name: str) -> str:
    """The quoted column of ``model``'s field ``name``."""
    return quote(str(model._meta.get_field(name).column))  # type: ignore[union-attr]


def table(model: type[models.Model]) -> str:
    return quote(model._meta.db_table)


def prep(model: type[models.Model], name: str, value: Any, conn: Any = None) -> Any:
    """``value`` ready to send for ``model``'s field ``name`` (a model instance stands for its key)."""
    conn = conn or _default()
    return _preparer(conn.vendor, model, name)(value, conn)


#: The exact field classes whose ``get_db_prep_save()`` gives back a value of these exact types unchanged on
#: PostgreSQL (psycopg adapts them itself); subclasses, other types and other databases take the field's path.
_AS_IS_ON_POSTGRESQL: dict[type[models.Field[Any, Any]], tuple[type, ...]] = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.UUIDField: (uuid.UUID,),
    models.BinaryField: (bytes,),
}  # not the integer fields: Django types their values for psycopg (Int4, Int8)


@cache
def _preparer(vendor: str, model: type[models.Model], name: str) -> Callable[[Any, Any], Any]:
    """How to prepare a value of ``model``'s field ``name``: ``get_db_prep_save()``, skipped where it would
    give the value back as it is (one call less per value on the hot path, which sends about twenty)."""
    field: Any = model._meta.get_field(name)
    target = field.target_field if field.is_relation else field
    save = field.get_db_prep_save
    kinds = _AS_IS_ON_POSTGRESQL.get(type(target), ()) if vendor == "postgresql" else ()
    if type(target) is models.DateTimeField and vendor == "postgresql":

        def prepare_datetime(value: Any, conn: Any) -> Any:
            if type(value) is datetime and value.tzinfo is not None:  # aware: as is (naive ones warn)
                return value
            return save(value.pk if isinstance(value, models.Model) else value, conn)

        return prepare_datetime
    if kinds:
        null = field.null

        def prepare_as_is(value: Any, conn: Any) -> Any:
            if type(value) in kinds or (value is None and null):
                return value
            return save(value.pk if isinstance(value, models.Model) else value, conn)

        return prepare_as_is

    def prepare(value: Any, conn: Any) -> Any:
        return save(value.pk if isinstance(value, models.Model) else value, conn)

    return prepare


def alias() -> str:
    """The alias of the connection these statements use."""
    return DEFAULT_DB_ALIAS


def _default() -> Any:
    """The default connection itself: the ``connection`` proxy costs a thread-local lookup per attribute."""
    return connections[DEFAULT_DB_ALIAS]


@async_unsafe
def cursor() -> Any:
    """A cursor of the default connection, wrapped by Django (errors, query logging, execute wrappers).

    On PostgreSQL with psycopg 3 it binds parameters on the server instead of
    quoting them into the SQL text (Django's default), which saves 0.2-0.3 ms per
    statement on the bench machine; these statements take no part in Django's
    query building, so the ``server_side_binding`` caveats do not apply. In
    ``connection.queries`` they show ``$1``-style placeholders. They are prepared
    only if the connection's ``OPTIONS`` set ``prepare_threshold``.
    """
    conn = _default()
    binding = _server_binding_cursor() if conn.vendor == "postgresql" else None
    if binding is None:
        return conn.cursor()
    conn.ensure_connection()
    conn.validate_thread_sharing()
    raw = binding(conn.connection)
    return conn.make_debug_cursor(raw) if conn.queries_logged else conn.make_cursor(raw)


@cache
def _server_binding_cursor() -> Any:
    try:
        from django.db.backends.postgresql import base
    except ImportError:  # pragma: no cover - psycopg not installed
        return None
    return getattr(base, "ServerBindingCursor", None)  # psycopg 3 only


@cache
def _insert(vendor: str, model: type[models.Model], names: tuple[str, ...], rows: int) -> str:
    columns = ", ".join(column(model, name) for name in names)
    row = "(" + ", ".join(["%s"] * len(names)) + ")"
    return f"INSERT INTO {table(model)} ({columns}) VALUES {', '.join([row] * rows)}"


def insert(model: type[models.Model], names: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in the order of the field ``names``) with one statement."""
    if not rows:
        return
    with cursor() as c:
        c.execute(_insert(connection.vendor, model, names, len(rows)), _row_params(model, names, rows))


@cache
def _select(vendor: str, model: type[models.Model], related: str | None) -> str:
    """SELECT every concrete column of ``model`` (and of the row its foreign key ``related`` points to)."""
    columns = [f"t.{quote(str(f.column))}" for f in model._meta.concrete_fields]
    source = f"{table(model)} t"
    if related is not None:
        foreign: Any = model._meta.get_field(related)
        target: Any = foreign.related_model
        columns += [f"r.{quote(f.column)}" for f in target._meta.concrete_fields]
        source += (
            f" INNER JOIN {table(target)} r ON r.{column(target, target._meta.pk.name)} = t.{quote(foreign.column)}"
        )
    return f"SELECT {', '.join(columns)} FROM {source} WHERE t.{column(model, model._meta.pk.name)} = %s"


def _instance(model: type[models.Model], values: Sequence[Any]) -> Any:
    """An instance of ``model`` from its columns' raw values, converted as the ORM converts them."""
    fields = model._meta.concrete_fields
    converted = []
    for f, value in zip(fields, values, strict=True):
        col = f.get_col(model._meta.db_table)
        for convert in (*connection.ops.get_db_converters(col), *f.get_db_converters(connection)):
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def get(model: type[models.Model], pk: Any, related: str | None = None) -> Any:
    """``model.objects.select_related(related).get(pk=pk)``, with the statement compiled once.

    Raises ``model.DoesNotExist`` when there is no such row.
    """
    with cursor() as c:
        c.execute(_select(connection.vendor, model, related), [prep(model, model._meta.pk.name, pk)])
        row = c.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")  # type: ignore[attr-defined]
    size = len(model._meta.concrete_fields)
    instance = _instance(model, row[:size])
    if related is not None:
        foreign: Any = model._meta.get_field(related)
        foreign.set_cached_value(instance, _instance(foreign.related_model, row[size:]))
    return instance


def _row_params(model: type[models.Model], names: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> list[Any]:
    conn = _default()
    preparers = _preparers(conn.vendor, model, names)
    return [prepare(value, conn) for row in rows for prepare, value in zip(preparers, row, strict=True)]


@cache
def _preparers(vendor: str, model: type[models.Model], names: tuple[str, ...]) -> tuple[Callable[[Any, Any], Any], ...]:
    return tuple(_preparer(vendor, model, name) for name in names)


@cache
def _stored_fields(model: type[models.Model]) -> tuple[Any, ...]:
    """The fields an INSERT of ``model`` sends: all concrete ones but an automatic primary key."""
    return tuple(
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, models.AutoField | models.BigAutoField | models.SmallAutoField))
    )


def insert_objects(objects: Sequence[models.Model]) -> None:
    """Insert unsaved instances of one model with one statement (their automatic keys stay None)."""
    if not objects:
        return
    rows = Insert.of(objects)
    insert(rows.model, rows.names, rows.rows)


@cache
def _update(
    vendor: str,
    model: type[models.Model],
    names: tuple[str, ...],
    increment: tuple[str, ...],
    where: tuple[tuple[str, bool], ...],
    merge: tuple[str, ...] = (),
) -> str:
    assignments = [
        f"{column(model, name)} = {column(model, name)} || %s" if name in merge else f"{column(model, name)} = %s"
        for name in names
    ]
    assignments += [f"{column(model, name)} = {column(model, name)} + 1" for name in increment]
    conditions = [f"{column(model, model._meta.pk.name)} = %s"]
    conditions += [f"{column(model, name)} IS NULL" if null else f"{column(model, name)} = %s" for name, null in where]
    return f"UPDATE {table(model)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"


def _update_params(
    model: type[models.Model], pk: Any, values: Mapping[str, Any], where: Mapping[str, Any]
) -> tuple[tuple[tuple[str, bool], ...], list[Any]]:
    conn = _default()
    vendor = conn.vendor
    params = [_preparer(vendor, model, name)(value, conn) for name, value in values.items()]
    params.append(_preparer(vendor, model, model._meta.pk.name)(pk, conn))
    params += [_preparer(vendor, model, name)(value, conn) for name, value in where.items() if value is not None]
    return tuple((name, value is None) for name, value in where.items()), params


def update(
    model: type[models.Model],
    pk: Any,
    values: Mapping[str, Any],
    *,
    where: Mapping[str, Any] | None = None,
    increment: Iterable[str] = (),
) -> int:
    """``UPDATE`` the row ``pk`` of ``model`` if its fields equal ``where`` (None: IS NULL); the row count.

    ``values`` maps field names to new values; the fields named in ``increment``
    are increased by one in the same statement.
    """
    conditions, params = _update_params(model, pk, values, where or {})
    statement = _update(connection.vendor, model, tuple(values), tuple(increment), conditions)
    with cursor() as c:
        c.execute(statement, params)
        return int(c.rowcount)


def single_statement() -> bool:
    """Whether :func:`write` is one statement here (PostgreSQL): several writes in one round trip."""
    return connection.vendor == "postgresql"


@dataclasses.dataclass(frozen=True)
class Update:
    """A conditional UPDATE for :func:`write` (the arguments of :func:`update`)."""

    model: type[models.Model]
    pk: Any
    values: Mapping[str, Any]
    where: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    increment: tuple[str, ...] = ()
    merge: tuple[str, ...] = ()  # JSON fields merged into the stored object (PostgreSQL's jsonb ||)


@dataclasses.dataclass(frozen=True)
class Insert:
    """Rows for :func:`write`: values in the order of the field ``names``."""

    model: type[models.Model]
    names: tuple[str, ...]
    rows: Sequence[Sequence[Any]]

    @classmethod
    def of(cls, objects: Sequence[models.Model]) -> Insert:
        """The rows of unsaved instances of one model (automatic keys left to the database)."""
        fields = _stored_fields(type(objects[0]))
        rows = [[f.pre_save(obj, True) for f in fields] for obj in objects]  # sets auto_now fields, as save() does
        return cls(type(objects[0]), tuple(f.name for f in fields), rows)


class _Incomplete(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


def write(updates: Sequence[Update], inserts: Sequence[Insert] = ()) -> int | None:
    """Apply ``updates`` in order, then ``inserts``, all or nothing (no updates: just the inserts).

    Returns None when every UPDATE changed its row and the rows were inserted, or
    the index of the first UPDATE whose row did not match (nothing is written
    then). On PostgreSQL this is one statement (data-modifying ``WITH``: each
    UPDATE runs only if the one before changed its row, the INSERTs only if the
    last did). Outside a transaction it needs none: it aborts itself when a later
    UPDATE found no row. Inside the caller's transaction it runs in a savepoint.
    Elsewhere, one statement each, in a transaction.
    """
    inserts = [i for i in inserts if i.rows]
    if any(u.merge for u in updates) and not single_statement():
        raise ValueError("merge needs PostgreSQL's jsonb")
    if single_statement() and len(updates) <= 1:  # nothing can fail alone: the statement is atomic
        return None if _write_pg(updates, inserts) == len(updates) else 0
    if single_statement() and not connection.in_atomic_block and connection.get_autocommit():
        # Outside a transaction the statement is its own: it aborts itself when a later UPDATE
        # found no row, which saves the BEGIN and COMMIT round trips. Then, rarely (a concurrent
        # change), the writes are tried again in a transaction to tell which UPDATE it was.
        try:
            done = _write_pg(updates, inserts, abort_if_incomplete=True)
        except DataError as error:
            cause = error.__cause__
            if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) != _DIVISION_BY_ZERO:
                raise
        else:
            return None if done == len(updates) else 0
    try:
        with transaction.atomic():
            if single_statement():
                done = _write_pg(updates, inserts)
                if done < len(updates):
                    raise _Incomplete(done)
            else:
                for index, u in enumerate(updates):
                    if not update(u.model, u.pk, u.values, where=u.where, increment=u.increment):
                        raise _Incomplete(index)
                for i in inserts:
                    insert(i.model, i.names, i.rows)
    except _Incomplete as incomplete:
        return incomplete.index
    return None


#: SQLSTATE division_by_zero: how the statement of :func:`_write_pg` aborts itself.
_DIVISION_BY_ZERO = "22012"


def _write_pg(
    updates: Sequence[Update],
    inserts: Sequence[Insert],
    *,
    abort_if_incomplete: bool = False,
) -> int:
    """The one statement of :func:`write` on PostgreSQL; how many UPDATEs changed their row.

    With ``abort_if_incomplete`` the statement fails (division by zero) when some but
    not all UPDATEs changed their row, so that it writes nothing without a transaction.
    """
    params: list[Any] = []
    shape = []
    for u in updates:
        conditions, update_params = _update_params(u.model, u.pk, u.values, u.where)
        shape.append((u.model, tuple(u.values), u.increment, conditions, u.merge))
        params += update_params
    for i in inserts:
        params += _row_params(i.model, i.names, i.rows)
    shapes = tuple((i.model, i.names, len(i.rows)) for i in inserts)
    statement, counted = _statement(tuple(shape), shapes, abort_if_incomplete and len(updates) > 1)
    with cursor() as c:
        c.execute(statement, params)
        if counted:
            return int(c.fetchone()[0])
        return len(updates) if c.rowcount > 0 else 0


@cache
def _statement(
    updates: tuple[tuple[Any, ...], ...],
    inserts: tuple[tuple[type[models.Model], tuple[str, ...], int], ...],
    abort_if_incomplete: bool = False,
) -> tuple[str, bool]:
    """The statement of :func:`_write_pg` for this shape of writes, and whether it SELECTs the UPDATEs' count.

    One UPDATE alone, or one UPDATE and one INSERT: the statement is that UPDATE or
    INSERT and its row count tells whether the UPDATE changed its row (the plan is
    simpler than a counting SELECT). Otherwise the counts are selected; with
    ``abort_if_incomplete`` a count other than none or all divides by zero, and the
    error undoes the whole statement (PostgreSQL has no RAISE outside PL/pgSQL).
    """
    parts = []
    for index, (model, names, increment, conditions, merge) in enumerate(updates):
        statement = _update("postgresql", model, names, increment, conditions, merge)
        if index:
            statement += f" AND EXISTS (SELECT 1 FROM u{index - 1})"
        parts.append(statement)
    if len(updates) == 1 and not inserts:
        return parts[0], False
    guard = f"u{len(updates) - 1}" if updates else None
    added = [_guarded_insert(model, names, rows, guard) for model, names, rows in inserts]
    ctes = [f"u{index} AS ({statement} RETURNING 1)" for index, statement in enumerate(parts)]
    if len(updates) == 1 and len(inserts) == 1:
        return f"WITH {', '.join(ctes)} {added[0]}", False
    ctes += [f"i{index} AS ({statement})" for index, statement in enumerate(added)]
    counts = " + ".join(f"(SELECT count(*) FROM u{index})" for index in range(len(updates))) or "0"
    if abort_if_incomplete:
        ctes.append(f"done AS (SELECT {counts} AS n)")
        all_or_none = f"CASE WHEN n IN (0, {len(updates)}) THEN 1 ELSE 0 END"
        return f"WITH {', '.join(ctes)} SELECT n / ({all_or_none}) FROM done", True
    return f"WITH {', '.join(ctes)} SELECT {counts}", True


def _cast_type(field: Any) -> str:
    # Text without its length: an explicit cast to varchar(n) would truncate silently; the INSERT checks it.
    if field.get_internal_type() in ("CharField", "TextField", "SlugField"):
        return "text"
    return str(field.db_type(connection))


@cache
def _guarded_insert(model: type[models.Model], names: tuple[str, ...], rows: int, guard: str | None) -> str:
    """An INSERT of ``rows`` rows that inserts only if the CTE ``guard`` (if any) returned a row."""
    columns = ", ".join(column(model, name) for name in names)
    if rows == 1 and guard is not None:  # the guard returns its one row: select the values from it
        return f"INSERT INTO {table(model)} ({columns}) SELECT {', '.join(['%s'] * len(names))} FROM {guard}"
    casts = [_cast_type(model._meta.get_field(name)) for name in names]
    row = "(" + ", ".join(f"CAST(%s AS {cast})" for cast in casts) + ")"  # typed, so NULLs fit any column
    return f"INSERT INTO {table(model)} ({columns}) SELECT * FROM (VALUES {', '.join([row] * rows)}) AS new_rows" + (
        f" WHERE EXISTS (SELECT 1 FROM {guard})" if guard else ""
    )
