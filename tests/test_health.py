import json

import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_it_reports_database_and_broker_reachable(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True


@pytest.mark.django_db
def test_it_needs_no_login(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_it_reports_an_unreachable_broker_with_503(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["status"] == "error"
    assert body["broker"]["ok"] is False
    assert body["broker"]["error"].startswith("broker unreachable (")
    assert body["database"]["ok"] is True


@pytest.mark.django_db
def test_it_hides_the_exception_text_from_anonymous_visitors(client, settings):
    settings.CELERY_BROKER_URL = "redis://secret-user:secret-pw@127.0.0.1:1/0"
    response = client.get(reverse("healthz"))
    body = json.loads(response.content)
    assert body["broker"] == {"ok": False, "error": body["broker"]["error"]}
    assert "127.0.0.1" not in response.content.decode() and "secret" not in response.content.decode()
    assert "Error" in body["broker"]["error"]  # the kind of failure, e.g. OperationalError


@pytest.mark.django_db
def test_it_shows_staff_what_went_wrong(client, settings, make_user):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    client.force_login(make_user("root", is_staff=True))
    body = json.loads(client.get(reverse("healthz")).content)
    assert body["broker"]["ok"] is False and body["broker"]["detail"]
