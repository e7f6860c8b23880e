"""The seed_demo command: accounts, demo data in both formats, a campaign; running it twice changes nothing."""

import io
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from annotation.models import Campaign, Example
from annotation.roles import is_annotator, is_researcher
from annotation.selectors.datasets import feedback_records_for, input_records_for

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"

pytestmark = pytest.mark.django_db


def _log_in(username: str, password: str):
    # django-axes (login throttling) needs the request that tries to log in.
    return authenticate(RequestFactory().post("/accounts/login/"), username=username, password=password)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs about half a second per account; these tests create several.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_it_creates_the_demo_accounts_with_printed_passwords():
    output = seed()
    User = get_user_model()
    for username in ("admin", "researcher", "annotator", "annotator2"):
        assert f"  {username:<12} granary-demo" in output
        assert _log_in(username, "granary-demo") == User.objects.get(username=username)
    assert User.objects.get(username="admin").is_superuser
    assert is_researcher(User.objects.get(username="researcher"))
    assert is_annotator(User.objects.get(username="annotator")) and is_annotator(
        User.objects.get(username="annotator2")
    )
    assert not is_researcher(User.objects.get(username="annotator2"))


def test_it_imports_the_demo_data_in_both_formats():
    seed()
    from annotation.qa import format as qa_format

    assert (
        qa_format.dumps(feedback_records_for("demo", "dev"), fmt="feedback")
        == (DEMO_DIR / "qa_feedback_demo.json").read_text()
    )
    assert (
        qa_format.dumps(input_records_for("demo", "dev"), fmt="inputs")
        == (DEMO_DIR / "qa_feedback_demo_inputs.json").read_text()
    )


def test_it_creates_one_campaign_for_both_demo_annotators():
    seed()
    campaign = Campaign.objects.get()
    assert (campaign.dataset.name, campaign.split, campaign.task) == ("demo", "dev", "both")
    assert sorted(campaign.annotators.values_list("username", flat=True)) == ["annotator", "annotator2"]


def test_it_changes_nothing_when_run_again():
    seed()
    User = get_user_model()
    researcher = User.objects.get(username="researcher")
    researcher.set_password("changed-by-hand")
    researcher.save()
    before = (User.objects.count(), Example.objects.count(), Campaign.objects.count())

    output = seed()
    assert (User.objects.count(), Example.objects.count(), Campaign.objects.count()) == before
    assert "already imported" in output and "Demo campaign already exists." in output
    assert "researcher   (existing account, password unchanged)" in output
    assert _log_in("researcher", "changed-by-hand") is not None
