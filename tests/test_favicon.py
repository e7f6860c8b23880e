"""Every page names its icon, and /favicon.ico (asked for by tools that do not read the page) leads to it."""

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client
from django.urls import reverse


def test_the_icon_is_a_static_file():
    assert finders.find("favicon.svg")


@pytest.mark.django_db
def test_favicon_ico_redirects_to_the_icon_without_a_login():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == static("favicon.svg")


@pytest.mark.django_db
def test_pages_link_the_icon(researcher_client):
    for page in (Client().get(reverse("login")), researcher_client.get(reverse("home"))):
        assert f'<link rel="icon" href="{static("favicon.svg")}" type="image/svg+xml">' in page.content.decode()
