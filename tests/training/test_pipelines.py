"""Pipelines: the registry, policy inputs derived from feedback, orchestration (prerequisites, reuse, cancel,
resume, the advance after a run finishes), and `run_pipeline --wait --json`.

Runs are executed in this process as the worker would (supervisor.run_execute) with the stand-in trainer
(fake_trainer.py), so the orchestration is exercised through real runs, files and statuses in seconds;
test_pipeline_e2e.py runs the real trainers under a real worker.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import Dataset
from annotation.qa import format as qa_format
from tests.training.run_fixtures import fake_trainer  # noqa: F401
from training import pipelines, supervisor
from training.ml.configs import ConfigError
from training.models import Pipeline, RunStatus, TrainingRun
from training.pipeline_selectors import pipeline_report, pipeline_stages
from training.pipeline_services import pipeline_advance, pipeline_cancel, pipeline_create, pipeline_resume


def _squash(text: str) -> str:
    return "".join(text.split())


# ---------------------------------------------------------------- the registry


def test_registry_orders_stages_and_rejects_malformed_specs():
    spec = pipelines.get("fine_grained")
    assert [s.kind for s in spec.stages] == ["sft", "rm_relevance", "rm_factuality", "rm_completeness", "ppo_fine_grained"]
    assert [[s.name for s in level] for level in spec.levels()] == [["sft", "r1", "r2", "r3"], ["ppo"]]
    compare = pipelines.get("compare")
    assert {s.kind for s in compare.stages} >= {"ppo_fine_grained", "ppo_holistic", "rm_preference"}
    # Both PPO variants get the same budget.
    assert compare.stage("ppo_fine_grained").overrides == compare.stage("ppo_holistic").overrides
    with pytest.raises(ConfigError) as caught:
        pipelines.register(pipelines.PipelineSpec(
            name="broken", label="Broken", description="",
            stages=(pipelines.Stage("ppo", "ppo_holistic", after=("sft",), models={"policy_model": "sft"}),),
        ))
    assert "comes after 'sft', which is not an earlier stage" in str(caught.value)
    assert "broken" not in pipelines.PIPELINES
    with pytest.raises(ConfigError, match="unknown pipeline 'nope'"):
        pipelines.get("nope")


def test_parse_set_reads_stage_key_values_as_yaml():
    assert pipelines.parse_set(["ppo.total_episodes=128", "sft.learning_rate=1e-4", "r1.max_length=256"]) == {
        "ppo": {"total_episodes": 128}, "sft": {"learning_rate": 1e-4}, "r1": {"max_length": 256}}
    with pytest.raises(ConfigError, match="is not STAGE.KEY=VALUE"):
        pipelines.parse_set(["total_episodes=3"])


# ---------------------------------------------------------------- policy inputs derived from feedback


def test_derived_policy_inputs_match_the_inputs_file_for_the_shared_questions(qa_feedback_dir):
    inputs = {r["question"]: r for r in json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))}
    feedback = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))
    exact = 0
    for record in feedback:
        derived = qa_format.input_record_from_feedback(question=record["question"], passages=record["passages"], gold=record["gold"])
        expected = qa_format.canonical(inputs[record["question"]], qa_format.INPUTS)
        assert list(derived) == list(expected)  # keys in the file's order
        assert [list(p) for p in derived["passages"]] == [list(p) for p in expected["passages"]]
        assert [p["wikipage"] for p in derived["passages"]] == [p["wikipage"] for p in expected["passages"]]
        # Everything but whitespace is always the same; the feedback file's sentences lose some whitespace.
        assert _squash(derived["text"]) == _squash(expected["text"])
        assert [_squash(a) for a in derived["answer"]] == [_squash(a) for a in expected["answer"]]
        if json.dumps(derived) == json.dumps(expected):
            exact += 1
            assert derived["text"].startswith(f"question: {record['question']} context: ")
    # Byte-exact wherever the sentences kept the passage's whitespace: 461 of the 500 shared questions.
    assert exact >= 0.9 * len(feedback)


def _import(tmp_path, qa_feedback_dir, *, fmt_file: str, name: str, splits: dict[str, slice]) -> Dataset:
    from annotation.services.datasets import dataset_import

    records = json.loads((qa_feedback_dir / fmt_file).read_text(encoding="utf-8"))
    for split, part in splits.items():
        path = tmp_path / f"{name}-{split}-{fmt_file}"
        path.write_text(json.dumps(records[part]), encoding="utf-8")
        dataset_import(path_or_file=path, dataset_name=name, split=split)
    return Dataset.objects.get(name=name)


@pytest.mark.django_db
def test_a_feedback_only_split_exports_derived_policy_inputs_and_a_split_with_both_uses_its_inputs_file(tmp_path, qa_feedback_dir):
    from annotation.selectors.policy_inputs import FROM_FEEDBACK, FROM_INPUTS
    from annotation.services.policy_inputs import policy_inputs_export

    dataset = _import(tmp_path, qa_feedback_dir, fmt_file="dev_feedback.json", name="fb", splits={"train": slice(0, 12)})
    out = tmp_path / "train.json"
    assert policy_inputs_export(dataset=dataset, split="train", out=out) == FROM_FEEDBACK
    written = json.loads(out.read_text(encoding="utf-8"))
    feedback = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:12]
    assert written == [qa_format.input_record_from_feedback(question=r["question"], passages=r["passages"], gold=r["gold"]) for r in feedback]
    # Exactly the bytes an inputs-format export of those records would have.
    assert out.read_text(encoding="utf-8") == "".join(qa_format.iter_dump(written, fmt=qa_format.INPUTS))

    # Importing the inputs file for the same questions: the split now exports that file, as imported.
    inputs = json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))
    by_question = {r["question"]: r for r in inputs}
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps([by_question[r["question"]] for r in feedback]), encoding="utf-8")
    from annotation.services.datasets import dataset_import

    dataset_import(path_or_file=path, dataset_name="fb", split="train")
    assert policy_inputs_export(dataset=dataset, split="train", out=out) == FROM_INPUTS
    assert json.loads(out.read_text(encoding="utf-8")) == [by_question[r["question"]] for r in feedback]


# ---------------------------------------------------------------- orchestration


@pytest.fixture
def feedback_dataset(db, tmp_path, qa_feedback_dir):
    """A dataset holding only the feedback format: 12 training and 4 eval examples."""
    return _import(tmp_path, qa_feedback_dir, fmt_file="dev_feedback.json", name="qa",
                   splits={"train": slice(0, 12), "dev": slice(12, 16)})


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent to the broker, captured (the tests execute the runs themselves, as a worker would)."""
    from config.celery import app

    captured: list[tuple[str, list]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: captured.append((name, list(args or []))))
    return captured


def _queued() -> list[TrainingRun]:
    return list(TrainingRun.objects.filter(status=RunStatus.QUEUED).order_by("pk"))


def _drive(pipeline: Pipeline, *, crash_stage: str | None = None, fake=None) -> Pipeline:
    """Execute queued runs one by one (the fake trainer crashes on `crash_stage`) until the pipeline ends."""
    for _ in range(20):
        pipeline.refresh_from_db()
        if pipeline.is_finished:
            return pipeline
        for run in _queued():
            fake("crash" if run.pipeline_stage == crash_stage else "ok", steps=3)
            supervisor.run_execute(run_id=run.pk)
        pipeline_advance(pipeline_id=pipeline.pk)
    raise AssertionError(f"pipeline did not end: {pipeline_report(pipeline)}")


@pytest.mark.django_db(transaction=True)
def test_fine_grained_pipeline_on_feedback_alone_runs_its_stages_in_order(feedback_dataset, fake_trainer, sent):
    pipeline = pipeline_create(name="fine_grained", dataset=feedback_dataset, train_split="train", eval_split="dev")
    # The four independent stages start at once; PPO waits for them.
    assert sorted(run.pipeline_stage for run in _queued()) == ["r1", "r2", "r3", "sft"]
    assert {name for name, _ in sent} == {"training.run_training"}
    columns = pipeline_stages(pipeline)
    ppo = columns[1][0]
    assert ppo.run is None and ppo.status == "waiting" and ppo.waiting_for == ["sft", "r1", "r2", "r3"]

    pipeline = _drive(pipeline, fake=fake_trainer)
    assert pipeline.status == RunStatus.SUCCEEDED, pipeline.error
    report = pipeline_report(pipeline)
    assert [(r["stage"], r["kind"], r["status"]) for r in report["runs"]] == [
        ("sft", "sft", "succeeded"), ("r1", "rm_relevance", "succeeded"), ("r2", "rm_factuality", "succeeded"),
        ("r3", "rm_completeness", "succeeded"), ("ppo", "ppo_fine_grained", "succeeded")]
    ppo_run = TrainingRun.objects.get(pk=report["runs"][-1]["id"])
    sft_run = TrainingRun.objects.get(pk=report["runs"][0]["id"])
    r2_run = TrainingRun.objects.get(pk=report["runs"][2]["id"])
    # PPO's models are the earlier stages' saved models; its prompts were derived from the feedback.
    assert ppo_run.config["policy_model"].startswith(str(Path(sft_run.output_dir))) or sft_run.output_dir in ppo_run.config["policy_model"]
    assert r2_run.output_dir in ppo_run.config["rm_factuality_model"]
    prompts = json.loads(Path(ppo_run.config["train_file"]).read_text(encoding="utf-8"))
    assert len(prompts) == 12 and prompts[0]["text"].startswith("question: ")
    # The tiny pipeline preset sized the stages on top of the kind's tiny preset.
    assert sft_run.config["max_train_examples"] == pipelines.TINY_SFT["max_train_examples"]
    assert ppo_run.config["total_episodes"] == pipelines.TINY_PPO["total_episodes"]


@pytest.mark.django_db(transaction=True)
def test_a_finished_run_advances_its_pipeline_through_the_worker_task(feedback_dataset, fake_trainer, sent):
    pipeline = pipeline_create(name="holistic", dataset=feedback_dataset, train_split="train", eval_split="dev")
    for run in _queued():
        supervisor.run_execute(run_id=run.pk)
    # Each run's finish asked for an advance, by name, on the pipeline queue.
    assert sent.count(("training.advance_pipeline", [pipeline.pk])) == 2
    from config.celery import app

    app.loader.import_default_modules()
    app.tasks["training.advance_pipeline"].apply(args=[pipeline.pk])
    assert [run.pipeline_stage for run in _queued()] == ["ppo"]
    # The beat ticker does the same for pipelines a lost message would leave behind (and is scheduled).
    assert app.conf.beat_schedule["tick-pipelines"]["task"] == "training.tick_pipelines"
    assert app.tasks["training.tick_pipelines"].apply().get() == [pipeline.pk]


@pytest.mark.django_db
def test_prerequisites_are_checked_with_messages_naming_the_stage(tmp_path, qa_feedback_dir, sent):
    policy_only = _import(tmp_path, qa_feedback_dir, fmt_file="dev.json", name="prompts", splits={"train": slice(0, 8)})
    with pytest.raises(ConfigError) as caught:
        pipeline_create(name="fine_grained", dataset=policy_only, train_split="train", eval_split="")
    problems = dict(caught.value.problems)
    # SFT and PPO can train on prompts; the reward models need feedback, and each is named.
    assert set(problems) == {"r1.train_split", "r2.train_split", "r3.train_split"}
    assert problems["r1.train_split"].startswith("stage r1 (R1 relevance): prompts/train holds no examples in the feedback")
    with pytest.raises(ConfigError) as caught:
        pipeline_create(name="fine_grained", dataset=policy_only, train_split="nope", eval_split="",
                        overrides={"ppo": {"policy_model": "x", "total_episodes": "many"}, "rm": {"epochs": 1}})
    messages = " | ".join(m for _, m in caught.value.problems)
    assert "stage sft (SFT policy): dataset prompts has no split 'nope'" in messages
    assert "pipeline fine_grained has no stage 'rm'" in messages
    assert "stage ppo: policy_model is filled from stage sft's model; it cannot be set" in messages
    assert "stage ppo (Fine-grained PPO)" in messages and "total_episodes" in dict(caught.value.problems).keys().__str__()
    assert not Pipeline.objects.exists() and not TrainingRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_finished_stages_with_equal_inputs_and_config_are_reused(feedback_dataset, fake_trainer, sent, researcher_client):
    first = _drive(pipeline_create(name="holistic", dataset=feedback_dataset, train_split="train", eval_split="dev"), fake=fake_trainer)
    assert first.status == RunStatus.SUCCEEDED
    runs_before = TrainingRun.objects.count()
    # Same dataset split, same settings except PPO's budget: SFT and the RM are reused, PPO trains again.
    second = pipeline_create(name="holistic", dataset=feedback_dataset, train_split="train", eval_split="dev",
                             overrides={"ppo": {"total_episodes": 32}})
    assert second.stages["sft"] == {"run": first.stages["sft"]["run"], "reused": True}
    assert second.stages["rm"] == {"run": first.stages["rm"]["run"], "reused": True}
    assert second.stages["ppo"]["reused"] is False and second.stages["ppo"]["run"] != first.stages["ppo"]["run"]
    assert TrainingRun.objects.count() == runs_before + 1
    page = researcher_client.get(f"/training/pipelines/{second.pk}/").content.decode()
    assert f"Reused run #{first.stages['sft']['run']}" in page
    # A stage's run page leads back to the pipeline that started it.
    run_page = researcher_client.get(f"/training/runs/{second.stages['ppo']['run']}/").content.decode()
    assert f'href="/training/pipelines/{second.pk}/">Stage ppo of pipeline #{second.pk}</a>' in run_page
    # A different setting of SFT is not reused, and neither is anything with reuse off.
    third = pipeline_create(name="holistic", dataset=feedback_dataset, train_split="train", eval_split="dev",
                            overrides={"sft": {"epochs": 3}})
    assert third.stages["sft"]["reused"] is False and third.stages["rm"]["reused"] is True
    fourth = pipeline_create(name="holistic", dataset=feedback_dataset, train_split="train", eval_split="dev", reuse=False)
    assert not any(entry["reused"] for entry in fourth.stages.values())


@pytest.mark.django_db(transaction=True)
def test_a_failed_stage_fails_the_pipeline_and_resume_reuses_finished_stages(feedback_dataset, fake_trainer, sent):
    pipeline = _drive(pipeline_create(name="fine_grained", dataset=feedback_dataset, train_split="train", eval_split="dev"),
                      crash_stage="r2", fake=fake_trainer)
    assert pipeline.status == RunStatus.FAILED
    assert pipeline.error.startswith(f"stage r2 (run #{pipeline.stages['r2']['run']}) failed")
    assert "ppo" not in pipeline.stages  # nothing starts after a failure
    finished = {stage: entry["run"] for stage, entry in pipeline.stages.items() if stage != "r2"}

    pipeline = pipeline_resume(pipeline=pipeline)
    assert pipeline.status == RunStatus.RUNNING
    resumed = TrainingRun.objects.get(pk=pipeline.stages["r2"]["run"])
    assert resumed.resumed_from_id is not None and resumed.pipeline_id == pipeline.pk
    assert [run.pipeline_stage for run in _queued()] == ["r2"]
    pipeline = _drive(pipeline, fake=fake_trainer)
    assert pipeline.status == RunStatus.SUCCEEDED
    # The finished stages were kept, not trained again.
    assert {stage: pipeline.stages[stage]["run"] for stage in finished} == finished
    assert TrainingRun.objects.filter(pipeline=pipeline, pipeline_stage="sft").count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_running_stages_and_starts_no_more(feedback_dataset, fake_trainer, sent):
    pipeline = pipeline_create(name="holistic", dataset=feedback_dataset, train_split="train", eval_split="dev")
    assert pipeline_cancel(pipeline=pipeline) is True
    pipeline.refresh_from_db()
    assert pipeline.status == RunStatus.CANCELLED
    assert set(TrainingRun.objects.filter(pipeline=pipeline).values_list("status", flat=True)) == {RunStatus.CANCELLED}
    assert pipeline_cancel(pipeline=pipeline) is False
    pipeline = pipeline_resume(pipeline=pipeline)
    assert sorted(run.pipeline_stage for run in _queued()) == ["rm", "sft"]


@pytest.mark.django_db(transaction=True)
def test_run_pipeline_wait_json_prints_the_runs_and_exits_by_status(feedback_dataset, fake_trainer, sent, monkeypatch):
    from training.management.commands import run_pipeline

    def execute_queued(*, pipeline_id):
        for run in _queued():
            supervisor.run_execute(run_id=run.pk)
        return pipeline_advance(pipeline_id=pipeline_id)

    # The command advances as it follows; here that also plays the worker.
    monkeypatch.setattr(run_pipeline, "pipeline_advance", execute_queued)
    monkeypatch.setattr(run_pipeline, "POLL_S", 0)
    out = StringIO()
    call_command("run_pipeline", "holistic", "--dataset", "qa", "--train-split", "train", "--eval-split", "dev",
                 "--preset", "tiny", "--set", "ppo.total_episodes=16", "--wait", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(report) >= {"pipeline", "status", "runs"} and report["status"] == "succeeded"
    assert [r["kind"] for r in report["runs"]] == ["sft", "rm_preference", "ppo_holistic"]
    assert all(set(r) >= {"id", "kind", "status", "summary"} and r["status"] == "succeeded" for r in report["runs"])
    assert report["runs"][0]["summary"] == TrainingRun.objects.get(pk=report["runs"][0]["id"]).summary != {}
    assert TrainingRun.objects.get(pk=report["runs"][2]["id"]).config["total_episodes"] == 16

    fake_trainer("crash")
    monkeypatch.setattr(run_pipeline, "pipeline_advance", lambda *, pipeline_id: execute_queued(pipeline_id=pipeline_id))
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("run_pipeline", "holistic", "--dataset", "qa", "--no-reuse", "--wait", "--json", stdout=out)
    assert exited.value.code == 1
    assert json.loads(out.getvalue())["status"] == "failed"


def test_run_pipeline_warns_on_stderr_when_the_eval_split_is_the_train_split(feedback_dataset, sent):
    out, err = StringIO(), StringIO()
    call_command("run_pipeline", "holistic", "--dataset", "qa", "--train-split", "train", "--eval-split", "train",
                 "--preset", "tiny", "--json", stdout=out, stderr=err)
    assert "the eval split is the train split (train)" in err.getvalue()
    assert json.loads(out.getvalue())["status"]  # stdout stays one JSON document
    err = StringIO()
    call_command("run_pipeline", "holistic", "--dataset", "qa", "--train-split", "train", "--eval-split", "dev",
                 "--preset", "tiny", "--no-reuse", "--json", stdout=StringIO(), stderr=err)
    assert "eval split" not in err.getvalue()
