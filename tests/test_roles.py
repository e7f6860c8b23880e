"""Roles come from the user's groups, read once per request (one statement) and kept on the user object."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.roles import is_annotator, is_researcher, is_reviewer

pytestmark = pytest.mark.django_db


def _fresh(user):
    return type(user).objects.get(pk=user.pk)


def test_each_role_follows_the_groups(make_user):
    user = make_user("gil")
    assert not (is_annotator(user) or is_researcher(user) or is_reviewer(user))
    for name in ("annotator", "reviewer", "other"):
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    user = _fresh(user)
    assert is_annotator(user) and is_reviewer(user) and not is_researcher(user)
    user.groups.remove(Group.objects.get(name="annotator"))
    user.groups.add(Group.objects.get_or_create(name="researcher")[0])
    user = _fresh(user)
    assert not is_annotator(user) and is_researcher(user) and is_reviewer(user)


def test_another_users_groups_do_not_count(make_user):
    make_user("ann", role="researcher")
    assert not is_researcher(make_user("bob", role="annotator"))


def test_staff_are_researchers_without_the_group(make_user):
    assert is_researcher(make_user("sam", is_staff=True))


def test_the_groups_are_read_once_per_user_object(make_user):
    user = _fresh(make_user("ida", role="annotator"))
    with CaptureQueriesContext(connection) as captured:
        assert is_annotator(user) and not is_researcher(user) and not is_reviewer(user)
    assert len(captured) == 1
