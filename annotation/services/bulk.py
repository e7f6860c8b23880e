"""Bulk writes for imports: PostgreSQL `COPY` where the database has it, `bulk_create` elsewhere.

An import writes hundreds of thousands of rows. On PostgreSQL, `COPY ...
FROM STDIN` (psycopg 3's `cursor.copy`, in the binary format) moves them
several times faster than multi-row INSERTs; the ids that child rows need
are reserved from the table's sequence first, because COPY returns nothing.
Inside `pipelined()` each COPY is formatted here and sent by a second
thread, so PostgreSQL stores one batch while the next is read. Updates of
existing rows go through a temporary table and one `UPDATE ... FROM`. Elsewhere
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

import io
import json
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction
from django.utils import timezone
from psycopg import Cursor, postgres
from psycopg.copy import Copy, FileWriter
from psycopg.types.string import BytesBinaryDumper

# Rows per bulk_create/bulk_update round on databases without COPY.
ORM_BATCH = 500
# How often, in seconds, the running thread lets another have the interpreter, while pipelined.
SWITCH_INTERVAL = 0.0005
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
    def pipelined(self):
        """Inserts inside the block may be stored while the caller goes on (see CopySink.pipelined).

        Here they are stored at once.
        """
        yield

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
    this side, none to parse on the server's. A jsonb value goes as the bytes
    of jsonb's binary form, which is a version byte (1) and the JSON text
    (written by orjson), sent as they are (psycopg's bytea dumper, in C):
    psycopg's own JSON dumpers cost two Python calls a value, a fifth of an
    import's formatting. Otherwise the text format, JSON written as text.
    """

    def __init__(self, model: type[models.Model], given: Sequence[str]):
        fields = {f.attname: f for f in model._meta.concrete_fields}
        now = timezone.now()
        self.name = model._meta.db_table
        self.given = list(given)
        rest = [f for name, f in fields.items() if name not in self.given and not f.primary_key]
        ordered = [fields[name] for name in self.given] + rest
        self.columns = [f.column for f in ordered]
        names = [re.sub(r"\(.*\)$", "", f.db_type(connection) or "") for f in ordered]
        types = [postgres.types.get(name) for name in names]
        binary = None not in types
        if binary:
            # jsonb columns take their binary form as it is (see the class's docstring).
            jsonb = [i for i, name in enumerate(names) if name == "jsonb"]
            self.types = [postgres.types["bytea" if i in jsonb else names[i]].oid for i in range(len(names))]
            self._encode = _jsonb_binary
        else:
            jsonb = [i for i, f in enumerate(ordered) if isinstance(f, models.JSONField)]
            self.types = None
            self._encode = _json_text
        self.json = [i for i in jsonb if i < len(self.given)]
        self.fixed = tuple(
            _stored_default(f, now, encode=self._encode if i + len(self.given) in jsonb else None)
            for i, f in enumerate(rest)
        )

    def values(self, row: tuple) -> tuple:
        """The given columns of one row, as the format sends them (JSON encoded, see the class's docstring)."""
        if not self.json:
            return row
        values = list(row)
        encode = self._encode
        for i in self.json:
            if values[i] is not None:  # None is SQL's NULL
                values[i] = encode(values[i])
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


def _jsonb_binary(value: Any) -> bytes:
    """A value in jsonb's binary form: version 1, then the JSON text."""
    return b"\x01" + _json_bytes(value)


def _stored_default(field: models.Field, now, *, encode: Callable[[Any], Any] | None) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    value = field.get_default()
    return value if encode is None or value is None else encode(value)


class CopySink(RowSink):
    """The PostgreSQL version: ids from the sequence, rows by COPY, updates through a temporary table."""

    def __init__(self) -> None:
        super().__init__()
        self.db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: the `connection` proxy is per thread
        self._sequences: dict[str, str] = {}
        self._tables: dict[tuple[type[models.Model], tuple[str, ...]], _Table] = {}
        self._writer: _Writer | None = None  # while pipelined
        # Ids reserved from each sequence and not handed out yet, and how many were (see _reserve_ids).
        self._spare_ids: dict[str, list[int]] = {}
        self._handed_out: dict[str, int] = {}
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
        """`count` new primary keys of `model`, taken from its sequence.

        While pipelined, this shares the connection with the writer thread
        (psycopg lets one thread at a time use it), so each trip waits for the
        COPY in hand. The sequence is then asked for more than needed (three
        times as many as were handed out so far) and the rest kept for the
        next batches: four trips for 50 batches. Ids left over at the end are
        never used, like those of a rolled back transaction.
        """
        table = model._meta.db_table
        spare = self._spare_ids.get(table, [])
        if len(spare) < count:
            ahead = 3 * self._handed_out.get(table, 0) if self._writer is not None else 0
            spare = spare + self._nextvals(model, max(count - len(spare), ahead))
        taken, self._spare_ids[table] = spare[:count], spare[count:]
        self._handed_out[table] = self._handed_out.get(table, 0) + count
        return taken

    def _nextvals(self, model: type[models.Model], count: int) -> list[int]:
        table = model._meta.db_table
        with self._behind_writer(), self.db.cursor() as cursor:
            if table not in self._sequences:
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, model._meta.pk.column])
                self._sequences[table] = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [self._sequences[table], count])
            return [value for (value,) in cursor.fetchall()]

    def _copy(self, into: str, table: _Table, columns: Sequence[str], lines) -> None:
        """COPY `lines` into the table `into`: now, or (pipelined) formatted now and sent by the writer thread."""
        quote = self.db.ops.quote_name
        binary = table.types is not None
        sql = f"COPY {quote(into)} ({', '.join(map(quote, columns))}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
        if self._writer is not None:
            data = self._formatted(table, columns, lines)
            self._writer.put(lambda: self._send(sql, data))
            return
        # The driver's own cursor, so its errors are put in Django's terms here (a unique violation is an
        # IntegrityError, which the import turns into a Conflict), as Django's cursor would.
        with self.db.cursor() as cursor, self.db.wrap_database_errors:
            with cursor.cursor.copy(sql) as copy:
                _write_rows(copy, cursor.cursor, table, columns, lines)

    @contextmanager
    def _behind_writer(self):
        """A query of the caller's, which while pipelined may come after a COPY of the writer's that failed.

        That COPY aborted the transaction, so the query fails with "current
        transaction is aborted"; the COPY's own error (a unique violation, say,
        which the import turns into a Conflict) is the one to raise. A query
        that fails for its own reason raises its own error.
        """
        try:
            yield
        except DatabaseError:
            failed = self._writer.failed() if self._writer is not None else None
            if failed is not None:
                raise failed  # noqa: B904 - the query's error is its consequence, kept as the context
            raise

    def _formatted(self, table: _Table, columns: Sequence[str], lines) -> bytes:
        """The COPY data of `lines` as the server reads it, formatted by psycopg into memory (psycopg's FileWriter)."""
        buffer = io.BytesIO()
        with self.db.connection.cursor() as cursor:  # no query: it only carries the connection's adapters
            with Copy(cursor, binary=table.types is not None, writer=FileWriter(buffer)) as copy:
                _write_rows(copy, cursor, table, columns, lines)
        return buffer.getvalue()

    def _send(self, sql: str, data: bytes) -> None:
        """One COPY of formatted data (run by the writer thread)."""
        with self.db.cursor() as cursor, self.db.wrap_database_errors:
            with cursor.cursor.copy(sql) as copy:
                copy.write(data)

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
        if self._writer is not None:
            self._writer.wait()  # the update reads the rows queued before it
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

    @contextmanager
    def pipelined(self):
        """Inserts inside the block are stored by a second thread, while the caller reads on.

        An import alternates two kinds of work: reading and checking a batch
        (this process's CPU) and storing it (PostgreSQL's CPU, COPY after
        COPY, each one waited for). Done in turn they never overlap, and on a
        machine with two cores one core is always idle. Here `insert` formats
        its rows into COPY data (psycopg does it, in memory), queues that and
        returns; the writer thread sends it and waits for PostgreSQL, which
        needs no lock of this interpreter, while the caller reads the next
        batch. At most `_Writer.DEPTH` COPYs wait in the queue, so memory
        stays bounded (about two batches).

        The connection is the caller's, in the caller's transaction. Inside
        the block nothing but `insert` and `update` may use it. The block ends
        by waiting for every queued COPY; one that failed raises its error in
        the caller (at the next insert, or at the end; an insert's own query
        that fails because of it raises it too), and nothing queued
        after it is sent. When the caller raises, whatever is still queued is
        dropped and the thread finished before the error goes on (to the
        transaction's rollback).
        """
        if self._writer is not None:
            yield
            return
        self.db.inc_thread_sharing()
        self._writer = writer = _Writer()
        # A thread that waited for the socket gets the interpreter back only when the running one lets go,
        # by default every 5 ms: meanwhile PostgreSQL empties the socket and waits for data. 0.5 ms keeps it fed.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL))
        try:
            yield
            writer.wait()
        finally:
            sys.setswitchinterval(switch)
            self._writer = None
            writer.close()
            self.db.dec_thread_sharing()

    def analyze(self) -> None:
        """Refresh the statistics of the key and flag columns of every table written.

        Long text columns are left out: sampling them costs more than the rest
        together, and no query plans on their statistics. The sample keeps
        PostgreSQL's default size: with a tenth of it (3,000 rows) the
        estimate of missing-info rows per feedback came out low enough that
        the export's lookups by feedback id turned into whole-table scans,
        ten times slower, for a saving of under 2 s at 50,000 examples.
        """
        quote = self.db.ops.quote_name
        with self.db.cursor() as cursor:
            for model in sorted(self.models, key=lambda m: m._meta.db_table):
                columns = [
                    quote(f.column)
                    for f in model._meta.concrete_fields
                    if not isinstance(f, models.TextField | models.JSONField)
                ]
                cursor.execute(f"ANALYZE {quote(model._meta.db_table)} ({', '.join(columns)})")


def _write_rows(copy: Copy, cursor: Cursor, table: _Table, columns: Sequence[str], lines) -> None:
    if table.types is not None:
        # bytea by psycopg's own bytes dumper (in C): the one registered last for it, DB-API's Binary's, is Python.
        cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
        copy.set_types(table.types[: len(columns)])
    write = copy.write_row
    for line in lines:
        write(line)


class _Writer:
    """A thread that runs queued writes in order. The first one's error is raised in the thread that queues."""

    DEPTH = 16  # writes queued at most: two batches of an import, a COPY per table each

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(self.DEPTH)
        self._error: BaseException | None = None
        self._running = threading.Lock()  # held while a write runs and its error is recorded
        self._thread = threading.Thread(target=self._run, name="copy-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            write = self._queue.get()
            try:
                if write is None:
                    return
                with self._running:
                    if self._error is None:  # after a failure (or once closing), what is queued is taken off, not run
                        try:
                            write()
                        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                            self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None and not isinstance(self._error, _Closing):
            raise self._error  # and it stays set: nothing queued later runs

    def put(self, write: Callable[[], None]) -> None:
        self._raise()
        self._queue.put(write)

    def failed(self) -> BaseException | None:
        """The first write's error, once the write in hand (if any) is done; later queued writes are not waited for."""
        with self._running:
            return None if isinstance(self._error, _Closing) else self._error

    def wait(self) -> None:
        """Until every queued write is done; raises the first one's error."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Finish the write in hand, drop the rest, end the thread."""
        if self._error is None:
            self._error = _Closing()
        self._queue.put(None)
        self._thread.join()


class _Closing(Exception):
    """Marks a writer that is closing: queued writes are dropped."""


def row_sink() -> RowSink:
    """The fastest sink the current database offers (call it inside the import's transaction)."""
    return CopySink() if connection.vendor == "postgresql" else RowSink()
