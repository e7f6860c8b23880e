"""Model instances from a statement written out in SQL, converted column by column as the ORM converts them.

The annotation requests' hottest reads are written out (issue 9): composing
and compiling a queryset with joins costs more CPU than running it. A
`ModelColumns` gives a model's select list under a table alias and builds the
instance from its slice of a result row, with the same converters a queryset
applies (the backend's, then the field's: JSON decoded, SQLite's dates
parsed), so what the page gets is what a queryset would have given.
"""

import functools
import weakref

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.transaction import TransactionManagementError
from django.db.models import Model


class ModelColumns:
    """A model's concrete columns, in field order, under a table alias."""

    def __init__(self, model: type[Model], alias: str):
        self.model = model
        self.alias = alias
        self.fields = tuple(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self.by_column = {field.column: field for field in self.fields}
        self._pk_index = self.attnames.index(model._meta.pk.attname)
        self.width = len(self.fields)
        self.table = model._meta.db_table
        # Converters are bound to a connection's operations: one list per connection (per thread).
        self._converters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def select(self, connection) -> str:
        """`alias."column", ...` for a SELECT list."""
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(field.column)}" for field in self.fields)

    def _converters_for(self, connection) -> list[tuple[int, object, list]]:
        converters = self._converters.get(connection)
        if converters is None:
            converters = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
                if found:
                    converters.append((index, column, found))
            self._converters[connection] = converters
        return converters

    def convert(self, attname: str, value, connection):
        """One column's value from a result row, converted as a queryset would convert it (JSON decoded, SQLite's
        dates parsed); `connection` as for build()."""
        index = self.attnames.index(attname)
        for at, column, converters in self._converters_for(connection):
            if at == index:
                for converter in converters:
                    value = converter(value, column, connection)
        return value

    def build(self, row, start: int, connection) -> Model | None:
        """The instance whose columns begin at `row[start]`; None when its key is NULL (an outer join found none).

        `connection`: the database wrapper the row came from (`connections[alias]`, not the `connection` proxy).
        """
        values = list(row[start : start + self.width])
        if values[self._pk_index] is None:
            return None
        for index, column, converters in self._converters_for(connection):
            value = values[index]
            for converter in converters:
                value = converter(value, column, connection)
            values[index] = value
        return self.model.from_db(connection.alias, self.attnames, values)


def starts(*columns: ModelColumns) -> list[int]:
    """Where each model's columns begin in a row that selects them one after another."""
    positions, at = [], 0
    for each in columns:
        positions.append(at)
        at += each.width
    return positions


def first_where(model: type[Model], *, lock: bool = False, order_by: tuple[str, ...] = ("id",), **equal) -> Model | None:
    """The first row, by the `order_by` columns, whose columns equal `equal` (column names: `response_id`, not
    `response`): what `filter(...).order_by(...).first()` gives, without composing and compiling a queryset.
    As there, a None value matches NULL (IS NULL), and no `equal` at all matches every row.

    `lock`: FOR UPDATE where the database has row locks (PostgreSQL; SQLite takes its write lock when the
    transaction begins); inside a transaction only, as with the ORM's select_for_update.
    """
    database = connections[DEFAULT_DB_ALIAS]
    if lock and database.get_autocommit():
        raise TransactionManagementError("first_where(lock=True) locks until the transaction ends: call it inside one.")
    names = tuple(sorted(equal))
    nulls = tuple(name for name in names if equal[name] is None)
    sql = _first_where_sql(model, names, nulls, order_by, lock and database.features.has_select_for_update, database.vendor)
    columns = model_columns(model)
    values = [columns.by_column[name].get_db_prep_value(equal[name], database) for name in names if equal[name] is not None]
    with database.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    return None if row is None else columns.build(row, 0, database)


@functools.cache
def model_columns(model: type[Model]) -> ModelColumns:
    """The model's columns under the alias `t` (kept per process, with their converters)."""
    return ModelColumns(model, "t")


@functools.cache
def _first_where_sql(
    model: type[Model], names: tuple[str, ...], nulls: tuple[str, ...], order_by: tuple[str, ...], lock: bool, vendor: str
) -> str:
    columns = model_columns(model)
    database = connections[DEFAULT_DB_ALIAS]
    quote = database.ops.quote_name
    unknown = [name for name in (*names, *order_by) if name not in columns.by_column]
    if unknown:
        raise ValueError(f"{model.__name__} has no column {unknown[0]!r}")
    where = " AND ".join(f"t.{quote(name)} IS NULL" if name in nulls else f"t.{quote(name)} = %s" for name in names)
    order = ", ".join(f"t.{quote(name)}" for name in order_by)
    return (
        f"SELECT {columns.select(database)} FROM {quote(columns.table)} t{' WHERE ' + where if where else ''}"
        f" ORDER BY {order} LIMIT 1"
        + (" FOR UPDATE" if lock else "")
    )
