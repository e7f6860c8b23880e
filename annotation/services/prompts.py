"""Importing detox prompts into a dataset split (one transaction: a bad file stores nothing)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.db import transaction

from annotation.models import Dataset, Example
from annotation.qa.errors import BadRequest
from annotation.qa.prompts import DETOX_TASK, keep, parse_prompts
from annotation.services.datasets import check_names

BATCH = 1000


@dataclass(frozen=True)
class PromptImportSummary:
    dataset: str
    split: str
    read: int
    imported: int
    seconds: float

    def __str__(self) -> str:
        left_out = self.read - self.imported
        note = f" ({left_out} left out by the filters)" if left_out else ""
        return f"imported {self.imported} of {self.read} prompts into {self.dataset}/{self.split}{note} in {self.seconds:.1f}s"


def prompts_import(*, path_or_file: str | Path | IO[str], dataset_name: str, split: str,
                   min_toxicity: float | None = None, challenging_only: bool = False, user=None) -> PromptImportSummary:
    """Store a prompt file as examples of a new split of a detox dataset.

    Each prompt becomes an example in the policy-input format (its text as the
    prompt, no reference answers), so the policy-input export feeds the detox
    trainer; RealToxicityPrompts' scores and source go into `Example.meta`.
    Raises PromptFileError (bad lines, with line numbers and fields) or BadRequest.
    """
    began = time.perf_counter()
    check_names(dataset_name, split)
    if min_toxicity is not None and not 0 <= min_toxicity <= 1:
        raise BadRequest(f"--min-toxicity must be in [0, 1], not {min_toxicity}", field="min_toxicity")
    if isinstance(path_or_file, (str, Path)):
        try:
            text = Path(path_or_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadRequest(f"{path_or_file}: cannot read ({exc})", field="path") from None
    else:
        text = path_or_file.read()
    prompts = parse_prompts(io.StringIO(text))
    if not prompts:
        raise BadRequest("the file holds no prompts", field="path")
    kept = [p for p in prompts if keep(p, min_toxicity=min_toxicity, challenging_only=challenging_only)]
    if not kept:
        raise BadRequest(f"none of the {len(prompts)} prompts passes the filters (min toxicity {min_toxicity}, "
                         f"challenging only: {challenging_only}); nothing was stored", field="min_toxicity")
    with transaction.atomic():
        dataset, created = Dataset.objects.select_for_update().get_or_create(
            name=dataset_name, defaults={"created_by": user, "task": DETOX_TASK})
        if not created and dataset.task != DETOX_TASK:
            raise BadRequest(f"dataset {dataset_name} holds {dataset.task} data; import prompts into a detox dataset",
                             field="dataset")
        if dataset.examples.filter(split=split).exists():
            raise BadRequest(f"{dataset_name}/{split} already holds examples; import into a new split", field="split")
        rows = [Example(dataset=dataset, split=split, position=i, input_position=i, question=p.text,
                        policy_text=p.text, has_input_format=True, meta={**p.meta, "line": p.line})
                for i, p in enumerate(kept)]
        Example.objects.bulk_create(rows, batch_size=BATCH)
    return PromptImportSummary(dataset=dataset_name, split=split, read=len(prompts), imported=len(kept),
                               seconds=time.perf_counter() - began)
