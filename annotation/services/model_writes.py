"""Saves written out in SQL: what `save()` and `save(update_fields=...)` store, without composing a query.

The annotation requests write a few rows each (issue 9): the ORM composes and
compiles every save (0.3-0.4 ms of CPU for an UPDATE of two columns, against
0.1 ms to send one written out). These two functions store what the ORM's save
would store: each field's `pre_save` runs (so `auto_now` columns get the time)
and each value goes through the field's `get_db_prep_save`, as in the ORM.
Unlike `save()`, they send no `pre_save`/`post_save` signals: use them only for
models that no receiver listens to (tests/annotation/test_model_writes.py
checks the models they are used for).
"""

import functools

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Model


def update_columns(instance: Model, fields: list[str] | tuple[str, ...]) -> None:
    """`instance.save(update_fields=fields)`, written out: raises DatabaseError when no row was updated, as it does."""
    if not update_columns_if(instance, fields):
        raise DatabaseError("Save with update_fields did not affect any rows.")


def update_columns_if(instance: Model, fields: list[str] | tuple[str, ...], **expected) -> bool:
    """`update_columns`, done only where the row still holds the `expected` column values (none: the key alone);
    True when it did.

    One statement, so the check and the write are one step for the database
    (no transaction or row lock around them); the caller takes its slower
    path, e.g. locking the row to say what changed, when it answers False.
    """
    database = connections[DEFAULT_DB_ALIAS]
    meta = instance._meta
    chosen = [meta.get_field(name) for name in fields]
    checked = [meta.get_field(name) for name in expected]
    values = [field.get_db_prep_save(field.pre_save(instance, False), connection=database) for field in chosen]
    conditions = [field.get_db_prep_value(expected[field.name], connection=database) for field in checked]
    sql = _update_sql(type(instance), tuple(field.column for field in chosen), database.vendor, tuple(field.column for field in checked))
    with database.cursor() as cursor:
        cursor.execute(sql, [*values, instance.pk, *conditions])
        done = cursor.rowcount > 0
    if done:
        instance._state.db = database.alias
    return done


def insert_row(instance: Model) -> Model:
    """`instance.save()` for a new row with a database-made key, written out; sets the key and returns the instance."""
    database = connections[DEFAULT_DB_ALIAS]
    model = type(instance)
    fields = _insert_fields(model)
    values = [field.get_db_prep_save(field.pre_save(instance, True), connection=database) for field in fields]
    returning = database.features.can_return_columns_from_insert
    with database.cursor() as cursor:
        cursor.execute(_insert_sql(model, returning, database.vendor), values)
        key = cursor.fetchone()[0] if returning else database.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)
    instance.pk = key
    instance._state.adding = False
    instance._state.db = database.alias
    return instance


@functools.cache
def _insert_fields(model: type[Model]) -> tuple:
    return tuple(field for field in model._meta.concrete_fields if field is not model._meta.pk)


@functools.cache
def _update_sql(model: type[Model], columns: tuple[str, ...], vendor: str, checked: tuple[str, ...] = ()) -> str:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
    conditions = "".join(f" AND {quote(column)} = %s" for column in checked)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s{conditions}"


@functools.cache
def _insert_sql(model: type[Model], returning: bool, vendor: str) -> str:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = _insert_fields(model)
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"
    return sql + (f" RETURNING {quote(model._meta.pk.column)}" if returning else "")
