"""Writes for reward-model training files: build them from the database, and run builds in the background.

`rm_data_build` writes, for one dataset split, into `out_dir`:

    NF-ERR_subsentence/SPLIT.json   relevance RM (R1)
    F-ERR_sentence/SPLIT.json       factuality RM (R2)
    COMP_sequence/SPLIT.json        completeness RM (R3)
    preference_pairs/SPLIT.jsonl    holistic preferences as TRL {"prompt", "chosen", "rejected"} lines
    summary/SPLIT.json              what was written, what was left out and why, and the rule below

Several annotators may have labelled the same item. The `aggregate` rule
(selectors.aggregate) says which version each example contributes: by
default (`latest`) its most recently submitted fine-grained feedback (on
prediction 1) and its most recently submitted comparison; `adjudicated` the
reviewer's gold version; `majority` the majority of its annotators. The
summary names the rule, counts the examples it left out and the items where
several annotations were there to choose from.
"""

import json
import logging
from collections import Counter
import os
import tempfile
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Adjudication, Dataset, RmDataBuild
from annotation.qa.rm_files import PREFERENCE_PAIRS_FILE, SUMMARY, build_rm_files, output_paths, preference_pairs
from annotation.qa.agreement import ADJUDICATED, LATEST, RULE_DESCRIPTIONS
from annotation.qa.errors import BadRequest, NotFound, Refused
from annotation.qa.text import AUTO, SENTENCIZER, load_splitter_cached
from annotation.selectors.aggregate import NOT_ANNOTATED, check_rule, iter_rule_records
from annotation.selectors.datasets import dataset_resolve, feedback_complete_examples, feedback_records_for
from annotation.selectors.rm_files import rm_data_split_counts

logger = logging.getLogger(__name__)

ANNOTATION_RULE = (
    "one annotation per example: the most recently submitted fine-grained feedback on prediction 1 and the "
    "most recently submitted comparison; examples without both are left out (--aggregate chooses another rule)"
)
BUILDS_DIR = "rm_data"
# The Celery task that runs a stored build (annotation/tasks.py) and its queue. Builds are sent by
# task name, so this module never imports the tasks that call it.
BUILD_TASK = "annotation.build_rm_data"
BUILD_QUEUE = "default"
# Progress is stored at most this often (in examples), so a build does not write a row per example.
PROGRESS_EVERY = 25

Progress = Callable[[int, int], None]


def _dataset(dataset: Dataset | str | int) -> Dataset:
    try:
        return dataset_resolve(dataset)
    except Dataset.DoesNotExist:
        raise NotFound(f"no dataset {dataset!r}", field="dataset") from None


def _nothing_to_build(dataset: Dataset, split: str) -> BadRequest:
    return BadRequest(
        f"{dataset.name}/{split} has no example with submitted feedback on prediction 1 and a submitted comparison",
        field="split",
    )


def splitter_problem(name: str) -> str | None:
    """Why `name` cannot be a sentence splitter, or None; cheap (does not load spaCy)."""
    name = name.strip()
    if name in (AUTO, SENTENCIZER):
        return None
    # spaCy models are Python packages, so an installed one is importable by its name.
    if not name.isidentifier() or find_spec(name) is None:
        return f"sentence splitter {name!r} is not installed: use 'auto', 'sentencizer' or an installed spaCy model"
    return None


def _write_atomic(path: Path, content: str) -> None:
    # Beside the target and renamed over it: a reader never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(content)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def rm_data_build(
    *,
    dataset: Dataset | str | int,
    split: str,
    out_dir: str | Path,
    splitter: str | None = None,
    progress: Progress | None = None,
    aggregate: str = LATEST,
    workers: int = 1,
) -> dict[str, Any]:
    """Build the reward-model files of one split from the database into `out_dir`; return the summary.

    `splitter` defaults to the SENTENCE_SPLITTER setting; `aggregate` is the
    rule that picks each example's version (qa.agreement.RULES); `workers`
    above 1 builds in that many processes, forked from this one (see
    qa.rm_files.build_rm_files: only where nothing else runs in threads, as in
    the command; a Celery worker builds in one). Raises
    NotFound when the dataset does not exist, BadRequest when the rule is
    unknown, when the split has no example the rule keeps or the splitter is
    not available.
    """
    began = time.perf_counter()
    dataset = _dataset(dataset)
    check_rule(aggregate)
    # SplitterNotAvailable is a BadRequest. The sentencizer splits from spaCy's tokenizer rules cached in
    # SPLITTER_CACHE_DIR (text.RuleSentencizer): the same sentences, without importing spaCy.
    nlp, resolved = load_splitter_cached(splitter or settings.SENTENCE_SPLITTER, settings.SPLITTER_CACHE_DIR)
    left_out: Counter = Counter()
    if aggregate == LATEST:
        records = feedback_records_for(dataset, split)
    else:
        records = list(iter_rule_records(dataset, split, rule=aggregate, left_out=left_out))
    if not records:
        if aggregate != LATEST:
            counted = ", ".join(f"{count} {why}" for why, count in left_out.items()) or "no examples"
            raise BadRequest(
                f"{dataset.name}/{split}: the {aggregate} rule keeps no example ({counted})", field="aggregate"
            )
        raise _nothing_to_build(dataset, split)
    built = build_rm_files(records, nlp=nlp, splitter=resolved, progress=progress, workers=workers)
    pairs = preference_pairs(records)
    paths = output_paths(out_dir, split)
    counts = rm_data_split_counts(dataset=dataset, split=split)
    files: dict[str, Any] = {
        name: {"path": str(paths[name]), **result.summary()} for name, result in built.files.items()
    }
    files[PREFERENCE_PAIRS_FILE] = {"path": str(paths[PREFERENCE_PAIRS_FILE]), **pairs.summary()}
    summary = {
        "dataset": dataset.name,
        "split": split,
        "splitter": resolved,
        "examples": len(records),
        "examples_in_split": counts["examples_in_split"],
        "examples_without_feedback": counts["examples_in_split"] - len(records),
        "aggregate": aggregate,
        "annotation_rule": ANNOTATION_RULE if aggregate == LATEST else RULE_DESCRIPTIONS[aggregate],
        "left_out_by_rule": dict(left_out)
        or _latest_left_out(counts["examples_in_split"] - len(records)),
        "items_with_several_feedback": counts["items_with_several_feedback"],
        "items_with_several_comparisons": counts["items_with_several_comparisons"],
        "files": files,
    }
    for name, result in built.files.items():
        _write_atomic(paths[name], result.content)
    _write_atomic(paths[PREFERENCE_PAIRS_FILE], pairs.content)
    summary["seconds"] = round(time.perf_counter() - began, 3)
    _write_atomic(paths[SUMMARY], json.dumps(summary, indent=2) + "\n")
    return summary


def _latest_left_out(missing: int) -> dict[str, int]:
    return {NOT_ANNOTATED: missing} if missing else {}


# --- background builds ----------------------------------------------------------------------------


def rm_data_build_dir(build: RmDataBuild) -> Path:
    return Path(settings.MEDIA_ROOT) / BUILDS_DIR / f"build-{build.pk}"


def _enqueue(build_id: int) -> None:
    # Imported here: the command line builds without Celery, and importing it costs a fifth of a second.
    from config.celery import app as celery_app

    # A signature goes through the registered task (loaded here: tasks are not imported at start-up),
    # so CELERY_TASK_ALWAYS_EAGER runs the build in place; send_task would not.
    celery_app.loader.import_default_modules()
    celery_app.signature(BUILD_TASK, args=[build_id], queue=BUILD_QUEUE).apply_async()


def rm_data_build_request(
    *, dataset: Dataset | str | int, split: str, splitter: str, user=None, aggregate: str = LATEST
) -> RmDataBuild:
    """Store a queued build and send it to the BUILD_QUEUE once the transaction commits.

    Raises NotFound (unknown dataset) or BadRequest (unknown rule, nothing to build from, splitter not
    installed).
    """
    dataset = _dataset(dataset)
    check_rule(aggregate)
    splitter = splitter.strip() or settings.SENTENCE_SPLITTER
    problem = splitter_problem(splitter)
    if problem:
        raise BadRequest(problem, field="splitter")
    if aggregate == ADJUDICATED:
        if not Adjudication.objects.filter(example__dataset=dataset, example__split=split).exists():
            raise BadRequest(f"{dataset.name}/{split} has no gold version (adjudication) yet", field="aggregate")
    elif not feedback_complete_examples(dataset, split).exists():
        raise _nothing_to_build(dataset, split)
    with transaction.atomic():
        build = RmDataBuild.objects.create(
            dataset=dataset, split=split, splitter=splitter, aggregate=aggregate, created_by=user
        )
        build.out_dir = str(rm_data_build_dir(build))
        build.save(update_fields=["out_dir"])
        build_id = build.pk
        transaction.on_commit(lambda: _enqueue(build_id))
    return build


def rm_data_build_run(*, build_id: int) -> RmDataBuild:
    """Run a stored build (the Celery task's body): progress, files and outcome go to its row.

    A build that already succeeded is left alone, so a redelivered task does
    nothing; one interrupted mid-way runs again (its files are replaced whole).
    """
    build = RmDataBuild.objects.select_related("dataset").get(pk=build_id)
    if build.status == RmDataBuild.Status.SUCCEEDED:
        return build
    rows = RmDataBuild.objects.filter(pk=build.pk)
    rows.update(status=RmDataBuild.Status.RUNNING, progress_done=0, error="")

    def progress(done: int, total: int) -> None:
        if done == total or done % PROGRESS_EVERY == 0:
            rows.update(progress_done=done, progress_total=total)

    try:
        summary = rm_data_build(
            dataset=build.dataset,
            split=build.split,
            out_dir=build.out_dir,
            splitter=build.splitter,
            progress=progress,
            aggregate=build.aggregate,
        )
    except Refused as exc:
        rows.update(status=RmDataBuild.Status.FAILED, error=str(exc), finished_at=timezone.now())
    except Exception as exc:  # the row must say the build failed, whatever the cause
        logger.exception("reward-model build %s failed", build.pk)
        rows.update(status=RmDataBuild.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
    else:
        rows.update(status=RmDataBuild.Status.SUCCEEDED, summary=summary, finished_at=timezone.now())
    build.refresh_from_db()
    return build
