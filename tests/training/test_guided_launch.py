"""The guided launch form: prerequisites, defaults that launch as they stand, presets that fit the workers, warnings."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.training.run_fixtures import import_policy_inputs
from training import guide, selectors, workers
from training.models import Artifact, RunStatus, TrainingRun, WorkerPresence

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy_dataset(qa_feedback_dir, tmp_path):
    import_policy_inputs(qa_feedback_dir, tmp_path / "imports", train=4, dev=2, dataset="qa-policy")


def _launch_page(client, query: str = "") -> str:
    response = client.get(reverse("training:run_launch") + query)
    assert response.status_code == 200
    return response.content.decode()


def _selected(page: str, name: str) -> str:
    select = page[page.index(f'name="{name}"'):]
    select = select[: select.index("</select>")]
    found = re.search(r'<option value="([^"]*)"[^>]* selected', select)
    return found.group(1) if found else ""


def _value(page: str, input_id: str) -> str:
    return re.search(rf'id="{input_id}"[^>]*value="([^"]*)"', page).group(1)


def _presence(hostname: str, *, queues=("gpu",), gpus: int = 0, age_s: float = 0) -> WorkerPresence:
    seen = timezone.now() - timedelta(seconds=age_s)
    return WorkerPresence.objects.create(hostname=hostname, queues=list(queues), gpus=gpus, started_at=seen, seen_at=seen)


def test_the_defaults_pick_a_dataset_with_what_the_kind_reads_and_launch_as_they_stand(researcher_client, policy_dataset):
    page = _launch_page(researcher_client, "?kind=sft")
    assert _selected(page, "dataset") == "qa-policy"  # not "uploaded files" when a dataset exists
    assert (_value(page, "id_train_split"), _value(page, "id_eval_split")) == ("train", "dev")
    assert _selected(page, "preset") == "tiny"  # no GPU worker online
    assert 'id="split-warning" role="status" hidden' in page

    data = {"kind": "sft", "preset": _selected(page, "preset"), "dataset": _selected(page, "dataset"),
            "train_split": _value(page, "id_train_split"), "eval_split": _value(page, "id_eval_split")}
    response = researcher_client.post(reverse("training:run_launch"), data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    run = TrainingRun.objects.get()
    assert (run.dataset.name, run.train_split, run.eval_split) == ("qa-policy", "train", "dev")
    assert run.config["model_name_or_path"] == "{tiny_t5}"


def test_the_preset_fits_the_workers_online(researcher_client, settings):
    advice = guide.fitting_preset("sft")
    assert advice.preset == "tiny" and "No worker is online on the gpu queue" in advice.note

    _presence("cpu-box", gpus=0)
    advice = guide.fitting_preset("sft")
    assert advice.preset == "tiny" and "cpu-box" in advice.note and "has a GPU" in advice.note

    _presence("gpu-box", gpus=2, age_s=workers.STALE_S + 30)  # stopped beating: not online
    assert guide.fitting_preset("sft").preset == "tiny"
    _presence("default-box", queues=("default",), gpus=1)  # a GPU, but not on the training queue
    assert guide.fitting_preset("sft").preset == "tiny"

    WorkerPresence.objects.filter(hostname="gpu-box").update(seen_at=timezone.now())
    advice = guide.fitting_preset("sft")
    assert advice.preset == "paper" and "1 worker(s) with a GPU" in advice.note
    page = _launch_page(researcher_client, "?kind=rm_relevance")
    assert _selected(page, "preset") == "paper"
    assert 'id="preset-note"' in page


def test_a_worker_writes_its_presence_beats_and_removes_it(monkeypatch):
    monkeypatch.setattr(workers, "BEAT_S", 0.05)
    stop = threading.Event()
    thread = workers.start_beating(hostname="w1@host", queues=["gpu", "gpu"], gpus=1, stop=stop)
    first = WorkerPresence.objects.get(hostname="w1@host")
    assert (first.queues, first.gpus) == (["gpu"], 1)
    assert [w.hostname for w in selectors.workers_online()] == ["w1@host"]
    stop.set()
    thread.join(timeout=5)
    assert not workers.worker_presence_beat(hostname="nobody")
    workers.worker_presence_remove(hostname="w1@host")
    assert not WorkerPresence.objects.exists()


def test_prerequisites_are_listed_with_what_is_missing_named(researcher_client, settings):
    page = _launch_page(researcher_client, "?kind=ppo_fine_grained")
    listed = re.findall(r'class="prereq prereq-(\w+)" data-setting="(\w+)"', page)
    assert ("missing", "policy_model") in listed and ("missing", "rm_completeness_model") in listed
    assert ("optional", "rm_preference_model") in listed and ("optional", "value_model") in listed
    missing = page[page.index('id="prereq-missing"'):]
    missing = missing[: missing.index("</p>")]
    for stage in ("sft", "rm_relevance", "rm_factuality", "rm_completeness"):
        assert f"<strong>{stage}</strong>" in missing
    assert "rm_preference" not in missing

    sft = TrainingRun.objects.create(kind="sft", status=RunStatus.SUCCEEDED, finished_at=timezone.now(), output_dir="runs/1-sft")
    (settings.MODEL_ROOT / "runs/1-sft/model").mkdir(parents=True)
    Artifact.objects.create(run=sft, kind=Artifact.Kind.MODEL, name="model", path="runs/1-sft/model")
    page = _launch_page(researcher_client, "?kind=ppo_holistic")
    assert re.search(r'class="prereq prereq-met" data-setting="policy_model"', page)
    assert f'<a href="/training/runs/{sft.pk}/">#{sft.pk}</a>' in page or f"#{sft.pk}</a>" in page
    missing = page[page.index('id="prereq-missing"'):]
    assert "<strong>rm_preference</strong>" in missing[: missing.index("</p>")]
    assert _selected(page, "source-policy_model") == str(sft.pk)
    # Kinds with no model prerequisites list none.
    assert 'id="prerequisites"' not in _launch_page(researcher_client, "?kind=sft")


def test_the_launch_form_links_each_ppo_kind_to_the_pipeline_that_trains_its_prerequisites():
    url = guide.pipeline_url("ppo_fine_grained", dataset="qa", train_split="train", eval_split="dev")
    assert url == "/training/pipelines/new/?kind=fine_grained&dataset=qa&train_split=train&eval_split=dev"
    assert guide.pipeline_url("ppo_holistic", dataset="qa", train_split="t", eval_split="d").startswith(
        "/training/pipelines/new/?kind=holistic&")
    # A kind that starts a pipeline (nothing before it) or ends none gets no link.
    assert guide.pipeline_url("sft", dataset="qa", train_split="train", eval_split="dev") == ""
    assert guide.pipeline_url("rm_relevance", dataset="qa", train_split="train", eval_split="dev") == ""


def test_eval_on_the_train_split_is_warned_on_the_form_and_after_launch(researcher_client, policy_dataset):
    page = _launch_page(researcher_client, "?kind=sft&dataset=qa-policy&train_split=dev&eval_split=dev")
    assert 'id="split-warning" role="status">' in page and "The eval split is the train split." in page
    response = researcher_client.post(reverse("training:run_launch"), {
        "kind": "sft", "preset": "tiny", "dataset": "qa-policy", "train_split": "dev", "eval_split": "dev"}, follow=True)
    assert response.status_code == 200
    assert "evaluates on dev, the split it trains on" in response.content.decode()
    # A separate eval split gets no warning.
    response = researcher_client.post(reverse("training:run_launch"), {
        "kind": "sft", "preset": "tiny", "dataset": "qa-policy", "train_split": "train", "eval_split": "dev"}, follow=True)
    assert "the split it trains on" not in response.content.decode()


def test_default_inputs_choose_splits_that_hold_the_kinds_format():
    counts = {"fb": {"dev": {"feedback": 5, "inputs": 0}}, "pol": {"a": {"feedback": 0, "inputs": 3}, "b": {"feedback": 0, "inputs": 9}}}
    assert guide.default_inputs("sft", counts) == ("pol", "b", "a")
    assert guide.default_inputs("rm_relevance", counts) == ("fb", "dev", "")  # no other split: no evaluation, not dev again
    assert guide.default_inputs("sft", {}) == ("", "", "")


def test_the_new_pipeline_form_starts_from_the_preset_that_fits_the_workers_online(researcher_client):
    page = researcher_client.get(reverse("training:pipeline_new") + "?kind=fine_grained").content.decode()
    assert re.search(r'<option value="tiny" selected>', page) and 'id="preset-note"' in page
    _presence("gpu-box", gpus=1)
    page = researcher_client.get(reverse("training:pipeline_new") + "?kind=fine_grained").content.decode()
    assert re.search(r'<option value="paper" selected>', page)
    assert "1 worker(s) with a GPU online" in page
    # An explicit choice wins.
    page = researcher_client.get(reverse("training:pipeline_new") + "?kind=fine_grained&preset=tiny").content.decode()
    assert re.search(r'<option value="tiny" selected>', page)
