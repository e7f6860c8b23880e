"""Django's model backend, reading a session's user and their roles in one statement.

Every request loads its user from the session, and every annotation view then
asks for the user's roles (annotation/roles.py). The ORM's `get(pk=...)` and
the roles' own statement cost two round trips and the compiling of a
queryset; here one written-out statement (model_rows.py) returns the user's
row once per group, so the roles are known before a view asks (issue 9).
"""

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import DEFAULT_DB_ALIAS, connections

from annotation.roles import remember_group_names
from annotation.selectors.model_rows import ModelColumns


class UserWithRolesBackend(ModelBackend):
    def get_user(self, user_id):
        # `user_id` comes from the session through the primary key's to_python (django.contrib.auth.get_user).
        database = connections[DEFAULT_DB_ALIAS]
        with database.cursor() as cursor:
            cursor.execute(_user_sql(), [user_id])
            rows = cursor.fetchall()
        if not rows:
            return None
        user = _user_columns().build(rows[0], 0, database)
        remember_group_names(user, [row[-1] for row in rows if row[-1] is not None])
        return user if self.user_can_authenticate(user) else None


@functools.cache
def _user_columns() -> ModelColumns:
    return ModelColumns(get_user_model(), "u")


@functools.cache
def _user_sql() -> str:
    user = _user_columns()
    groups = user.model._meta.get_field("groups")
    group = groups.related_model._meta
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    pk = quote(user.model._meta.pk.column)
    return (
        f"SELECT {user.select(connections[DEFAULT_DB_ALIAS])}, g.{quote('name')} FROM {quote(user.table)} u"
        f" LEFT OUTER JOIN {quote(groups.m2m_db_table())} ug ON ug.{quote(groups.m2m_column_name())} = u.{pk}"
        f" LEFT OUTER JOIN {quote(group.db_table)} g ON g.{quote(group.pk.column)} = ug.{quote(groups.m2m_reverse_name())}"
        f" WHERE u.{pk} = %s"
    )
