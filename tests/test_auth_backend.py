"""The session's user is read with their roles in one statement, and is the user the ORM would give."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.auth_backend import UserWithRolesBackend
from annotation.roles import is_annotator, is_researcher, is_reviewer

pytestmark = pytest.mark.django_db


def _values(user) -> dict:
    return {field.attname: getattr(user, field.attname) for field in user._meta.concrete_fields}


def test_the_user_comes_with_every_role_in_one_statement(make_user):
    user = make_user("ida", role="annotator", email="ida@example.org")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0], Group.objects.get_or_create(name="other")[0])
    with CaptureQueriesContext(connection) as captured:
        loaded = UserWithRolesBackend().get_user(user.pk)
        assert is_annotator(loaded) and is_reviewer(loaded) and not is_researcher(loaded)
    assert len(captured) == 1
    assert _values(loaded) == _values(get_user_model().objects.get(pk=user.pk))
    assert loaded.check_password("pw-for-tests-1")
    assert not loaded._state.adding and loaded._state.db == "default"


def test_a_user_without_groups_has_no_role(make_user):
    user = make_user("gil")
    loaded = UserWithRolesBackend().get_user(user.pk)
    assert loaded.pk == user.pk and not (is_annotator(loaded) or is_reviewer(loaded) or is_researcher(loaded))


def test_another_users_groups_do_not_count(make_user):
    make_user("ann", role="researcher")
    loaded = UserWithRolesBackend().get_user(make_user("bob", role="annotator").pk)
    assert is_annotator(loaded) and not is_researcher(loaded)


def test_an_unknown_or_inactive_user_is_no_user(make_user):
    user = make_user("sue", role="annotator")
    user.is_active = False
    user.save()
    assert UserWithRolesBackend().get_user(user.pk) is None
    assert UserWithRolesBackend().get_user(987654) is None


def test_a_logged_in_request_sees_the_roles_the_backend_read(client, make_user):
    user = make_user("kim", role="researcher")
    client.force_login(user)
    assert client.session["_auth_user_backend"] == "annotation.auth_backend.UserWithRolesBackend"
    response = client.get("/")
    assert response.status_code == 200 and response.wsgi_request.user.pk == user.pk
    assert response.wsgi_request.user._granary_group_names == frozenset({"researcher"})
