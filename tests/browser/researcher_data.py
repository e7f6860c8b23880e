"""Data for the researcher page tests: a dataset, a campaign, a reward-model build and runs with metrics.

Plain functions, not fixtures. Nothing here queues work on a broker: rows are
written directly, the way a worker would leave them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from annotation.models import Campaign, CampaignTask, RmDataBuild
from annotation.services.datasets import dataset_import
from annotation.services.rm_files import rm_data_build_dir, rm_data_build_run
from training import supervisor
from training.kinds import build_config
from training.models import RunStatus, TrainingRun

DATASET = "qa-feedback-dev"


def import_shared_slice(qa_feedback_dir: Path, folder: Path, *, feedback: int = 12, inputs: int = 6) -> str:
    """The first shared examples with their feedback (split dev) and as policy inputs (split train)."""
    folder.mkdir(parents=True, exist_ok=True)
    feedback_records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:feedback]
    input_records = json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))[:inputs]
    for split, records in (("dev", feedback_records), ("train", input_records)):
        path = folder / f"{split}.json"
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")
        dataset_import(path_or_file=path, dataset_name=DATASET, split=split)
    return DATASET


def make_campaign(dataset_name: str, annotators, *, creator=None) -> Campaign:
    from annotation.models import Dataset

    campaign = Campaign.objects.create(
        name="Dev set, round 1: fine-grained feedback and comparisons",
        dataset=Dataset.objects.get(name=dataset_name),
        split="dev",
        task=CampaignTask.BOTH,
        annotators_per_item=2,
        created_by=creator,
    )
    campaign.annotators.set(annotators)
    return campaign


def make_rm_build(dataset_name: str, *, user=None) -> RmDataBuild:
    """A finished reward-model build, run in this process as the worker's task would."""
    from annotation.models import Dataset

    build = RmDataBuild.objects.create(dataset=Dataset.objects.get(name=dataset_name), split="dev", splitter="sentencizer", created_by=user)
    build.out_dir = str(rm_data_build_dir(build))
    build.save(update_fields=["out_dir"])
    return rm_data_build_run(build_id=build.pk)


def make_run(kind: str, *, name: str, user=None, dataset_name: str | None = None, status: str = RunStatus.RUNNING,
             total: int = 20, events: list[dict] | None = None) -> TrainingRun:
    """A run as a worker leaves it: claimed, started, with the events the trainer reported."""
    from annotation.models import Dataset

    dataset = Dataset.objects.get(name=dataset_name) if dataset_name else None
    config = dataclasses.asdict(build_config(kind, preset="tiny"))
    run = TrainingRun.objects.create(
        name=name, kind=kind, dataset=dataset, train_split="train" if dataset else "", eval_split="dev" if dataset else "",
        created_by=user, config=config,
    )
    run.output_dir = f"runs/{run.pk}-{kind}"
    run.save(update_fields=["output_dir"])
    run = supervisor.run_claim(run_id=run.pk, host="gpu-node-1")
    supervisor.run_mark_started(run=run, pid=4242)
    supervisor.run_record_events(run=run, events=[{"event": "start", "total_steps": total, "wandb_dir": f"/tmp/wandb/offline-run-{run.pk}", "wandb_url": ""}])
    supervisor.run_record_events(run=run, events=events or [])
    supervisor.run_heartbeat(run=run, log_tail="step 1 loss 2.31\nstep 2 loss 2.05")
    if status != RunStatus.RUNNING:
        supervisor.run_finish(run=run, status=status, error="Cancelled by a user." if status == RunStatus.CANCELLED else "")
    run.refresh_from_db()
    return run


def sft_events(*, steps: int = 12) -> list[dict]:
    """Training curves over `steps` steps and one evaluation: the eval charts have a single point."""
    events: list[dict] = [{"event": "progress", "step": steps, "total": 20}]
    for step in range(1, steps + 1):
        events.append({"event": "metrics", "step": step, "metrics": {"train/loss": 2.5 / step, "train/lr": 1e-4 * step / steps}})
    events.append({"event": "metrics", "step": steps, "metrics": {"eval/rouge_lsum": 0.312, "eval/loss": 1.84}})
    text = "Bloom was released on 31 August 2018 by EMI Australia and Capitol Records."
    events.append({"event": "sample", "step": steps, "prompt": "question: When was the album Bloom by Troye Sivan released? context: ...",
                   "text": text, "segments": [{"text": text, "reward": None, "label": ""}], "total_reward": None})
    return events


def ppo_events() -> list[dict]:
    """Step 1 of a PPO run: every chart has one point."""
    segments = [
        {"text": "Bloom was released on 31 August 2018.", "reward": 0.4, "label": "O"},
        {"text": " It sold ten million copies in its first week.", "reward": -0.7, "label": "F-ERR"},
    ]
    return [
        {"event": "progress", "step": 1, "total": 20},
        {"event": "metrics", "step": 1, "metrics": {
            "train/policy_loss": 0.12, "train/value_loss": 0.41, "reward/mean": -0.3, "reward/kl": 0.002,
            "reward/relevance": 0.1, "reward/factuality": -0.4, "reward/completeness": 0.05, "eval/mean_reward": -0.25,
        }},
        {"event": "sample", "step": 1, "prompt": "question: When was the album Bloom by Troye Sivan released? context: ...",
         "text": "".join(s["text"] for s in segments), "segments": segments, "total_reward": -0.3},
    ]


def seed_researcher_pages(qa_feedback_dir: Path, folder: Path, *, researcher, annotators) -> dict:
    """Everything a researcher's pages show, with long names and real shared examples."""
    dataset_name = import_shared_slice(qa_feedback_dir, folder)
    campaign = make_campaign(dataset_name, annotators, creator=researcher)
    build = make_rm_build(dataset_name, user=researcher)
    sft = make_run("sft", name="sft-t5-small-qa-feedback-dev-baseline", user=researcher, dataset_name=dataset_name, events=sft_events())
    ppo = make_run("ppo_fine_grained", name="ppo-fine-grained-relevance-factuality-completeness", user=researcher,
                   dataset_name=dataset_name, events=ppo_events())
    # A started run that never reports metrics, and a cancelled one, so the list shows every kind of row.
    make_run("rm_relevance", name="r1-relevance", user=researcher, dataset_name=dataset_name, status=RunStatus.CANCELLED)
    return {"dataset": dataset_name, "campaign": campaign, "build": build, "sft": sft, "ppo": ppo}
