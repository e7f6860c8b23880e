"""What a run reads: its input files and the models its config names.

A run's inputs come from a dataset split in the database (built into
`<output_dir>/inputs/` by the worker just before training: the reward-model
files for rm_* kinds, the policy-input format for SFT and PPO) or from files
uploaded with the launch form. Either way their paths are decided when the
run is created, so the stored config is the exact config the trainer gets.

Models named in a config may be a hub name or a folder inside MODEL_ROOT,
nothing else: a run must not read arbitrary files of the machine it runs on.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File

from annotation.qa.errors import Refused
from training import kinds
from training.ml.configs import ConfigError, from_dict
from training.selectors import dataset_split_counts

INPUTS_DIR = "inputs"
UPLOADS_DIR = "uploaded"
# Upload roles and the config field each one fills.
DATA_FIELDS = {"train": "train_file", "eval": "eval_file"}

# Values like `{tiny_encoder}` or `{tiny_t5}` ask the trainer to build a tiny model itself; it checks the name.
_PLACEHOLDER = re.compile(r"\{[a-z0-9_]+\}")

_HUB_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HUB_NAME = re.compile(rf"{_HUB_PART}(/{_HUB_PART})?")
# File systems refuse longer names (and longer paths); checked before any file-system call sees them.
NAME_PART_MAX = 255
MODEL_REF_MAX = 1024


class InputError(Refused):
    """An input that cannot be prepared (a dataset split with nothing to train on, a failed build)."""


def resolve_model_ref(value: str, *, model_root: Path) -> str:
    """A model hub name as given, or a folder inside `model_root` as an absolute path.

    Relative paths are read against MODEL_ROOT. Raises ValueError naming the
    problem for anything else (a path elsewhere, `..`, a folder that is not there).
    """
    value = value.strip()
    if _PLACEHOLDER.fullmatch(value):
        return value
    if not value:
        raise ValueError("name a model: a hub name such as 'allenai/longformer-base-4096' or a folder inside MODEL_ROOT")
    longest = max(len(part) for part in value.split("/"))
    if len(value) > MODEL_REF_MAX or longest > NAME_PART_MAX:
        raise ValueError(
            f"is too long ({len(value)} characters, {longest} in one part): a hub name or folder has at most "
            f"{NAME_PART_MAX} characters between slashes and {MODEL_REF_MAX} in all"
        )
    if "\0" in value:
        raise ValueError("contains a NUL character, which no model name or folder can hold")
    root = model_root.resolve()
    path = Path(value).expanduser()
    if path.is_absolute() or value.startswith(("~", ".")) or ".." in path.parts:
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root):
            raise ValueError(f"{value!r} is outside MODEL_ROOT ({root}); models must be hub names or folders inside it")
        if not resolved.is_dir():
            raise ValueError(f"{value!r} is not a folder inside MODEL_ROOT")
        return str(resolved)
    candidate = (root / path).resolve()
    if candidate.is_dir() and candidate.is_relative_to(root):
        return str(candidate)
    if _HUB_NAME.fullmatch(value) and "--" not in value and ".." not in value:
        return value
    raise ValueError(f"{value!r} is neither a folder inside MODEL_ROOT ({root}) nor a model hub name like 'org/model'")


def dataset_input_paths(*, kind: str, output_dir: Path, train_split: str, eval_split: str) -> dict[str, str]:
    """The config's train/eval file paths for inputs built from the database into `output_dir/inputs`."""
    folder = output_dir / INPUTS_DIR / kinds.get(kind).inputs.files.folder
    return {
        "train_file": str(folder / f"{train_split}.json"),
        "eval_file": str(folder / f"{eval_split}.json") if eval_split else "",
    }


def upload_paths(*, output_dir: Path, uploads: Mapping[str, Any]) -> dict[str, str]:
    paths = {"train_file": "", "eval_file": ""}
    for role, field_name in DATA_FIELDS.items():
        if uploads.get(role):
            paths[field_name] = str(output_dir / INPUTS_DIR / UPLOADS_DIR / f"{role}.json")
    return paths


def check_sources(*, kind: str, dataset, train_split: str, eval_split: str, uploads: Mapping[str, Any]) -> None:
    """Refuse a run whose inputs cannot exist: no source, both sources, or a split without the right data."""
    problems: list[tuple[str, str]] = []
    if dataset is None and not uploads.get("train"):
        problems.append(("dataset", "choose a dataset split or upload a training file"))
    elif dataset is not None and uploads:
        problems.append(("dataset", "use either a dataset or uploaded files, not both"))
    elif dataset is not None and dataset.task != kinds.get(kind).task:
        problems.append(("dataset", f"{dataset.name} is a {dataset.task} dataset; {kind} trains on {kinds.get(kind).task} data"))
    elif dataset is not None:
        needed = kinds.get(kind).inputs.files.needs
        counts = dataset_split_counts(dataset=dataset)
        for field_name, split in (("train_split", train_split), ("eval_split", eval_split)):
            if not split:
                if field_name == "train_split":
                    problems.append((field_name, "name the split to train on"))
                continue
            if split not in counts:
                known = ", ".join(sorted(counts)) or "none"
                problems.append((field_name, f"dataset {dataset.name} has no split {split!r} (it has: {known})"))
            elif needed == "inputs" and counts[split]["inputs"] == 0 and counts[split]["feedback"] == 0:
                # Policy inputs are derived from feedback when a split has no inputs file (item 1 of issue 11).
                problems.append((field_name, f"{dataset.name}/{split} holds no examples in the policy-input (dev.json) or "
                                             f"feedback (dev_feedback.json) format that {kind} trains on"))
            elif needed == "feedback" and counts[split]["feedback"] == 0:
                problems.append((field_name, f"{dataset.name}/{split} holds no examples in the feedback (dev_feedback.json) "
                                             f"format that {kind} trains on"))
    if problems:
        raise ConfigError(problems)


def resolve_config(
    *,
    kind: str,
    preset: str | None,
    overrides: Mapping[str, Any],
    output_dir: Path,
    from_dataset: bool,
    train_split: str = "",
    eval_split: str = "",
    uploads: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full config a run will train with, as a JSON-ready dict; ConfigError lists every problem."""
    spec = kinds.get(kind)
    problems: list[tuple[str, str]] = []
    for field_name in DATA_FIELDS.values():
        if field_name in overrides:
            problems.append((field_name, "is set by the run from the dataset or the uploaded files; upload a file instead"))
    data: dict[str, Any] = dict(spec.load_preset(preset)) if preset else {}
    data.update({k: v for k, v in overrides.items() if k not in DATA_FIELDS.values()})
    if from_dataset:
        data.update(dataset_input_paths(kind=kind, output_dir=output_dir, train_split=train_split, eval_split=eval_split))
    else:
        data.update(upload_paths(output_dir=output_dir, uploads=uploads or {}))

    model_root = Path(settings.MODEL_ROOT)
    for field_name in spec.inputs.models:
        value = data.get(field_name)
        if not isinstance(value, str) or not value.strip():
            continue  # the config's own checks report a wrong type or a required model left empty
        try:
            data[field_name] = resolve_model_ref(value, model_root=model_root)
        except ValueError as exc:
            problems.append((field_name, str(exc)))
    try:
        config = from_dict(spec.config_class, data)
    except ConfigError as exc:
        problems.extend(exc.problems)
        config = None
    # Checks that depend on the kind (a fine-grained PPO run needs R1, R2 and R3) also belong at launch time.
    problems_for = getattr(config, "problems_for", None)
    if problems_for is not None:
        problems.extend(problems_for(kind))
    if problems:
        raise ConfigError(problems)
    return dataclasses.asdict(config)


def save_uploads(*, uploads: Mapping[str, File], output_dir: Path) -> None:
    folder = output_dir / INPUTS_DIR / UPLOADS_DIR
    for role in DATA_FIELDS:
        upload = uploads.get(role)
        if not upload:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{role}.json", "wb") as target:
            if hasattr(upload, "chunks"):
                for chunk in upload.chunks():
                    target.write(chunk)
            else:
                upload.seek(0)
                shutil.copyfileobj(upload, target)


def run_prepare_config(*, run, output_dir: Path, beat: Callable[[], None] | None = None) -> dict[str, Any]:
    """Build the run's input files (when they come from the database) and return the config to train with.

    `beat` is called as the build makes progress, so a long build keeps the
    run's heartbeat fresh. Raises InputError when a file cannot be built or a
    needed file is missing.
    """
    config = dict(run.config)
    if run.dataset_id is not None:
        _build_dataset_inputs(run=run, config=config, beat=beat or (lambda: None))
    for field_name in DATA_FIELDS.values():
        path = config.get(field_name)
        if path and not Path(path).is_file():
            raise InputError(f"{field_name} {path} does not exist")
    return config


def _build_dataset_inputs(*, run, config: Mapping[str, Any], beat: Callable[[], None]) -> None:
    files = kinds.get(run.kind).inputs.files
    targets = {split: Path(config[field_name]) for split, field_name in ((run.train_split, "train_file"), (run.eval_split, "eval_file")) if split and config.get(field_name)}
    for split, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        if files.build == "rm_file":
            from annotation.qa.errors import Refused
            from annotation.services.rm_files import rm_data_build

            try:
                # Builds all three files of the split; the kind's own file is the one the config names.
                rm_data_build(
                    dataset=run.dataset,
                    split=split,
                    out_dir=target.parent.parent,
                    splitter=settings.SENTENCE_SPLITTER,
                    progress=lambda done, total: beat(),
                )
            except Refused as exc:
                raise InputError(str(exc)) from None
        else:
            from annotation.qa.errors import Refused
            from annotation.services.datasets import dataset_export
            from annotation.services.policy_inputs import policy_inputs_export

            try:
                if files.needs == "inputs":
                    # The inputs file when the split has one, else records derived from its feedback.
                    policy_inputs_export(dataset=run.dataset, split=split, out=target, progress=lambda done, total: beat())
                else:
                    dataset_export(dataset=run.dataset, split=split, fmt=files.name, out=target, progress=lambda done, total: beat())
            except Refused as exc:
                raise InputError(str(exc)) from None
        if not target.is_file():
            raise InputError(f"building {files.name} for {run.dataset.name}/{split} wrote no {target.name}")
        if files.build == "rm_file" and target.stat().st_size == 0:
            raise InputError(f"{run.dataset.name}/{split} gives no usable {files.name} examples (every example was left out)")
