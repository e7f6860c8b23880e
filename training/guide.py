"""What the launch form suggests: a kind's prerequisites, defaults that launch on the machine at hand, warnings.

A new user should be able to press Launch without reading every setting:
the preset fits the workers online (`tiny` when no worker on the training
queue has a GPU: the paper's presets ask for t5-large, longformer and bf16),
the dataset is one that holds what the kind trains on, the model settings
start from the newest finished run of the kind that fills them, and the page
says plainly what is missing (naming the stage) and where to train it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from annotation.models import Dataset
from training import kinds, pipelines, selectors
from training.models import TrainingRun

TINY_PRESET = "tiny"
# The pipeline (pipelines' `training:pipeline_new`) that trains a PPO kind's prerequisites.


def pipeline_for_kind(kind: str) -> str:
    """The pipeline that trains `kind` with its prerequisites: the first registered one that ends in a
    stage of that kind with stages before it; "" for none."""
    for spec in pipelines.PIPELINES.values():
        if len(spec.stages) > 1 and spec.stages[-1].kind == kind:
            return spec.name
    return ""


@dataclass
class Prerequisite:
    """A model setting of the kind that a finished run of other kinds fills."""

    setting: str
    kinds: tuple[str, ...]
    required: bool
    runs: list[TrainingRun] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [kinds.get(name).label for name in self.kinds]

    @property
    def met(self) -> bool:
        return bool(self.runs)


def required_model_settings(kind: str) -> set[str]:
    """Model settings a run of `kind` cannot do without (what its config's kind check names when they are empty)."""
    spec = kinds.get(kind)
    config = spec.config_class()
    problems_for = getattr(config, "problems_for", None)
    named = {name for name, _ in problems_for(kind)} if problems_for is not None else set()
    return {name for name in spec.inputs.models if name in named}


def prerequisites(kind: str) -> list[Prerequisite]:
    required = required_model_settings(kind)
    out = []
    for setting, sources in kinds.get(kind).inputs.models.items():
        if sources:
            runs = list(selectors.runs_with_models(kinds=list(sources))[:20])
            out.append(Prerequisite(setting=setting, kinds=tuple(sources), required=setting in required, runs=runs))
    return out


def missing_prerequisites(kind: str) -> list[Prerequisite]:
    return [p for p in prerequisites(kind) if p.required and not p.met]


def default_sources(kind: str) -> dict[str, str]:
    """The newest finished run for each required model setting: the form starts with them picked."""
    return {p.setting: str(p.runs[0].pk) for p in prerequisites(kind) if p.required and p.runs}


@dataclass(frozen=True)
class PresetAdvice:
    preset: str
    note: str


def _fitting(presets: list[str], default: str) -> PresetAdvice:
    """`default` when a worker with a GPU is online on the training queue, else the tiny preset (if there is one)."""
    queue = settings.TRAINING_QUEUE
    online = [w for w in selectors.workers_online() if queue in (w.queues or [])]
    with_gpu = [w for w in online if w.gpus > 0]
    if with_gpu:
        return PresetAdvice(default, f"{len(with_gpu)} worker(s) with a GPU online on the {queue} queue.")
    if TINY_PRESET not in presets:
        return PresetAdvice(default, "")
    if online:
        names = ", ".join(w.hostname for w in online)
        return PresetAdvice(TINY_PRESET, f"No worker on the {queue} queue has a GPU ({names}): the {TINY_PRESET} preset trains in minutes on a CPU.")
    return PresetAdvice(TINY_PRESET, f"No worker is online on the {queue} queue: the run will wait for one; "
                                     f"the {TINY_PRESET} preset suits a CPU worker.")


def fitting_preset(kind: str) -> PresetAdvice:
    """The preset to start a run of `kind` from, given the workers online on the training queue."""
    spec = kinds.get(kind)
    return _fitting(spec.preset_names(), spec.default_preset())


def fitting_pipeline_preset(name: str) -> PresetAdvice:
    """The same for a pipeline: its `paper` preset for GPU workers, `tiny` otherwise."""
    presets = pipelines.get(name).preset_names()
    return _fitting(presets, "paper" if "paper" in presets else presets[0])


def default_inputs(kind: str, split_counts: dict[str, dict[str, dict[str, int]]]) -> tuple[str, str, str]:
    """(dataset, train split, eval split) to start from: the first dataset whose splits hold what `kind` trains on.

    Train on `train` when there is one, else on the split with the most
    examples; evaluate on another split (dev/validation/test first), or on
    none when the dataset has no other (never on the train split itself).
    """
    if not split_counts:
        return "", "", ""
    needed = kinds.get(kind).inputs.files.needs
    usable = {name: [s for s, counts in splits.items() if counts.get(needed)] for name, splits in split_counts.items()}
    name = next((n for n, splits in usable.items() if splits), next(iter(split_counts)))
    splits = usable[name] or list(split_counts[name])
    if not splits:
        return name, "train", "dev"
    train = "train" if "train" in splits else max(splits, key=lambda s: split_counts[name][s].get(needed, 0))
    others = [s for s in splits if s != train]
    evaluation = next((s for s in ("dev", "validation", "test") if s in others), others[0] if others else "")
    return name, train, evaluation


def pipeline_url(kind: str, *, dataset: str, train_split: str, eval_split: str) -> str:
    """The New pipeline page, filled in to train `kind` with its prerequisites; "" without pipelines."""
    pipeline = pipeline_for_kind(kind)
    if not pipeline:
        return ""
    return f"{reverse('training:pipeline_new')}?{urlencode({'kind': pipeline, 'dataset': dataset, 'train_split': train_split, 'eval_split': eval_split})}"


def datasets_exist() -> bool:
    return Dataset.objects.exists()
