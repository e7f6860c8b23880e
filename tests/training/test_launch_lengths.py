"""Over-long names are refused with the field named, before a file system or the database sees them."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from training.models import TrainingRun
from tests.training.run_fixtures import token_rm_file  # noqa: F401

pytestmark = pytest.mark.django_db
LONG_MODEL = "org/" + "m" * 300


def test_the_launch_form_refuses_a_base_model_name_over_255_characters(researcher_client, token_rm_file):
    response = researcher_client.post(
        reverse("training:run_launch"),
        {
            "kind": "rm_relevance",
            "preset": "tiny",
            "train_file": SimpleUploadedFile("train.json", token_rm_file.read_bytes()),
            "cfg-base_model": LONG_MODEL,
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "is too long (304 characters, 300 in one part)" in page and "at most 255 characters between slashes" in page
    assert not TrainingRun.objects.exists()


def test_the_launch_command_names_the_field(token_rm_file):
    with pytest.raises(CommandError, match=r"base_model: is too long \(304 characters"):
        call_command("launch_run", "rm_relevance", "--train-file", str(token_rm_file), "--preset", "tiny", "--set", f"base_model={LONG_MODEL}")
    with pytest.raises(CommandError, match="name: is 201 characters long; at most 200 fit"):
        call_command("launch_run", "rm_relevance", "--train-file", str(token_rm_file), "--preset", "tiny", "--name", "n" * 201)
    assert not TrainingRun.objects.exists()


def test_a_folder_name_too_long_for_the_file_system_is_refused_not_crashed(token_rm_file, settings):
    # MODEL_ROOT exists in tests, so a 256-character name would reach stat() and fail with ENAMETOOLONG.
    with pytest.raises(CommandError, match=r"base_model: is too long \(256 characters"):
        call_command("launch_run", "rm_relevance", "--train-file", str(token_rm_file), "--preset", "tiny", "--set", "base_model=" + "x" * 256)
