"""Role names and checks. Roles are Django groups; staff count as researchers, researchers as reviewers.

A request asks about roles several times (the view's decorator, the page's
navigation); the user's group names are read once and kept on the user
object, which lives as long as the request.
"""

from django.contrib.auth import get_user_model
from django.db import connection

ANNOTATOR = "annotator"
RESEARCHER = "researcher"
# Reviews and adjudicates the annotators' work (researchers can too) without the rest of the researcher pages.
REVIEWER = "reviewer"


def remember_group_names(user, names) -> None:
    """Keep group names read along with the user (annotation/auth_backend.py), so no request reads them again."""
    user._granary_group_names = frozenset(names)


def _group_names(user) -> frozenset[str]:
    names = getattr(user, "_granary_group_names", None)
    if names is None:
        names = frozenset(_read_group_names(user.pk))
        user._granary_group_names = names
    return names


def _read_group_names(user_id: int) -> list[str]:
    """The names of the user's groups, in one statement written out.

    Every request reads them (the views' role checks): composing and
    compiling `user.groups.values_list("name")` cost about 0.5 ms of CPU
    against 0.1 ms for the statement itself (issue 9).
    """
    groups = get_user_model()._meta.get_field("groups")
    group = groups.related_model._meta
    quote = connection.ops.quote_name
    sql = (
        f"SELECT g.{quote('name')} FROM {quote(group.db_table)} g"
        f" INNER JOIN {quote(groups.m2m_db_table())} ug ON ug.{quote(groups.m2m_reverse_name())} = g.{quote(group.pk.column)}"
        f" WHERE ug.{quote(groups.m2m_column_name())} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        return [name for (name,) in cursor.fetchall()]


def is_researcher(user) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_staff or RESEARCHER in _group_names(user)


def is_annotator(user) -> bool:
    if not user.is_authenticated:
        return False
    return ANNOTATOR in _group_names(user)


def is_reviewer(user) -> bool:
    if not user.is_authenticated:
        return False
    return is_researcher(user) or REVIEWER in _group_names(user)
