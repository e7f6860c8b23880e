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
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"annotator", "researcher"}
