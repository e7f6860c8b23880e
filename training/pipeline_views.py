"""Researcher pages for pipelines: the New pipeline form, the pipeline page (stages as a graph, live), its
side-by-side evaluation, and Cancel / Resume.

`training:pipeline_new` accepts `?kind=<pipeline>&dataset=<id or name>&train_split=..&eval_split=..` to
prefill (other pages link to it that way); `training:pipeline_detail` takes the pipeline's id.
"""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.models import Dataset
from annotation.permissions import researcher_required
from training import guide, pipelines, task_registry
from training.forms import default_splits
from training.ml.configs import ConfigError
from training.pipeline_selectors import (
    evaluation_rows,
    pipeline_evaluation,
    pipeline_get,
    pipeline_progress,
    pipeline_stages,
    pipelines_list,
)
from training.pipeline_services import pipeline_cancel as cancel_pipeline
from training.pipeline_services import pipeline_create, pipeline_resume as resume_pipeline
from training.selectors import dataset_split_counts

DEFAULT_PIPELINE = "fine_grained"
FORM_FIELDS = ("kind", "dataset", "train_split", "eval_split", "preset", "set")


def _dataset(value: str) -> Dataset | None:
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        found = Dataset.objects.filter(pk=int(value)).first()
        if found is not None:
            return found
    return Dataset.objects.filter(name=value).first()


def _form_values(data) -> dict:
    datasets = list(Dataset.objects.order_by("name"))
    kind = data.get("kind") if data.get("kind") in pipelines.PIPELINES else DEFAULT_PIPELINE
    dataset = _dataset(data.get("dataset", "")) or (datasets[0] if len(datasets) == 1 else None)
    splits = sorted(dataset_split_counts(dataset=dataset)) if dataset is not None else []
    train_default, eval_default = default_splits(splits)
    spec = pipelines.get(kind)
    advice = guide.fitting_pipeline_preset(kind)
    preset = data.get("preset") if data.get("preset") in spec.presets else advice.preset
    return {
        "kind": kind,
        "dataset": dataset,
        "datasets": datasets,
        "splits": splits,
        "train_split": data.get("train_split", train_default) or "",
        "eval_split": data.get("eval_split", eval_default) if "eval_split" in data else eval_default,
        "preset": preset,
        "preset_note": advice.note,
        "set": data.get("set", ""),
        # A new form reuses equal finished runs; a posted one as its box says.
        "reuse": data.get("reuse") == "on" if data.get("_posted") else True,
    }


def _form_context(values: dict, *, problems: list[tuple[str, str]] | None = None) -> dict:
    spec = pipelines.get(values["kind"])
    errors: dict[str, list[str]] = {}
    other: list[str] = []
    for field, message in problems or []:
        # `r1.train_split` belongs beside the train split, `ppo.total_episodes` beside the stage settings.
        suffix = field.rpartition(".")[2]
        key = field if field in FORM_FIELDS else suffix if suffix in FORM_FIELDS else "set" if "." in field else None
        if key is None:
            other.append(f"{field}: {message}")
        else:
            errors.setdefault(key, []).append(message)
    return {
        **values,
        "spec": spec,
        "specs": list(pipelines.PIPELINES.values()),
        "errors": errors,
        "other_errors": other,
        "has_errors": bool(problems),
        "same_splits": bool(values["train_split"]) and values["train_split"] == values["eval_split"],
        "recent": pipelines_list(limit=10),
    }


def _parse_set_lines(text: str) -> dict:
    return pipelines.parse_set([line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")])


@researcher_required
@require_http_methods(["GET", "POST"])
def pipeline_new(request):
    if request.method == "GET":
        values = _form_values(request.GET)
        template = "training/pipeline_new.html#pipeline-plan" if request.htmx else "training/pipeline_new.html"
        return render(request, template, _form_context(values))
    values = _form_values({**request.POST.dict(), "_posted": "1"})
    try:
        if values["dataset"] is None:
            raise ConfigError([("dataset", "choose a dataset: every stage trains on the same dataset split")])
        pipeline = pipeline_create(
            name=values["kind"], dataset=values["dataset"], train_split=values["train_split"],
            eval_split=values["eval_split"], preset=values["preset"], overrides=_parse_set_lines(values["set"]),
            user=request.user, reuse=values["reuse"],
        )
    except ConfigError as exc:
        return render(request, "training/pipeline_new.html", _form_context(values, problems=exc.problems), status=400)
    return redirect("training:pipeline_detail", pk=pipeline.pk)


def _detail_context(pipeline) -> dict:
    columns = pipeline_evaluation(pipeline)
    return {
        "pipeline": pipeline,
        "spec": pipelines.get(pipeline.name),
        "graph": pipeline_stages(pipeline),
        "percent": pipeline_progress(pipeline),
        "evaluation": columns,
        "evaluation_rows": evaluation_rows(columns, task=pipelines.get(pipeline.name).task),
        "measured": any(c.metrics for c in columns),
        "same_splits": pipeline.train_split == pipeline.eval_split,
    }


@researcher_required
@require_GET
def pipeline_detail(request, pk: int):
    pipeline = pipeline_get(pipeline_id=pk)
    context = _detail_context(pipeline)
    if request.htmx and request.GET.get("part") == "live":
        return render(request, "training/pipeline_detail.html#pipeline-live", context)
    return render(request, "training/pipeline_detail.html", context)


@researcher_required
@require_GET
def pipeline_compare(request, pk: int):
    """The policies side by side on the eval split (ROUGE-Lsum, ratios, completeness, length, samples)."""
    pipeline = pipeline_get(pipeline_id=pk)
    return render(request, "training/pipeline_compare.html", {**_detail_context(pipeline), "columns_def": task_registry.eval_columns(pipelines.get(pipeline.name).task)})


@researcher_required
@require_POST
def pipeline_cancel(request, pk: int):
    cancel_pipeline(pipeline=pipeline_get(pipeline_id=pk))
    return redirect("training:pipeline_detail", pk=pk)


@researcher_required
@require_POST
def pipeline_resume(request, pk: int):
    resume_pipeline(pipeline=pipeline_get(pipeline_id=pk), user=request.user)
    return redirect("training:pipeline_detail", pk=pk)
