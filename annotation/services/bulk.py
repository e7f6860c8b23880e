"""Bulk writes for imports: PostgreSQL `COPY` where the database has it, `bulk_create` elsewhere.

An import writes hundreds of thousands of rows. On PostgreSQL, `COPY ...
FROM STDIN` (psycopg 3's `cursor.copy`, in the binary format) moves them
several times faster than multi-row INSERTs; the ids that child rows need
are reserved from the table's sequence first, because COPY returns nothing. Updates of existing
rows go through a temporary table and one `UPDATE ... FROM`. Elsewhere
(SQLite on a laptop and in tests) the same calls fall back to the ORM's
bulk_create and bulk_update.

Rows are tuples under a list of attribute names (`example_id`, not
`example`); fields left out get the model's default (and `now` for auto_now
fields), so a field added to a model later needs no change here.
The caller owns the transaction. `analyze()` refreshes the planner's
statistics of every table written, which PostgreSQL otherwise leaves stale
until autovacuum comes by: the export straight after a big import then gets
a bad plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from psycopg import postgres
from psycopg.types.json import set_json_dumps

# Rows per bulk_create/bulk_update round on databases without COPY.
ORM_BATCH = 500
# Foreign key triggers off for the rest of the transaction (see CopySink.trusted_references).
_TRUST = "SET LOCAL session_replication_role = replica"


class RowSink:
    """The ORM version: bulk_create and bulk_update, for any database.

    Rows are tuples in the order of `columns` (attribute names: `example_id`,
    not `example`); fields the columns leave out get the model's default.
    """

    def __init__(self) -> None:
        self.models: set[type[models.Model]] = set()

    def insert(
        self, model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple], *, ids: bool = False
    ) -> list[int]:
        """Insert rows; with ids=True return their primary keys, in order."""
        if not rows:
            return []
        self.models.add(model)
        objs = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        created = model.objects.bulk_create(objs, batch_size=ORM_BATCH)
        return [obj.pk for obj in created] if ids else []

    def update(self, model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple]) -> None:
        """Set fields of existing rows: `columns` starts with "id", which names the row."""
        if not rows:
            return
        self.models.add(model)
        objs = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        model.objects.bulk_update(objs, list(columns[1:]), batch_size=ORM_BATCH)

    def analyze(self) -> None:
        """Nothing to do: SQLite plans without gathered statistics."""

    @contextmanager
    def trusted_references(self, locks: Iterable[tuple[type[models.Model], int]]):
        """Writes inside the block skip the database's per-row foreign key checks, where that is safe and allowed.

        Yields whether they do. Here: never (the ORM's writes keep every check).
        """
        yield False


class _Table:
    """How one model's rows travel through COPY: which columns, their types, and what to send for the ones left out.

    Rows go in PostgreSQL's binary COPY format when every column's type is a
    built-in one psycopg knows (all of Granary's are): no text to escape on
    this side, none to parse on the server's, and JSON values go as they are
    (written by orjson). Otherwise the text format, JSON written as text.
    """

    def __init__(self, model: type[models.Model], given: Sequence[str]):
        fields = {f.attname: f for f in model._meta.concrete_fields}
        now = timezone.now()
        self.name = model._meta.db_table
        self.given = list(given)
        rest = [f for name, f in fields.items() if name not in self.given and not f.primary_key]
        ordered = [fields[name] for name in self.given] + rest
        self.columns = [f.column for f in ordered]
        types = [postgres.types.get(re.sub(r"\(.*\)$", "", f.db_type(connection) or "")) for f in ordered]
        self.types = None if None in types else [info.oid for info in types]
        binary = self.types is not None
        self.json = [] if binary else [i for i, name in enumerate(self.given) if isinstance(fields[name], models.JSONField)]
        self.fixed = tuple(_stored_default(f, now, as_text=not binary) for f in rest)

    def values(self, row: tuple) -> tuple:
        """The given columns of one row, as the format sends them (JSON as text in the text format)."""
        if not self.json:
            return row
        values = list(row)
        for i in self.json:
            values[i] = _json_text(values[i])
        return tuple(values)


def _json_bytes(value: Any) -> bytes:
    """JSON for a json/jsonb column. orjson writes it several times faster than json.dumps; the column
    stores the same value either way (jsonb keeps no formatting). What orjson refuses (an integer beyond
    64 bits, for one) goes to json.dumps as before."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value).encode()


def _json_text(value: Any) -> str:
    return _json_bytes(value).decode()


def _stored_default(field: models.Field, now, *, as_text: bool) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    value = field.get_default()
    if isinstance(field, models.JSONField) and as_text:
        return _json_text(value)
    return value


class CopySink(RowSink):
    """The PostgreSQL version: ids from the sequence, rows by COPY, updates through a temporary table."""

    def __init__(self) -> None:
        super().__init__()
        self.db = connection
        self._sequences: dict[str, str] = {}
        self._tables: dict[tuple[type[models.Model], tuple[str, ...]], _Table] = {}
        with self.db.cursor() as cursor:
            # Long texts are compressed as they are stored; lz4 does it several times faster than the
            # default pglz. For this transaction only; values keep the method they were written with.
            cursor.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
            if cursor.fetchone():
                cursor.execute("SET LOCAL default_toast_compression = 'lz4'")

    def _table(self, model: type[models.Model], given: Sequence[str]) -> _Table:
        key = (model, tuple(given))
        if key not in self._tables:
            self._tables[key] = _Table(model, given)
        return self._tables[key]

    def _reserve_ids(self, model: type[models.Model], count: int) -> list[int]:
        table = model._meta.db_table
        with self.db.cursor() as cursor:
            if table not in self._sequences:
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, model._meta.pk.column])
                self._sequences[table] = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [self._sequences[table], count])
            return [value for (value,) in cursor.fetchall()]

    def _copy(self, into: str, table: _Table, columns: Sequence[str], lines) -> None:
        quote = self.db.ops.quote_name
        binary = table.types is not None
        sql = f"COPY {quote(into)} ({', '.join(map(quote, columns))}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
        # The driver's own cursor, so its errors are put in Django's terms here (a unique violation is an
        # IntegrityError, which the import turns into a Conflict), as Django's cursor would.
        with self.db.cursor() as cursor, self.db.wrap_database_errors:
            raw = cursor.cursor
            if binary:
                set_json_dumps(_json_bytes, context=raw)  # this cursor's JSON values only
            with raw.copy(sql) as copy:
                if binary:
                    copy.set_types(table.types[: len(columns)])
                write = copy.write_row
                for line in lines:
                    write(line)

    def insert(
        self, model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple], *, ids: bool = False
    ) -> list[int]:
        if not rows:
            return []
        self.models.add(model)
        if ids:
            reserved = self._reserve_ids(model, len(rows))
            table = self._table(model, ["id", *columns])
            rows = [(pk, *row) for pk, row in zip(reserved, rows, strict=True)]
        else:
            reserved = []
            table = self._table(model, columns)
        fixed = table.fixed
        values = table.values
        lines = (row + fixed for row in rows) if not table.json else (values(row) + fixed for row in rows)
        self._copy(table.name, table, table.columns, lines)
        return reserved

    def update(self, model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple]) -> None:
        if not rows:
            return
        self.models.add(model)
        table = self._table(model, columns)
        given = table.columns[: len(columns)]
        quote = self.db.ops.quote_name
        temp = f"bulk_{table.name}"
        with self.db.cursor() as cursor:
            # Same column types as the target, no constraints; dropped at the end of the transaction.
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {quote(temp)} ON COMMIT DROP AS "
                f"SELECT {', '.join(map(quote, given))} FROM {quote(table.name)} WITH NO DATA"
            )
            cursor.execute(f"TRUNCATE {quote(temp)}")
        self._copy(temp, table, given, (table.values(row) for row in rows))
        assignments = ", ".join(f"{quote(c)} = source.{quote(c)}" for c in given if c != "id")
        with self.db.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(table.name)} AS target SET {assignments} FROM {quote(temp)} AS source "
                "WHERE target.id = source.id"
            )

    @contextmanager
    def trusted_references(self, locks: Iterable[tuple[type[models.Model], int]]):
        """Writes inside the block skip PostgreSQL's per-row foreign key checks, where that is safe and allowed.

        Django declares foreign keys DEFERRABLE INITIALLY DEFERRED, so every
        row COPY writes queues one check per foreign key, all run at COMMIT:
        for a 50,000-example import, some 840,000 checks and several seconds.
        `session_replication_role = replica` (set for this transaction only,
        and put back when the block ends) turns those triggers off; unique and
        CHECK constraints still apply.

        That is safe only when every row written in the block references rows
        that are certain to exist at COMMIT: rows created earlier in the same
        transaction (ids reserved here and written by COPY), and the rows in
        `locks`, (model, primary key) pairs that the caller guarantees are the
        only other rows referenced. Each is locked FOR KEY SHARE, the same lock
        PostgreSQL's own check would take: nobody can delete them (or change
        their key) until this transaction ends. A lock target that is already
        gone means no trust: the checks stay on and COMMIT refuses the rows as
        before. Callers that write rows referencing existing examples or
        responses (joined and attached imports) do not use this at all.

        Setting the parameter needs a superuser or, on PostgreSQL 15 and later,
        `GRANT SET ON PARAMETER session_replication_role`; without either the
        attempt fails inside a savepoint and the checks simply stay on.
        Yields whether they are off.
        """
        before = self._trust(locks)
        yield before is not None
        if before is not None:
            # Back to normal for anything else the transaction does. (When the block raises, the import's
            # transaction or savepoint rolls back, and that undoes the SET LOCAL too.)
            with self.db.cursor() as cursor:
                cursor.execute("SELECT set_config('session_replication_role', %s, true)", [before])

    def _trust(self, locks: Iterable[tuple[type[models.Model], int]]) -> str | None:
        """Lock `locks` and turn the checks off; the setting it replaced, or None when the checks stay on."""
        quote = self.db.ops.quote_name
        with self.db.cursor() as cursor:
            for model, pk in locks:
                table, column = quote(model._meta.db_table), quote(model._meta.pk.column)
                cursor.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR KEY SHARE", [pk])
                if cursor.fetchone() is None:
                    return None
            cursor.execute("SELECT current_setting('session_replication_role')")
            before = cursor.fetchone()[0]
            try:
                with transaction.atomic(using=self.db.alias):
                    cursor.execute(_TRUST)
            except DatabaseError:  # not allowed to: the savepoint is rolled back, the transaction goes on
                return None
        return before

    def analyze(self) -> None:
        """Refresh the statistics of the key and flag columns of every table written.

        Long text columns are left out: sampling them costs more than the rest
        together, and no query plans on their statistics.
        """
        quote = self.db.ops.quote_name
        for model in sorted(self.models, key=lambda m: m._meta.db_table):
            columns = [
                quote(f.column) for f in model._meta.concrete_fields if not isinstance(f, models.TextField | models.JSONField)
            ]
            with self.db.cursor() as cursor:
                cursor.execute(f"ANALYZE {quote(model._meta.db_table)} ({', '.join(columns)})")


def row_sink() -> RowSink:
    """The fastest sink the current database offers (call it inside the import's transaction)."""
    return CopySink() if connection.vendor == "postgresql" else RowSink()
