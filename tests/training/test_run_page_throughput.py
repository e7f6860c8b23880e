"""The run page's throughput card: tokens/s, samples/s, MFU and the step-time split from the latest perf/ figures."""

import re

import pytest
from django.urls import reverse

from training import selectors, services, supervisor
from tests.training.run_fixtures import token_rm_file  # noqa: F401

pytestmark = pytest.mark.django_db


def _run_with(token_rm_file, metrics: dict[str, float]):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("train.json", token_rm_file.read_bytes())
    run = services.run_create(kind="rm_relevance", preset="tiny", uploads={"train": upload}, overrides={})
    run = supervisor.run_claim(run_id=run.pk, host="node-a")
    supervisor.run_record_event(run=run, event={"event": "metrics", "step": 3, "metrics": metrics})
    return run


def test_the_run_page_shows_throughput_mfu_and_the_step_time_split(researcher_client, token_rm_file):
    run = _run_with(token_rm_file, {
        "perf/step_seconds": 10.0, "perf/generation_seconds": 6.0, "perf/scoring_seconds": 1.5,
        "perf/training_seconds": 2.5, "perf/tokens_per_second": 1234.5, "perf/samples_per_second": 3.2,
        "perf/mfu": 0.417, "perf/peak_memory_gb": 61.25, "train/loss": 0.5,
    })
    page = researcher_client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    card = page[page.index('id="throughput"'):page.index("Latest values")]
    assert "1,234" in card and "3.2" in card and "42 %" in card and "61.2 GiB" in card
    bars = re.findall(r'<progress max="100" value="(\d+)"', card)
    assert bars == ["60", "15", "25"]  # generation, scoring, training
    assert "Generation" in card and "Training" in card


def test_a_cpu_run_has_no_mfu_and_a_run_without_perf_figures_no_card(researcher_client, token_rm_file):
    run = _run_with(token_rm_file, {"perf/step_seconds": 2.0, "perf/training_seconds": 2.0,
                                    "perf/tokens_per_second": 100.0, "perf/samples_per_second": 4.0})
    page = researcher_client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    card = page[page.index('id="throughput"'):page.index("Latest values")]
    assert "No peak FLOP/s known" in card and "Peak GPU memory" not in card
    assert re.findall(r'<progress max="100" value="(\d+)"', card) == ["100"]
    assert selectors.run_throughput({"train/loss": 1.0}) is None
