"""Write a split's policy inputs (the dev.json format) to a file: its inputs file, or records derived from its feedback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from annotation.qa import format as qa_format
from annotation.qa.errors import NotFound
from annotation.selectors.datasets import dataset_resolve
from annotation.selectors.policy_inputs import iter_policy_input_records, policy_inputs_count, policy_inputs_source


def policy_inputs_export(*, dataset, split: str, out: Path, progress: Callable[[int, int], None] | None = None) -> str:
    """Write the split's policy-input records to `out` (replaced atomically); returns where they came from
    (selectors.policy_inputs.FROM_INPUTS or FROM_FEEDBACK). NotFound when the split holds neither format."""
    dataset = dataset_resolve(dataset)
    source = policy_inputs_source(dataset, split)
    if source is None:
        raise NotFound(f"{dataset.name}/{split} holds no examples in the inputs or the feedback format")
    total = policy_inputs_count(dataset, split)
    done = 0

    def records():
        nonlocal done
        for record in iter_policy_input_records(dataset, split):
            done += 1
            if progress is not None:
                progress(done, max(total, done))
            yield record

    out = Path(out)
    handle, temp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.writelines(qa_format.iter_dump(records(), fmt=qa_format.INPUTS))
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, out)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return source
