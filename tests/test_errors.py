import json

import pytest
from django.test import RequestFactory

from annotation.qa.errors import BadRequest, Conflict, NotFound, Refused
from config.errors import RefusedMiddleware


def _raise(exc):
    def view(request):
        raise exc

    return view


@pytest.mark.parametrize(
    ("exc", "status"),
    [(Refused("bad value in row 3"), 422), (BadRequest("no file"), 400), (NotFound("no run 7"), 404), (Conflict("already running"), 409)],
)
def test_it_answers_a_refusal_with_its_status_and_message(exc, status):
    request = RequestFactory().get("/x", HTTP_HX_REQUEST="true")
    response = RefusedMiddleware(_raise(exc)).process_exception(request, exc)
    assert response.status_code == status
    assert response.content.decode() == str(exc)


def test_it_answers_json_callers_with_the_field_named():
    exc = Refused("must be positive", field="max_steps")
    request = RequestFactory().post("/x", data="{}", content_type="application/json")
    response = RefusedMiddleware(_raise(exc)).process_exception(request, exc)
    assert response.status_code == 422
    assert json.loads(response.content) == {"error": "must be positive", "field": "max_steps"}


@pytest.mark.django_db
def test_it_renders_a_styled_page_for_a_full_page_load(client, django_user_model):
    user = django_user_model.objects.create_user("reader", password="pw")
    client.force_login(user)
    request = RequestFactory().get("/x")
    request.user = user
    exc = NotFound("No dataset named 'qa'.")
    response = RefusedMiddleware(_raise(exc)).process_exception(request, exc)
    body = response.content.decode()
    assert response.status_code == 404
    assert "No dataset named &#x27;qa&#x27;." in body
    assert 'class="topbar"' in body


def test_it_leaves_other_exceptions_alone():
    request = RequestFactory().get("/x")
    assert RefusedMiddleware(_raise(KeyError())).process_exception(request, KeyError("k")) is None
