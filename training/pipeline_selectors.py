"""Reads for pipelines: their stages with status and progress, the `--json` report, the side-by-side evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Max, Min, QuerySet

from training import pipelines, task_registry
from training.models import Pipeline, RunMetric, RunSample, RunStatus, TrainingRun
from training.selectors import run_progress_percent

# What the evaluation compares, in the order the table shows it: the pipeline's task's headline figures.
EVAL_COLUMNS = task_registry.eval_columns(task_registry.DEFAULT_TASK)


def pipelines_list(*, limit: int = 50) -> QuerySet[Pipeline]:
    return Pipeline.objects.select_related("dataset")[:limit]


def pipeline_get(*, pipeline_id: int) -> Pipeline:
    from annotation.qa.errors import NotFound

    pipeline = Pipeline.objects.select_related("dataset").filter(pk=pipeline_id).first()
    if pipeline is None:
        raise NotFound(f"no pipeline #{pipeline_id}")
    return pipeline


def _runs(pipeline: Pipeline) -> dict[str, TrainingRun]:
    ids = {stage: entry["run"] for stage, entry in pipeline.stages.items()}
    runs = TrainingRun.objects.in_bulk(ids.values())
    return {stage: runs[run_id] for stage, run_id in ids.items() if run_id in runs}


@dataclass
class StageView:
    stage: pipelines.Stage
    run: TrainingRun | None
    reused: bool
    percent: int
    waiting_for: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.run.status if self.run is not None else "waiting"


def pipeline_stages(pipeline: Pipeline) -> list[list[StageView]]:
    """The stages in rounds (columns of the page's graph), each with its run, status and progress."""
    spec = pipelines.get(pipeline.name)
    runs = _runs(pipeline)
    columns = []
    for level in spec.levels():
        column = []
        for stage in level:
            run = runs.get(stage.name)
            waiting = [a for a in stage.after if a not in runs or runs[a].status != RunStatus.SUCCEEDED]
            column.append(StageView(stage=stage, run=run, reused=bool(pipeline.stages.get(stage.name, {}).get("reused")),
                                    percent=run_progress_percent(run) if run is not None else 0, waiting_for=waiting))
        columns.append(column)
    return columns


def pipeline_progress(pipeline: Pipeline) -> int:
    """Percent of the pipeline done: its stages' progress, each stage counting the same."""
    spec = pipelines.get(pipeline.name)
    runs = _runs(pipeline)
    done = sum(100 if runs[s].status == RunStatus.SUCCEEDED else run_progress_percent(runs[s]) for s in runs)
    return round(done / max(1, len(spec.stages)))


def pipeline_report(pipeline: Pipeline) -> dict:
    """`run_pipeline --json`: the pipeline, its status and its runs (kind, status, summary) in stage order."""
    spec = pipelines.get(pipeline.name)
    runs = _runs(pipeline)
    return {
        "pipeline": pipeline.pk,
        "name": pipeline.name,
        "status": pipeline.status,
        "error": pipeline.error,
        "runs": [
            {
                "id": runs[stage.name].pk,
                "stage": stage.name,
                "kind": runs[stage.name].kind,
                "status": runs[stage.name].status,
                "reused": bool(pipeline.stages[stage.name].get("reused")),
                "percent": run_progress_percent(runs[stage.name]),
                "summary": runs[stage.name].summary,
            }
            for stage in spec.stages
            if stage.name in runs
        ],
    }


@dataclass
class PolicyColumn:
    label: str
    run: TrainingRun | None
    step: int | None
    metrics: dict[str, float]
    samples: list[RunSample]


def _eval_at(run: TrainingRun, step: int) -> dict[str, float]:
    rows = RunMetric.objects.filter(run=run, step=step, key__startswith="eval/").values_list("key", "value")
    return dict(rows)


def pipeline_evaluation(pipeline: Pipeline) -> list[PolicyColumn]:
    """The policies side by side on the eval split: the SFT policy (the first PPO run's step-0 evaluation,
    taken before any update) and each compared PPO run's last evaluation, with its sample answers."""
    spec = pipelines.get(pipeline.name)
    runs = _runs(pipeline)
    columns: list[PolicyColumn] = []
    for index, stage_name in enumerate(spec.compare):
        run = runs.get(stage_name)
        if run is None:
            continue
        steps = RunMetric.objects.filter(run=run, key__startswith="eval/").aggregate(first=Min("step"), last=Max("step"))
        if index == 0 and steps["first"] is not None:
            columns.append(PolicyColumn(label=task_registry.get(spec.task).baseline_label, run=runs.get("sft"), step=steps["first"],
                                        metrics=_eval_at(run, steps["first"]),
                                        samples=list(RunSample.objects.filter(run=run, step=steps["first"])[:3])))
        last = steps["last"]
        columns.append(PolicyColumn(
            label=spec.stage(stage_name).title, run=run, step=last,
            metrics=_eval_at(run, last) if last is not None else {},
            samples=list(RunSample.objects.filter(run=run, step=last)[:3]) if last is not None else [],
        ))
    return columns


def evaluation_rows(columns: list[PolicyColumn], *, task: str = task_registry.DEFAULT_TASK) -> list[dict]:
    """One row per measure of the task: its label and each column's value (None where a policy was not measured)."""
    return [{"key": key, "label": label, "values": [c.metrics.get(key) for c in columns]}
            for key, label in task_registry.eval_columns(task)]

