"""Annotators never reach researcher pages; researchers reach all of them."""

import pytest
from django.urls import reverse

RESEARCHER_PAGES = [
    "annotation:dataset_list",
    "annotation:dataset_upload",
    "annotation:rm_data",
    "annotation:campaign_list",
    "annotation:campaign_create",
    "training:run_list",
    "training:run_launch",
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", RESEARCHER_PAGES)
def test_it_refuses_researcher_pages_to_annotators(annotator_client, name):
    assert annotator_client.get(reverse(name)).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("name", RESEARCHER_PAGES)
def test_it_serves_researcher_pages_to_researchers(researcher_client, name):
    assert researcher_client.get(reverse(name)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", RESEARCHER_PAGES)
def test_it_sends_anonymous_visitors_to_log_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_it_shows_each_role_only_its_own_navigation(annotator, researcher):
    from django.test import Client

    annotator_client, researcher_client = Client(), Client()
    annotator_client.force_login(annotator)
    researcher_client.force_login(researcher)
    annotator_page = annotator_client.get(reverse("home")).content.decode()
    researcher_page = researcher_client.get(reverse("home")).content.decode()
    assert reverse("annotation:my_work") in annotator_page
    assert reverse("training:run_list") not in annotator_page
    assert reverse("annotation:dataset_list") not in annotator_page
    assert reverse("training:run_list") in researcher_page
    assert reverse("annotation:dataset_list") in researcher_page


@pytest.mark.django_db
@pytest.mark.parametrize(
    "username, role, shown",
    [
        ("annotator", "annotator", "annotator"),  # the demo account: not "annotator · annotator"
        ("researcher", "researcher", "researcher"),
        ("anna", "annotator", "anna · annotator"),
        ("rita", "researcher", "rita · researcher"),
    ],
)
def test_the_header_names_the_user_and_a_role_the_name_does_not_already_say(client, make_user, username, role, shown):
    import re

    client.force_login(make_user(username, role=role))
    page = client.get(reverse("home")).content.decode()
    assert re.search(r'<span class="muted user-name">([^<]*)</span>', page).group(1) == shown
