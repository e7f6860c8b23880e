"""The empty "My work" page suggests only what the user can do: press Start where a Start button is shown."""

import re

import pytest
from django.urls import reverse

from tests.annotation.annotate_data import make_campaign, make_dataset

pytestmark = pytest.mark.django_db


def _empty_state(client) -> tuple[str, str]:
    """The empty state's text (whitespace folded) and the whole page."""
    page = client.get(reverse("annotation:my_work")).content.decode()
    match = re.search(r'<div class="card stack empty-work" id="empty-work">(.*?)</div>', page, flags=re.S)
    assert match, "no empty state on the page"
    return " ".join(match.group(1).split()), page


def test_a_researcher_who_annotates_nothing_is_not_told_to_press_start(researcher_client):
    make_campaign(make_dataset("bloom", examples=2), [])
    text, page = _empty_state(researcher_client)
    assert "Start" not in text and "Start</button>" not in page
    assert "the researcher role only" in text and "annotator</strong> role" in text
    assert reverse("annotation:campaign_list") in text


def test_a_staff_researcher_is_pointed_at_the_admin_site(make_user, client):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    text, _ = _empty_state(client)
    assert reverse("admin:index") in text


def test_an_annotator_with_work_is_told_to_press_the_start_button_shown(annotator_client, annotator):
    make_campaign(make_dataset("bloom", examples=2), [annotator])
    text, page = _empty_state(annotator_client)
    assert "press <strong>Start</strong> on a campaign above" in text
    assert ">Start</button>" in page


def test_an_annotator_in_no_campaign_is_told_a_researcher_adds_them(annotator_client):
    text, page = _empty_state(annotator_client)
    assert "not in any open campaign" in text and "Start</button>" not in page


def test_an_annotator_whose_campaigns_are_full_is_not_told_to_press_start(annotator_client, annotator):
    make_campaign(make_dataset("bloom", examples=0), [annotator])
    text, _ = _empty_state(annotator_client)
    assert "nothing waits for you" in text and "press" not in text
