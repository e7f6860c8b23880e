"""403, 404 and 500 pages: styled like the rest of the site, with its navigation; 500 renders with nothing."""

import pytest
from django.template.loader import render_to_string
from django.test import Client, override_settings
from django.urls import path

from config.urls import handler500 as site_handler500
from config.urls import urlpatterns as site_urls

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("a bug")


# The site's URLs plus one view that fails, for the 500 page.
urlpatterns = [*site_urls, path("boom/", _boom)]
handler500 = site_handler500


def broken_context_processor(request):
    raise RuntimeError("the context processor failed too")


def _assert_site_page(body: str) -> None:
    assert 'class="topbar"' in body and 'aria-label="Main"' in body  # the navigation
    assert "css/app.css" in body and 'rel="icon"' in body
    assert 'href="/"' in body  # a way back


def test_an_unknown_address_gets_the_styled_404_with_navigation(researcher_client):
    response = researcher_client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    _assert_site_page(body)
    assert "<h1 id=\"error-heading\">Not found</h1>" in body
    assert "There is no page at <code>/no/such/page/</code>." in body
    assert "Resolver404" not in body


@pytest.mark.parametrize("debug", [False, True])
def test_a_missing_run_gets_the_styled_404_in_development_too(researcher_client, settings, debug):
    settings.DEBUG = debug
    response = researcher_client.get("/training/runs/987654/")
    assert response.status_code == 404
    body = response.content.decode()
    _assert_site_page(body)
    assert "no training run 987654" in body


def test_a_missing_run_answers_htmx_with_the_bare_message(researcher_client):
    response = researcher_client.get("/training/runs/987654/", HTTP_HX_REQUEST="true")
    assert response.status_code == 404 and response.content.decode() == "no training run 987654"


def test_a_page_for_researchers_gets_the_styled_403_with_the_reason(annotator_client):
    response = annotator_client.get("/training/runs/")
    assert response.status_code == 403
    body = response.content.decode()
    _assert_site_page(body)
    assert "<h1 id=\"error-heading\">Not allowed</h1>" in body
    assert "This page is for researchers. You are logged in as <strong>anna</strong> (annotator)." in body


def test_the_500_page_renders_with_an_empty_context():
    body = render_to_string("500.html")
    assert "Something went wrong" in body and 'href="/"' in body and "<style>" in body


@override_settings(ROOT_URLCONF=__name__)
def test_the_500_page_renders_when_the_context_processors_fail(settings, researcher):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "OPTIONS": {
        "context_processors": [*settings.TEMPLATES[0]["OPTIONS"]["context_processors"], f"{__name__}.broken_context_processor"]}}]
    client = Client(raise_request_exception=False)
    client.force_login(researcher)
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body and "Back to the start page" in body


@override_settings(ROOT_URLCONF=__name__)
def test_the_500_page_policy_allows_its_own_inline_styles_and_no_script(researcher):
    import base64
    import hashlib
    import re

    client = Client(raise_request_exception=False)
    client.force_login(researcher)
    response = client.get("/boom/")
    style = re.search(r"<style>(.*?)</style>", response.content.decode(), re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = response["Content-Security-Policy"]
    assert f"style-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "script" not in policy


def test_a_refusal_page_keeps_its_status_and_message(researcher_client):
    response = researcher_client.get("/annotation/datasets/no-such-dataset/")
    assert response.status_code == 404
    _assert_site_page(response.content.decode())
