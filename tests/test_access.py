import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_it_sends_anonymous_users_to_the_login_page(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_it_shows_the_home_page_after_login(annotator_client):
    response = annotator_client.get(reverse("home"))
    assert response.status_code == 200
    assert b"Welcome, anna" in response.content


@pytest.mark.django_db
def test_it_logs_in_with_a_password(client, make_user):
    make_user("lee", role="annotator", password="a-long-password")
    response = client.post(reverse("login"), {"username": "lee", "password": "a-long-password"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


@pytest.mark.django_db
def test_it_creates_the_role_groups_in_a_migration():
    # Read the migration rather than the rows it left: a transactional test (live server, Celery worker) run
    # earlier in the same process, as pytest-xdist may order them, has flushed those.
    from importlib import import_module

    from django.apps import apps
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    assert ("annotation", "0002_roles") in MigrationRecorder(connection).applied_migrations()
    Group.objects.all().delete()
    import_module("annotation.migrations.0002_roles").create_roles(apps, None)
    assert set(Group.objects.values_list("name", flat=True)) >= {"annotator", "researcher"}
