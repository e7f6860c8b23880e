"""Researcher pages for training runs: the runs dashboard, the launch form and the live run page.

The pages only read: runs whose worker died are failed by the reaper that
celery beat sends every 15 s (config/celery.py), whether anyone looks or not.
Folder artifacts are zipped by a `default`-queue task and downloaded once
built; the zip's page polls until then. A refusal (`annotation.qa.errors.Refused`: a missing run, a run that cannot be
resumed) leaves the view and becomes a response in `config.errors`; only the
launch form catches its config's problems, to show each beside its input.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from django.contrib import messages
from django.http import FileResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.models import Dataset
from annotation.permissions import researcher_required
from annotation.qa.errors import BadRequest, NotFound
from training import guide, kinds, rounds, selectors, services, task_registry
from training.forms import (
    RunLaunchForm,
    config_rows,
    model_sources,
    overrides_from_post,
    overrides_from_sources,
    parse_overrides_text,
)
from training.inputs import resolve_config
from training.ml.configs import ConfigError
from training.models import RoundJob, RunStatus, TrainingRun
from training.run_folder import LOG_FILE

# Form fields that a ConfigError can name; anything else is a config setting.
_FORM_FIELDS = ("kind", "name", "dataset", "train_split", "eval_split", "train_file", "eval_file", "preset", "overrides")


@researcher_required
@require_GET
def run_list(request):
    context = {"runs": selectors.runs_list(), "polling": selectors.runs_any_active()}
    template = "training/run_list.html#runs-table" if request.htmx else "training/run_list.html"
    return render(request, template, context)


def _launch_context(form: RunLaunchForm, kind: str, preset: str, *, post=None, errors=None, inputs=None) -> dict:
    """Everything the launch form shows; `inputs` is (dataset, train split, eval split) as the form holds them."""
    sources = model_sources(kind)
    splits_by_dataset = _split_counts()
    submitted = selected = None
    if post is not None:
        submitted = {key[4:]: value for key, value in post.items() if key.startswith("cfg-")}
        selected = {key[7:]: value for key, value in post.items() if key.startswith("source-")}
    else:
        # Prerequisites start picked: the newest finished run of each kind that fills a required model.
        selected = guide.default_sources(kind)
    dataset, train_split, eval_split = inputs or ("", "", "")
    return {
        "form": form,
        "kind": kind,
        "preset": preset,
        "presets": kinds.get(kind).preset_names(),
        "preset_note": guide.fitting_preset(kind).note,
        "rows": config_rows(kind, preset, submitted=submitted, sources=sources, selected_sources=selected, errors=errors),
        "kinds": kinds.choices(),
        "kind_groups": task_registry.kind_groups(),
        "task": task_registry.of_kind(kind),
        "split_names": sorted({split for counts in splits_by_dataset.values() for split in counts}),
        "splits_by_dataset": splits_by_dataset,
        "prerequisites": guide.prerequisites(kind),
        "missing": guide.missing_prerequisites(kind),
        "pipeline_url": guide.pipeline_url(kind, dataset=dataset, train_split=train_split, eval_split=eval_split),
        "same_splits": bool(dataset) and bool(train_split) and train_split == eval_split,
    }


def _launch_inputs(kind: str, data) -> tuple[str, str, str]:
    """The form's dataset and splits: as asked (kind changes keep them), else a dataset that holds what the kind reads."""
    dataset, train_split, eval_split = guide.default_inputs(kind, _split_counts())
    if data.get("dataset") is not None:
        return data.get("dataset", ""), data.get("train_split", train_split), data.get("eval_split", eval_split)
    return dataset, train_split, eval_split


def _split_counts() -> dict[str, dict]:
    return {dataset.name: selectors.dataset_split_counts(dataset=dataset) for dataset in Dataset.objects.all()}


def _kind_and_preset(data) -> tuple[str, str]:
    kind = data.get("kind") or kinds.DEFAULT_KIND
    if kind not in kinds.KINDS:
        kind = kinds.DEFAULT_KIND
    preset = data.get("preset", None)
    if preset is None or (preset and preset not in kinds.get(kind).preset_names()):
        # A kind just picked starts from the preset that fits the workers online.
        preset = guide.fitting_preset(kind).preset
    return kind, preset


@researcher_required
@require_http_methods(["GET", "POST"])
def run_launch(request):
    if request.method == "GET":
        kind, preset = _kind_and_preset(request.GET)
        inputs = _launch_inputs(kind, request.GET)
        form = RunLaunchForm(initial={"kind": kind, "preset": preset, "dataset": inputs[0], "train_split": inputs[1],
                                      "eval_split": inputs[2]})
        context = _launch_context(form, kind, preset, inputs=inputs)
        # Changing the kind or preset swaps only the settings table.
        template = "training/run_launch.html#config-fields" if request.htmx else "training/run_launch.html"
        return render(request, template, context)

    kind, preset = _kind_and_preset(request.POST)
    form = RunLaunchForm(request.POST, request.FILES)
    errors: dict[str, str] = {}
    if form.is_valid():
        data = form.cleaned_data
        try:
            overrides, problems = overrides_from_post(kind, preset, request.POST)
            from_runs, source_problems = overrides_from_sources(kind, request.POST)
            problems += source_problems
            try:
                overrides.update(parse_overrides_text(data["overrides"]))
            except ConfigError as exc:
                problems += exc.problems
            overrides.update(from_runs)
            if problems:
                raise ConfigError(problems + _other_problems(kind, preset, overrides, skip={f for f, _ in problems}))
            run = services.run_create(
                kind=kind,
                user=request.user,
                name=data["name"],
                dataset=data["dataset"],
                train_split=data["train_split"],
                eval_split=data["eval_split"],
                preset=preset or None,
                overrides=overrides,
                uploads={"train": data["train_file"], "eval": data["eval_file"]},
            )
        except ConfigError as exc:
            for field, message in exc.problems:
                if field in _FORM_FIELDS:
                    form.add_error(field, message)
                elif field in _config_names(kind):
                    errors[field] = f"{errors[field]}; {message}" if field in errors else message
                else:
                    form.add_error(None, f"{field}: {message}")
        else:
            # No flash message: the run page's live status says it is queued, and stops saying so once it is not.
            if run.dataset_id and run.eval_split and run.eval_split == run.train_split:
                messages.warning(request, f"Run #{run.pk} evaluates on {run.eval_split}, the split it trains on: its eval "
                                          "figures measure memorisation, not how it does on unseen questions.")
            return redirect("training:run_detail", run_id=run.pk)
    inputs = (request.POST.get("dataset", ""), request.POST.get("train_split", ""), request.POST.get("eval_split", ""))
    context = _launch_context(form, kind, preset, post=request.POST, errors=errors, inputs=inputs)
    context["has_errors"] = True
    return render(request, "training/run_launch.html", context, status=400)


def _other_problems(kind: str, preset: str, overrides: dict, *, skip: set[str]) -> list[tuple[str, str]]:
    """What else is wrong with the values that did parse, so one submit shows every problem."""
    try:
        resolve_config(kind=kind, preset=preset or None, overrides=overrides, output_dir=Path("/dry-run"), from_dataset=False)
    except ConfigError as exc:
        # The dry run has no input files; those are checked for real when the run is created.
        return [(field, message) for field, message in exc.problems if field not in skip and field not in ("train_file", "eval_file")]
    return []


def _config_names(kind: str) -> list[str]:
    return [f.name for f in dataclasses.fields(kinds.get(kind).config_class)]


def _detail_context(run: TrainingRun) -> dict:
    resumable = run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
    latest = selectors.run_latest_metrics(run=run)
    return {
        "run": run,
        "kind": kinds.KINDS.get(run.kind),
        # Resume continues from a saved checkpoint; without one the button says Restart.
        "checkpoint": selectors.run_checkpoint(run_id=run.pk) if resumable else None,
        "progress_percent": selectors.run_progress_percent(run),
        "eta": selectors.run_eta(run),
        "duration": selectors.run_duration(run),
        "artifacts": selectors.run_artifacts(run=run),
        "samples": selectors.run_samples(run=run),
        "latest_metrics": latest,
        "throughput": selectors.run_throughput(latest),
        "task": task_registry.of_kind(run.kind),
        "headline": task_registry.headline(run.kind, latest),
    }


@researcher_required
@require_GET
def run_detail(request, run_id: int):
    run = selectors.run_get(run_id=run_id)
    context = _detail_context(run)
    if request.htmx:
        response = render(request, "training/run_detail.html#run-live", context)
        if run.is_finished:
            # One last swap with the final state, then htmx stops asking.
            return HttpResponseStopPolling(response.content)
        return response
    context["config_items"] = sorted(run.config.items())
    context.update(_round_context(run))
    context["resumes"] = list(run.resumes.order_by("pk"))
    if run.resumed_from_id is not None:
        context["resumed_checkpoint"] = selectors.run_checkpoint(run_id=run.resumed_from_id)
    return render(request, "training/run_detail.html", context)


@researcher_required
@require_GET
def run_metrics(request, run_id: int):
    """Metric points newer than ?after=<id>, for the charts to append."""
    run = selectors.run_get(run_id=run_id)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    data = selectors.run_metric_series(run=run, after_id=after)
    data["finished"] = run.is_finished
    data["status"] = run.status
    return JsonResponse(data)


@researcher_required
@require_POST
def run_cancel(request, run_id: int):
    run = selectors.run_get(run_id=run_id)
    # A cancel that took is shown by the run page's live status ("Stopping…", then "Cancelled"), not by a
    # message that would outlive it.
    if not services.run_cancel(run=run):
        messages.warning(request, f"Run #{run.pk} had already finished.")
    return redirect("training:run_detail", run_id=run.pk)


@researcher_required
@require_POST
def run_resume(request, run_id: int):
    run = selectors.run_get(run_id=run_id)
    new = services.run_resume(run=run, user=request.user)  # a second click gets the same run
    checkpoint = selectors.run_checkpoint(run_id=run.pk)
    if checkpoint is None:
        messages.info(request, f"Run #{new.pk} restarts run #{run.pk} from the first step: run #{run.pk} saved no checkpoint.")
    else:
        step = checkpoint.meta.get("step")
        where = f"its checkpoint at step {step}" if step else "its last checkpoint"
        messages.success(request, f"Run #{new.pk} continues run #{run.pk} from {where}.")
    return redirect("training:run_detail", run_id=new.pk)


@researcher_required
@require_GET
def run_log(request, run_id: int):
    """The whole log of the trainer, as plain text."""
    run = selectors.run_get(run_id=run_id)
    path = services.run_output_path(run) / LOG_FILE
    if not run.output_dir or not path.is_file():
        raise NotFound("this run has no log yet")
    return FileResponse(open(path, "rb"), content_type="text/plain; charset=utf-8")


@researcher_required
@require_GET
def artifact_download(request, run_id: int, artifact_id: int):
    """A file as it is; a folder goes to its zip's page (zipped in the background, never in the request)."""
    run = selectors.run_get(run_id=run_id)
    artifact = selectors.artifact_get(run=run, artifact_id=artifact_id)
    path = selectors.artifact_path(artifact)
    if path is None:
        raise NotFound("the file is gone from MODEL_ROOT")
    if path.is_dir():
        return redirect("training:artifact_zip", run_id=run.pk, artifact_id=artifact.pk)
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


@researcher_required
@require_http_methods(["GET", "POST"])
def artifact_zip(request, run_id: int, artifact_id: int):
    """GET: where the folder's zip stands (htmx polls while it is built); POST: build it (again)."""
    run = selectors.run_get(run_id=run_id)
    artifact = selectors.artifact_get(run=run, artifact_id=artifact_id)
    path = selectors.artifact_path(artifact)
    if path is None or not path.is_dir():
        raise NotFound(f"{artifact.name} is not a folder under MODEL_ROOT")
    if request.method == "POST":
        if not services.artifact_zip_request(run=run, artifact=artifact):
            messages.info(request, f"{artifact.name} is being zipped already.")
        return redirect("training:artifact_zip", run_id=run.pk, artifact_id=artifact.pk)
    state = selectors.artifact_zip_state(run=run, artifact=artifact)
    context = {"run": run, "artifact": artifact, "zip": state}
    if request.htmx:
        response = render(request, "training/artifact_zip.html#zip-state", context)
        return response if state.status == "building" else HttpResponseStopPolling(response.content)
    return render(request, "training/artifact_zip.html", context)


@researcher_required
@require_GET
def artifact_zip_download(request, run_id: int, artifact_id: int):
    run = selectors.run_get(run_id=run_id)
    artifact = selectors.artifact_get(run=run, artifact_id=artifact_id)
    state = selectors.artifact_zip_state(run=run, artifact=artifact)
    if state.status != "ready":
        raise NotFound(f"the zip of {artifact.name} is not built yet")
    return FileResponse(open(state.path, "rb"), as_attachment=True, filename=state.filename)


# ---------------------------------------------------------------- new annotation rounds from a policy run


def _round_context(run: TrainingRun) -> dict:
    """The run page's "New annotation round" card: for succeeded SFT and PPO runs."""
    if run.kind not in rounds.POLICY_KINDS or run.status != RunStatus.SUCCEEDED:
        return {"round_offered": False}
    return {
        "round_offered": True,
        "round_jobs": selectors.run_round_jobs(run=run),
        "round_splits": selectors.dataset_split_names(dataset=run.dataset) if run.dataset_id else [],
        "round_default_split": run.eval_split or run.train_split,
    }


def _int_field(data, name: str, default: int) -> int:
    raw = str(data.get(name, "")).strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a whole number, got {raw!r}", field=name)
    return int(raw)


@researcher_required
@require_POST
def run_round(request, run_id: int):
    """Queue a new annotation round sampled from this run's policy; the run page follows it."""
    run = selectors.run_get(run_id=run_id)
    job = rounds.round_request(
        run=run,
        split=request.POST.get("split", ""),
        samples=_int_field(request.POST, "samples", 4),
        limit=_int_field(request.POST, "limit", 0),
        campaign_name=request.POST.get("campaign", ""),
        user=request.user,
    )
    return redirect(f"{reverse('training:run_detail', args=[run.pk])}#round-{job.pk}")


@researcher_required
@require_POST
def round_cancel(request, job_id: int):
    """Cancel a round (queued: at once; sampling: after the batch in hand); htmx gets the round's card back."""
    job = rounds.round_cancel(job_id=job_id)  # NotFound, Conflict
    if request.htmx:
        return render(request, "training/_round_job.html", {"job": selectors.round_job_get(job_id=job.pk)})
    return redirect(f"{reverse('training:run_detail', args=[job.run_id])}#round-{job.pk}")


@researcher_required
@require_GET
def round_status(request, job_id: int):
    """One round's progress (htmx polls it while the worker samples), then its campaign."""
    job = selectors.round_job_get(job_id=job_id)
    response = render(request, "training/_round_job.html", {"job": job})
    return response if job.active else HttpResponseStopPolling(response.content)


# ---------------------------------------------------------------- comparing runs


def _compare_ids(request) -> list[int]:
    """Run ids from ?runs=1&runs=2 or ?runs=1,2."""
    ids = []
    for value in request.GET.getlist("runs"):
        for part in value.split(","):
            part = part.strip().lstrip("#")
            if part.isdigit():
                ids.append(int(part))
    return ids


@researcher_required
@require_GET
def run_compare(request):
    """Two or more runs side by side: their curves overlaid, their final metrics in one table."""
    runs = selectors.runs_by_ids(run_ids=_compare_ids(request))
    context = {
        "runs": runs,
        "enough": len(runs) >= 2,
        "rows": selectors.runs_final_metrics(runs=runs) if len(runs) >= 2 else [],
        "choices": selectors.runs_to_compare(),
        "chosen": {run.pk for run in runs},
        "series_url": f"{reverse('training:run_compare_metrics')}?runs={','.join(str(run.pk) for run in runs)}",
        "most": selectors.COMPARE_MAX,
    }
    return render(request, "training/run_compare.html", context)


@researcher_required
@require_GET
def run_compare_metrics(request):
    """Every metric point of the runs compared, for the overlaid charts."""
    runs = selectors.runs_by_ids(run_ids=_compare_ids(request))
    return JsonResponse({"runs": selectors.runs_compare_series(runs=runs)})
