"""New annotation rounds sampled from a policy run: the command, the stored round, the campaign, the button."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from annotation.models import Campaign, CampaignTask, Example, Response
from training.ml.rounds import SamplingSettings, sampling_settings
from training.models import Artifact, RoundJob, RunStatus, TrainingRun

pytestmark = pytest.mark.django_db

SOURCE_EXAMPLES = 3


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, qa_feedback_dir):
    """A tiny T5 policy and tiny random R1, R2, R3 reward models, in one folder used as MODEL_ROOT."""
    from tests.training.test_ppo import tiny

    return tiny.__wrapped__(tmp_path_factory, qa_feedback_dir)


@pytest.fixture
def feedback_split(qa_feedback_dir, tmp_path):
    """The first examples of dev_feedback.json, alone (no policy-input file), as split `dev` of dataset `qa`."""
    from annotation.services.datasets import dataset_import

    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:SOURCE_EXAMPLES]
    path = tmp_path / "dev-feedback.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    dataset_import(path_or_file=path, dataset_name="qa", split="dev")
    return records


def _policy_run(kind: str, root: Path, dataset, **config) -> TrainingRun:
    base = {"max_new_tokens": 12, "max_input_len": 256, "top_k": 20, "temperature": 0.7, "seed": 3, "sentence_splitter": "sentencizer"}
    if kind == "ppo_fine_grained":
        base.update(rm_relevance_model=str(root / "r1"), rm_factuality_model=str(root / "r2"), rm_completeness_model=str(root / "r3"))
    run = TrainingRun.objects.create(kind=kind, dataset=dataset, train_split="dev", eval_split="dev", status=RunStatus.SUCCEEDED,
                                     config={**base, **config}, output_dir="runs/x")
    Artifact.objects.create(run=run, kind=Artifact.Kind.MODEL, name="best", path="policy")
    return run


@pytest.fixture
def ppo_run(tiny_models, settings, feedback_split, annotator):
    from annotation.models import Dataset

    settings.MODEL_ROOT = tiny_models
    return _policy_run("ppo_fine_grained", tiny_models, Dataset.objects.get(name="qa"))


def test_generate_round_stores_a_new_split_of_sampled_answers_with_reward_segments_and_opens_a_campaign(ppo_run):
    out = io.StringIO()
    call_command("generate_round", "--policy-run", str(ppo_run.pk), "--dataset", "qa", "--split", "dev", "--samples", "4",
                 "--json", stdout=out)
    result = json.loads(out.getvalue())
    campaign = Campaign.objects.get(pk=result["campaign"])
    assert result == {"round": 1, "examples": SOURCE_EXAMPLES, "responses": SOURCE_EXAMPLES * 4, "campaign": campaign.pk}

    assert campaign.split == "dev-round1" and campaign.source_run_id == ppo_run.pk and campaign.task == CampaignTask.BOTH
    examples = list(Example.objects.filter(dataset=ppo_run.dataset, split="dev-round1").order_by("position"))
    sources = list(Example.objects.filter(dataset=ppo_run.dataset, split="dev").order_by("position"))
    assert [e.question for e in examples] == [e.question for e in sources]
    assert [e.gold for e in examples] == [e.gold for e in sources]
    assert [e.passages.count() for e in examples] == [e.passages.count() for e in sources]
    # The round also holds policy inputs, prompts built as dev.json builds `text`.
    assert all(e.has_input_format and e.policy_text.startswith(f"question: {e.question} context: wikipage: ") for e in examples)

    responses = list(Response.objects.filter(example__in=examples))
    assert len(responses) == SOURCE_EXAMPLES * 4
    assert {r.round for r in responses} == {1} and {r.source_run_id for r in responses} == {ppo_run.pk}
    assert {r.number for r in responses} == {1, 2, 3, 4}
    models_seen = set()
    for response in responses:
        text = response.text
        for segment in response.reward_segments:
            assert set(segment) == {"start", "end", "reward", "label", "model"}
            assert 0 <= segment["start"] < segment["end"] <= len(text)
            piece = text[segment["start"]:segment["end"]]
            assert piece == piece.strip() and piece, (text, segment)
            models_seen.add(segment["model"])
        # R1's sub-sentences cover every word of the answer, in order, without overlap.
        r1 = [s for s in response.reward_segments if s["model"] == "rm_relevance"]
        assert all(a["end"] <= b["start"] for a, b in zip(r1, r1[1:]))
        assert " ".join(text[s["start"]:s["end"]] for s in r1).split() == text.split()
        assert all(s["reward"] == (0.3 if s["label"] == "O" else -0.3) for s in r1)
        if text:
            r3 = [s for s in response.reward_segments if s["model"] == "rm_completeness"]
            assert len(r3) == 1 and (r3[0]["start"], r3[0]["end"]) == (0, len(text))
    assert models_seen == {"rm_relevance", "rm_factuality", "rm_completeness"}
    assert any(r.text for r in responses)


def test_a_second_round_gets_the_next_number_and_fewer_samples_give_fine_grained_only(ppo_run):
    call_command("generate_round", "--policy-run", str(ppo_run.pk), "--samples", "4", "--limit", "1", stdout=io.StringIO())
    out = io.StringIO()
    call_command("generate_round", "--policy-run", str(ppo_run.pk), "--split", "dev-round1", "--samples", "2", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["round"] == 2 and result["examples"] == 1 and result["responses"] == 2
    campaign = Campaign.objects.get(pk=result["campaign"])
    assert campaign.split == "dev-round2" and campaign.task == CampaignTask.FINE_GRAINED


def test_an_annotator_can_open_the_rounds_campaign_and_sees_the_sampled_answer(ppo_run, annotator):
    out = io.StringIO()
    call_command("generate_round", "--policy-run", str(ppo_run.pk), "--samples", "1", "--limit", "2", "--json", stdout=out)
    campaign = Campaign.objects.get(pk=json.loads(out.getvalue())["campaign"])
    assert list(campaign.annotators.all()) == [annotator]
    client = Client()
    client.force_login(annotator)
    started = client.post(reverse("annotation:campaign_start", args=[campaign.pk]))
    assert started.status_code == 302, started.content[:500]
    page = client.get(started["Location"])
    assert page.status_code == 200
    assignment_id = int(re.search(r"/work/(\d+)/", started["Location"]).group(1))
    from annotation.models import Assignment

    response = Assignment.objects.get(pk=assignment_id).example.responses.get(number=1)
    assert response.round == 1
    if response.text:
        from django.utils.html import escape

        assert escape(response.text.split()[0]) in page.content.decode()


def test_the_round_exports_as_policy_inputs_before_annotation_and_refuses_the_feedback_format_until_annotated(ppo_run, tmp_path):
    call_command("generate_round", "--policy-run", str(ppo_run.pk), "--samples", "4", "--limit", "2", stdout=io.StringIO())
    target = tmp_path / "round.json"
    call_command("export_qa_feedback", "--dataset", "qa", "--split", "dev-round1", "--format", "inputs", "--out", str(target),
                 stdout=io.StringIO(), stderr=io.StringIO())
    records = json.loads(target.read_text())
    assert len(records) == 2 and records[0]["question"] == Example.objects.get(split="dev", position=0).question
    with pytest.raises(CommandError, match="no examples in the feedback format"):
        call_command("export_qa_feedback", "--dataset", "qa", "--split", "dev-round1", "--format", "feedback",
                     "--out", str(tmp_path / "fb.json"), stdout=io.StringIO(), stderr=io.StringIO())


def test_the_command_refuses_a_run_that_is_not_a_succeeded_policy(ppo_run):
    ppo_run.status = RunStatus.FAILED
    ppo_run.save()
    with pytest.raises(CommandError, match=f"run #{ppo_run.pk} is failed"):
        call_command("generate_round", "--policy-run", str(ppo_run.pk))
    rm = TrainingRun.objects.create(kind="rm_relevance", status=RunStatus.SUCCEEDED)
    with pytest.raises(CommandError, match="new rounds come from SFT or PPO"):
        call_command("generate_round", "--policy-run", str(rm.pk))
    with pytest.raises(CommandError, match="samples must be 1 to 4"):
        ppo_run.status = RunStatus.SUCCEEDED
        ppo_run.save()
        call_command("generate_round", "--policy-run", str(ppo_run.pk), "--samples", "5")


def test_sampling_settings_come_from_the_runs_config():
    ppo = sampling_settings({"max_new_tokens": 50, "top_k": 10, "top_p": 0.9, "temperature": 0.5, "max_input_len": 300,
                             "generation_batch_size": 4, "seed": 7}, samples=4)
    assert ppo == SamplingSettings(samples=4, max_input_len=300, max_new_tokens=50, top_k=10, top_p=0.9, temperature=0.5,
                                   batch_size=4, seed=7)
    sft = sampling_settings({"max_output_len": 64, "max_input_len": 512, "eval_batch_size": 8}, samples=2)
    assert (sft.max_new_tokens, sft.top_k, sft.temperature) == (64, 20, 0.7)


def test_the_run_page_button_queues_a_round_and_the_page_follows_it(ppo_run, researcher, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    from config.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)))
    client = Client()
    client.force_login(researcher)
    page = client.get(reverse("training:run_detail", args=[ppo_run.pk]))
    assert b'id="round-form"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        posted = client.post(reverse("training:run_round", args=[ppo_run.pk]), {"split": "dev", "samples": "4", "limit": "2"})
    assert posted.status_code == 302
    job = RoundJob.objects.get()
    assert sent == [("training.generate_round", {"args": [job.pk], "queue": "gpu", "task_id": sent[0][1]["task_id"]})]
    assert (job.status, job.samples, job.limit, job.source_split) == (RoundJob.Status.QUEUED, 4, 2, "dev")

    RoundJob.objects.filter(pk=job.pk).update(status=RoundJob.Status.RUNNING, progress_done=3, progress_total=8)
    live = client.get(reverse("training:round_status", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert live.status_code == 200 and b"3 / 8 answers" in live.content and b'hx-trigger="every 2s"' in live.content

    from training.rounds import round_execute

    RoundJob.objects.filter(pk=job.pk).update(status=RoundJob.Status.QUEUED)
    job = round_execute(job_id=job.pk)
    assert job.status == RoundJob.Status.SUCCEEDED, job.error
    done = client.get(reverse("training:round_status", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx: stop polling
    assert reverse("annotation:campaign_detail", args=[job.campaign_id]).encode() in done.content
    page = client.get(reverse("training:run_detail", args=[ppo_run.pk]))
    assert reverse("annotation:campaign_detail", args=[job.campaign_id]).encode() in page.content


def test_the_button_refuses_without_annotators_and_says_so(ppo_run, researcher):
    from django.contrib.auth.models import Group

    Group.objects.get(name="annotator").user_set.clear()
    client = Client()
    client.force_login(researcher)
    posted = client.post(reverse("training:run_round", args=[ppo_run.pk]), {"split": "dev", "samples": "4"})
    assert posted.status_code == 409
    assert b"no annotator account" in posted.content
    assert not RoundJob.objects.exists()


def test_the_round_card_is_offered_only_on_succeeded_policy_runs(ppo_run, researcher):
    client = Client()
    client.force_login(researcher)
    rm = TrainingRun.objects.create(kind="rm_relevance", status=RunStatus.SUCCEEDED)
    running = TrainingRun.objects.create(kind="sft", status=RunStatus.RUNNING)
    for run in (rm, running):
        assert b'id="round-form"' not in client.get(reverse("training:run_detail", args=[run.pk])).content
    refused = client.post(reverse("training:run_round", args=[rm.pk]), {"samples": "4"})
    assert refused.status_code == 400 and b"new rounds come from SFT or PPO" in refused.content
    bad = client.post(reverse("training:run_round", args=[ppo_run.pk]), {"split": "dev", "samples": "four"})
    assert bad.status_code == 400 and b"samples must be a whole number" in bad.content


def test_a_round_whose_worker_died_is_failed_by_the_reaper(ppo_run):
    from datetime import timedelta

    from django.utils import timezone

    from training.rounds import ROUND_STALE_S
    from training.tasks import reap_stale_runs

    old = timezone.now() - timedelta(seconds=ROUND_STALE_S + 5)
    dead = RoundJob.objects.create(run=ppo_run, dataset=ppo_run.dataset, source_split="dev", status=RoundJob.Status.RUNNING,
                                   heartbeat_at=old)
    alive = RoundJob.objects.create(run=ppo_run, dataset=ppo_run.dataset, source_split="dev", status=RoundJob.Status.RUNNING,
                                    heartbeat_at=timezone.now())
    reap_stale_runs()
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == RoundJob.Status.FAILED and "stopped reporting" in dead.error
    assert alive.status == RoundJob.Status.RUNNING


def test_an_sft_policy_samples_a_round_with_no_reward_segments_since_it_names_no_reward_models(tiny_models, settings,
                                                                                             feedback_split, annotator):
    from annotation.models import Dataset

    settings.MODEL_ROOT = tiny_models
    sft = _policy_run("sft", tiny_models, Dataset.objects.get(name="qa"), max_new_tokens=None, max_output_len=10)
    out = io.StringIO()
    call_command("generate_round", "--policy-run", str(sft.pk), "--samples", "1", "--limit", "2", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert (result["examples"], result["responses"]) == (2, 2)
    responses = Response.objects.filter(round=1, source_run=sft)
    assert responses.count() == 2 and all(r.reward_segments == [] for r in responses)
    assert Campaign.objects.get(pk=result["campaign"]).task == CampaignTask.FINE_GRAINED


def _round_examples(run) -> int:
    return Example.objects.filter(dataset=run.dataset, split__contains="-round").count()


def test_a_queued_round_is_cancelled_at_once_and_never_sampled(ppo_run):
    from training.rounds import round_cancel, round_execute, round_request

    job = round_request(run=ppo_run, split="dev", samples=4)  # queued; the worker has not taken it yet
    assert round_cancel(job_id=job.pk).status == RoundJob.Status.CANCELLED
    job = round_execute(job_id=job.pk)  # the task arrives later: it finds nothing to do
    assert (job.status, job.progress_total, job.started_at) == (RoundJob.Status.CANCELLED, 0, None)
    assert _round_examples(ppo_run) == 0 and not Campaign.objects.exists()


def test_a_running_round_stops_after_the_batch_in_hand_and_stores_nothing(ppo_run):
    from training.rounds import round_cancel, round_execute

    job = RoundJob.objects.create(run=ppo_run, dataset=ppo_run.dataset, source_split="dev", samples=4)
    reports = []

    def cancel_once_sampling_began(done: int, total: int) -> None:
        reports.append((done, total))
        if len(reports) == 1:
            assert round_cancel(job_id=job.pk).cancel_requested  # what the button does while the worker samples

    job = round_execute(job_id=job.pk, progress=cancel_once_sampling_began)
    assert job.status == RoundJob.Status.CANCELLED, job.error
    assert reports == [(0, SOURCE_EXAMPLES * 4)]  # the next batch's report saw the request and stopped there
    assert job.progress_done > 0 and job.finished_at is not None
    assert _round_examples(ppo_run) == 0 and not Campaign.objects.exists()


def test_a_cancel_that_comes_after_the_last_batch_still_stores_nothing(ppo_run):
    from training.rounds import RoundCancelled, round_store, source_examples

    job = RoundJob.objects.create(run=ppo_run, dataset=ppo_run.dataset, source_split="dev", samples=1,
                                  status=RoundJob.Status.RUNNING, cancel_requested=True)
    examples = source_examples(dataset=ppo_run.dataset, split="dev")
    with pytest.raises(RoundCancelled):
        round_store(job=job, examples=examples, answers=[[{"text": "An answer.", "reward_segments": []}]] * len(examples))
    assert _round_examples(ppo_run) == 0 and not Campaign.objects.exists()


def test_the_round_card_cancels_with_htmx_and_refuses_a_finished_round(ppo_run, researcher, annotator):
    queued = RoundJob.objects.create(run=ppo_run, dataset=ppo_run.dataset, source_split="dev")
    running = RoundJob.objects.create(run=ppo_run, dataset=ppo_run.dataset, source_split="dev", status=RoundJob.Status.RUNNING,
                                      progress_done=4, progress_total=12)
    done = RoundJob.objects.create(run=ppo_run, dataset=ppo_run.dataset, source_split="dev", status=RoundJob.Status.SUCCEEDED,
                                   round=1, split="dev-round1")
    client = Client()
    client.force_login(researcher)
    page = client.get(reverse("training:run_detail", args=[ppo_run.pk])).content.decode()
    assert page.count("Cancel round") == 2  # the queued and the running one
    cancel = lambda job, **headers: client.post(reverse("training:round_cancel", args=[job.pk]), **headers)  # noqa: E731

    card = cancel(queued, HTTP_HX_REQUEST="true")
    assert card.status_code == 200 and "Cancelled; nothing was stored." in card.content.decode()
    card = cancel(running, HTTP_HX_REQUEST="true").content.decode()
    assert "Stopping…" in card and "stops after the batch of answers in hand" in card and 'hx-trigger="every 2s"' in card
    refused = cancel(done)
    assert refused.status_code == 409 and "has already succeeded" in refused.content.decode()
    assert [j.status for j in RoundJob.objects.order_by("pk")] == ["cancelled", "running", "succeeded"]

    other = Client()
    other.force_login(annotator)
    assert other.post(reverse("training:round_cancel", args=[running.pk])).status_code == 403
