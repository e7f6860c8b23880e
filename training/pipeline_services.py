"""The researcher's writes for pipelines: create, advance, cancel, resume.

A pipeline's state lives in its row (training.models.Pipeline): which run
each stage has, whether it was reused, and the pipeline's status. Nothing is
kept in the broker, so a worker restart loses nothing: `pipeline_advance`
reads the runs' statuses and starts whatever is due. It is called when a run
of a pipeline finishes (the worker sends `training.advance_pipeline` by name
after the run's last word), every TRAINING_REAP_INTERVAL_S by celery beat
(`training.tick_pipelines`), and by `run_pipeline --wait` as it follows one;
it takes a row lock, so concurrent calls start each stage once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.qa.errors import Conflict
from config.celery import app as celery_app
from training import inputs, kinds, pipelines, services
from training.ml.configs import ConfigError
from training.models import FINISHED_STATUSES, Pipeline, RunStatus, TrainingRun
from training.selectors import run_model_path

ADVANCE_TASK = "training.advance_pipeline"
TICK_TASK = "training.tick_pipelines"
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


# Problems about the data rather than a setting: their message names what is wrong already.
_DATA_FIELDS = ("dataset", "train_split", "eval_split")


def _problems_for_stage(spec: pipelines.PipelineSpec, stage: pipelines.Stage, exc: ConfigError) -> list[tuple[str, str]]:
    """The problems of one stage, each field prefixed with the stage (`ppo.total_episodes`) and each message
    naming the stage (and the setting, for a setting)."""
    return [
        (f"{stage.name}.{field}",
         f"stage {stage.name} ({stage.title}): {message}" if field in _DATA_FIELDS
         else f"stage {stage.name} ({stage.title}): {field}: {message}")
        for field, message in exc.problems
    ]


def check_pipeline(
    *, spec: pipelines.PipelineSpec, dataset, train_split: str, eval_split: str, preset: str,
    overrides: Mapping[str, Mapping[str, Any]],
) -> None:
    """Refuse a pipeline that cannot run, naming the stage and the setting: a split without the data a stage
    trains on, an unknown stage or setting in the overrides, a model setting the pipeline fills itself."""
    problems: list[tuple[str, str]] = []
    if dataset is None:
        raise ConfigError([("dataset", "choose a dataset: a pipeline trains every stage on the same dataset split")])
    if preset not in spec.presets:
        raise ConfigError([("preset", f"pipeline {spec.name} has no preset {preset!r}; available: {', '.join(spec.presets)}")])
    for stage_name in overrides:
        if stage_name not in spec.stage_names():
            problems.append(("set", f"pipeline {spec.name} has no stage {stage_name!r}; its stages: {', '.join(spec.stage_names())}"))
    for stage in spec.stages:
        try:
            inputs.check_sources(kind=stage.kind, dataset=dataset, train_split=train_split, eval_split=eval_split, uploads={})
        except ConfigError as exc:
            problems += _problems_for_stage(spec, stage, exc)
        extra = dict(overrides.get(stage.name, {}))
        for field_name in extra:
            if field_name in stage.models:
                problems.append((f"{stage.name}.{field_name}", f"stage {stage.name}: {field_name} is filled from stage "
                                 f"{stage.models[field_name]}'s model; it cannot be set"))
        try:
            settings_ = spec.stage_settings(preset, stage, {k: v for k, v in extra.items() if k not in stage.models})
            kinds.build_config(stage.kind, preset=spec.kind_preset(preset, stage), overrides=settings_)
        except ConfigError as exc:
            problems += _problems_for_stage(spec, stage, exc)
    if problems:
        # One problem per (field, message): the split checks repeat for stages of the same kind of data.
        raise ConfigError(list(dict.fromkeys(problems)))


def pipeline_create(
    *, name: str, dataset, train_split: str, eval_split: str = "", preset: str = "tiny",
    overrides: Mapping[str, Mapping[str, Any]] | None = None, user=None, reuse: bool = True,
) -> Pipeline:
    """Check and store a pipeline, then start its first stages (their runs are queued after commit).

    Raises ConfigError naming each stage that cannot run and why.
    """
    spec = pipelines.get(name)
    train_split, eval_split = train_split.strip(), eval_split.strip()
    overrides = {stage: dict(values) for stage, values in (overrides or {}).items()}
    check_pipeline(spec=spec, dataset=dataset, train_split=train_split, eval_split=eval_split, preset=preset, overrides=overrides)
    with transaction.atomic():
        pipeline = Pipeline.objects.create(
            name=name, dataset=dataset, train_split=train_split, eval_split=eval_split, preset=preset,
            overrides=overrides, reuse=reuse, status=RunStatus.RUNNING,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        _advance_locked(pipeline)
    return pipeline


def stage_runs(pipeline: Pipeline) -> dict[str, TrainingRun]:
    """Each started stage's current run (a resumed run stands for the run it resumed)."""
    ids = {stage: entry["run"] for stage, entry in pipeline.stages.items()}
    runs = TrainingRun.objects.in_bulk(ids.values())
    return {stage: runs[run_id] for stage, run_id in ids.items() if run_id in runs}


def _follow_resumes(pipeline: Pipeline) -> bool:
    """Point stages whose run was resumed (from the run page, or by pipeline_resume) at the resume."""
    changed = False
    for stage, entry in pipeline.stages.items():
        run_id = entry["run"]
        while True:
            newer = TrainingRun.objects.filter(resumed_from_id=run_id).values_list("pk", flat=True).first()
            if newer is None:
                break
            run_id = newer
        if run_id != entry["run"]:
            pipeline.stages[stage] = {**entry, "run": run_id, "reused": False}
            changed = True
    return changed


def pipeline_advance(*, pipeline_id: int) -> Pipeline | None:
    """Start every stage whose prerequisites have succeeded, and settle the pipeline's status; idempotent."""
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().filter(pk=pipeline_id).first()
        if pipeline is None:
            return None
        if not pipeline.is_finished:
            _advance_locked(pipeline)
    return pipeline


def _advance_locked(pipeline: Pipeline) -> None:
    spec = pipelines.get(pipeline.name)
    _follow_resumes(pipeline)
    runs = stage_runs(pipeline)
    active = [run for run in runs.values() if run.status not in FINISHED_STATUSES]
    broken = {stage: run for stage, run in runs.items() if run.status in FAILED_STATUSES}
    if pipeline.cancel_requested:
        for run in active:
            services.run_cancel(run=run)
        runs = stage_runs(pipeline)
        active = [run for run in runs.values() if run.status not in FINISHED_STATUSES]
    elif not broken:
        for stage in spec.stages:
            if stage.name in pipeline.stages or not all(
                stage_name in runs and runs[stage_name].status == RunStatus.SUCCEEDED for stage_name in stage.after
            ):
                continue
            try:
                run, reused = _start_stage(pipeline, spec, stage, runs)
            except ConfigError as exc:
                pipeline.error = "; ".join(message for _, message in _problems_for_stage(spec, stage, exc))
                break
            pipeline.stages[stage.name] = {"run": run.pk, "reused": reused}
            runs[stage.name] = run
            if not run.is_finished:
                active.append(run)
    fields = ["stages", "error"]
    if not active:
        fields += _settle(pipeline, spec, runs)
    pipeline.save(update_fields=fields)


def _settle(pipeline: Pipeline, spec: pipelines.PipelineSpec, runs: Mapping[str, TrainingRun]) -> list[str]:
    """The pipeline's final status once none of its runs is going; the fields changed ([] if it goes on)."""
    broken = [stage for stage in spec.stage_names() if stage in runs and runs[stage].status in FAILED_STATUSES]
    if pipeline.cancel_requested:
        pipeline.status = RunStatus.CANCELLED
        pipeline.error = "Cancelled by a user." + (f" Stopped: {', '.join(broken)}." if broken else "")
    elif broken:
        pipeline.status = RunStatus.FAILED
        pipeline.error = "; ".join(f"stage {stage} (run #{runs[stage].pk}) {runs[stage].status}: "
                                   f"{runs[stage].error or 'no error recorded'}" for stage in broken)
    elif pipeline.error:
        pipeline.status = RunStatus.FAILED  # a stage could not even be created (its error says why)
    elif all(stage in runs and runs[stage].status == RunStatus.SUCCEEDED for stage in spec.stage_names()):
        pipeline.status = RunStatus.SUCCEEDED
    else:
        return []
    pipeline.finished_at = timezone.now()
    return ["status", "finished_at", "error"]


def _stage_overrides(pipeline: Pipeline, spec: pipelines.PipelineSpec, stage: pipelines.Stage,
                     runs: Mapping[str, TrainingRun]) -> dict[str, Any]:
    values = spec.stage_settings(pipeline.preset, stage, pipeline.overrides.get(stage.name, {}))
    for field_name, source in stage.models.items():
        path = run_model_path(runs[source])
        if path is None:
            raise ConfigError([(field_name, f"stage {source}'s run #{runs[source].pk} saved no model to fill {field_name}")])
        values[field_name] = str(path)
    return values


def _start_stage(pipeline: Pipeline, spec: pipelines.PipelineSpec, stage: pipelines.Stage,
                 runs: Mapping[str, TrainingRun]) -> tuple[TrainingRun, bool]:
    """The stage's run: a finished run with the same inputs and config when reuse is on, else a new one."""
    preset = spec.kind_preset(pipeline.preset, stage)
    overrides = _stage_overrides(pipeline, spec, stage, runs)
    if pipeline.reuse:
        twin = reusable_run(pipeline=pipeline, kind=stage.kind, preset=preset, overrides=overrides)
        if twin is not None:
            return twin, True
    run = services.run_create(
        kind=stage.kind, user=pipeline.created_by, dataset=pipeline.dataset, train_split=pipeline.train_split,
        eval_split=pipeline.eval_split, preset=preset, overrides=overrides,
        name=f"{spec.label} #{pipeline.pk}: {stage.title}",
    )
    TrainingRun.objects.filter(pk=run.pk).update(pipeline=pipeline, pipeline_stage=stage.name)
    run.pipeline, run.pipeline_stage = pipeline, stage.name
    return run, False


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config without its input file paths (they name the run's own folder)."""
    return {key: value for key, value in config.items() if key not in inputs.DATA_FIELDS.values()}


def reusable_run(*, pipeline: Pipeline, kind: str, preset: str, overrides: Mapping[str, Any]) -> TrainingRun | None:
    """A succeeded run of `kind` on the pipeline's dataset and splits whose config equals the one this stage
    would train with (input paths aside) and whose model is still there; the newest, or None."""
    wanted = _comparable(inputs.resolve_config(
        kind=kind, preset=preset, overrides=overrides, output_dir=Path(settings.MODEL_ROOT) / "runs" / "pending",
        from_dataset=True, train_split=pipeline.train_split, eval_split=pipeline.eval_split,
    ))
    candidates = TrainingRun.objects.filter(
        kind=kind, dataset=pipeline.dataset, train_split=pipeline.train_split, eval_split=pipeline.eval_split,
        status=RunStatus.SUCCEEDED,
    ).order_by("-finished_at", "-pk")
    for run in candidates[:50]:
        if _comparable(run.config) == wanted and run_model_path(run) is not None:
            return run
    return None


def pipeline_cancel(*, pipeline: Pipeline) -> bool:
    """Stop every running stage and start no more; False when the pipeline had already finished."""
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
        if pipeline.is_finished:
            return False
        pipeline.cancel_requested = True
        pipeline.save(update_fields=["cancel_requested"])
        _advance_locked(pipeline)
    return True


def pipeline_resume(*, pipeline: Pipeline, user=None) -> Pipeline:
    """Go on with a failed or cancelled pipeline: failed or cancelled stages are resumed from their last
    checkpoint (services.run_resume), finished ones are kept, stages not started yet start when due."""
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
        if pipeline.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise Conflict(f"only failed or cancelled pipelines can be resumed; this one is {pipeline.status}", field="status")
        for stage, run in stage_runs(pipeline).items():
            if run.status in FAILED_STATUSES:
                again = services.run_resume(run=run, user=user)
                TrainingRun.objects.filter(pk=again.pk).update(pipeline=pipeline, pipeline_stage=stage)
                pipeline.stages[stage] = {"run": again.pk, "reused": False}
        pipeline.status = RunStatus.RUNNING
        pipeline.cancel_requested = False
        pipeline.error = ""
        pipeline.finished_at = None
        pipeline.save(update_fields=["stages", "status", "cancel_requested", "error", "finished_at"])
        _advance_locked(pipeline)
    return pipeline


def pipelines_tick() -> list[int]:
    """Advance every pipeline that is still going (celery beat's periodic call); their ids."""
    ids = list(Pipeline.objects.exclude(status__in=FINISHED_STATUSES).values_list("pk", flat=True))
    for pipeline_id in ids:
        pipeline_advance(pipeline_id=pipeline_id)
    return ids


def request_advance(*, pipeline_id: int) -> None:
    """Ask a worker to advance the pipeline once the current transaction commits (sent by name)."""

    def send() -> None:
        if celery_app.conf.task_always_eager:
            celery_app.loader.import_default_modules()
            celery_app.tasks[ADVANCE_TASK].apply(args=[pipeline_id])
            return
        celery_app.send_task(ADVANCE_TASK, args=[pipeline_id], queue=settings.TRAINING_PIPELINE_QUEUE)

    transaction.on_commit(send)
