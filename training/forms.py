"""The launch form: run kind, inputs, preset, and per-setting overrides read by the config's types.

The config table has one input per setting of the kind's config class (its
help is the field's docstring), filled with the preset's value. On submit
each input is parsed by that setting's type; only values that differ from the
preset become overrides. A YAML/JSON box takes further overrides on top. The
result goes through the config class like a preset or the CLI's `--set`;
every value that cannot be used comes back as (setting, message), shown
beside its input.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml
from django import forms

from annotation.models import Dataset
from training import kinds
from training.ml.configs import ConfigError, field_docs
from training.selectors import run_model_path, runs_with_models

CONFIG_PREFIX = "cfg-"
SOURCE_PREFIX = "source-"
# Config fields the run system fills (the input files); never typed in.
MANAGED_FIELDS = ("train_file", "eval_file")


def default_preset(kind: str) -> str:
    return kinds.get(kind).default_preset()


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) != len(typing.get_args(annotation)):
            return args[0], True
    return annotation, False


def display_value(value: Any) -> str:
    """A setting's value as the text in its input box."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def parse_value(text: str, annotation: Any) -> Any:
    """The text of an input box as a value of the setting's type; ValueError says what was expected."""
    annotation, optional = _strip_optional(annotation)
    text = text.strip() if annotation is not str else text
    if optional and text.strip() == "":
        return None
    if annotation is bool:
        lowered = text.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number (like 0.001 or 1e-5), got {text!r}") from None
    if annotation is str:
        return text
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        for choice in choices:
            if text == display_value(choice):
                return choice
        raise ValueError(f"expected one of {', '.join(map(display_value, choices))}, got {text!r}")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"expected JSON or YAML ({exc.__class__.__name__})") from None


def parse_overrides_text(text: str) -> dict[str, Any]:
    """The free-text overrides box: a YAML (or JSON) mapping of setting -> value."""
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" on line {where.line + 1}" if where is not None else ""
        raise ConfigError([("overrides", f"not valid YAML or JSON{line}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([("overrides", "write a mapping of setting: value, one per line")])
    return {str(key): value for key, value in data.items()}


@dataclass
class ConfigRow:
    name: str
    text: str  # what the input box shows
    preset_text: str
    help: str
    type_name: str
    choices: tuple[str, ...] = ()
    managed: bool = False  # filled by the run system (input files)
    sources: list | None = None  # finished runs that can fill a model setting
    source_selected: str = ""
    error: str = ""

    @property
    def input_name(self) -> str:
        return CONFIG_PREFIX + self.name

    @property
    def source_name(self) -> str:
        return SOURCE_PREFIX + self.name


def _type_name(annotation: Any) -> str:
    annotation, optional = _strip_optional(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        name = "choice"
    else:
        name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    return f"{name} or empty" if optional else name


def preset_values(kind: str, preset: str) -> dict[str, Any]:
    """Every setting of the kind after applying the preset (defaults where the preset is silent)."""
    spec = kinds.get(kind)
    values = spec.defaults()
    if preset:
        values.update(spec.load_preset(preset))
    return values


def config_rows(kind: str, preset: str, *, submitted: dict[str, str] | None = None, sources: dict[str, list] | None = None,
                selected_sources: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> list[ConfigRow]:
    cls = kinds.get(kind).config_class
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    values = preset_values(kind, preset)
    model_names = set(kinds.get(kind).inputs.models)
    rows = []
    for f in dataclasses.fields(cls):
        annotation, _ = _strip_optional(hints[f.name])
        choices = tuple(display_value(c) for c in typing.get_args(annotation)) if typing.get_origin(annotation) is typing.Literal else ()
        preset_text = display_value(values.get(f.name))
        rows.append(
            ConfigRow(
                name=f.name,
                text=(submitted or {}).get(f.name, preset_text),
                preset_text=preset_text,
                help=docs.get(f.name, ""),
                type_name=_type_name(hints[f.name]),
                choices=choices,
                managed=f.name in MANAGED_FIELDS,
                sources=(sources or {}).get(f.name) if f.name in model_names else None,
                source_selected=(selected_sources or {}).get(f.name, ""),
                error=(errors or {}).get(f.name, ""),
            )
        )
    return rows


def overrides_from_post(kind: str, preset: str, post) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Overrides from the config table's inputs: the parsed values that differ from the preset."""
    cls = kinds.get(kind).config_class
    hints = typing.get_type_hints(cls)
    values = preset_values(kind, preset)
    overrides: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for f in dataclasses.fields(cls):
        key = CONFIG_PREFIX + f.name
        if key not in post or f.name in MANAGED_FIELDS:
            continue
        try:
            value = parse_value(post[key], hints[f.name])
        except ValueError as exc:
            problems.append((f.name, str(exc)))
            continue
        if value != values.get(f.name):
            overrides[f.name] = value
    return overrides, problems


def model_sources(kind: str) -> dict[str, list]:
    """For each model setting of the kind: the succeeded runs whose saved model can fill it."""
    return {
        name: list(runs_with_models(kinds=list(sources)))
        for name, sources in kinds.get(kind).inputs.models.items()
        if sources
    }


def default_splits(split_names: list[str]) -> tuple[str, str]:
    """The launch form's starting train and eval splits: `train`/`dev` when some dataset has them,
    else the first split there is, so the form's defaults launch as they stand."""
    if not split_names:
        return "train", "dev"
    train = "train" if "train" in split_names else split_names[0]
    evaluation = next((name for name in ("dev", "validation", "test") if name in split_names), train)
    return train, evaluation


class RunLaunchForm(forms.Form):
    kind = forms.ChoiceField(choices=kinds.choices)
    name = forms.CharField(max_length=200, required=False, help_text="Optional; shown in the runs list and in wandb.")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), required=False, empty_label="— uploaded files —",
                                     to_field_name="name")
    train_split = forms.CharField(max_length=32, required=False, initial="train")
    eval_split = forms.CharField(max_length=32, required=False, initial="dev",
                                 help_text="Evaluated during training; leave empty for none.")
    train_file = forms.FileField(required=False, help_text="Instead of a dataset: the training file in the format the kind reads.")
    eval_file = forms.FileField(required=False)
    preset = forms.CharField(max_length=100, required=False)
    overrides = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "max_steps: 100\nlearning_rate: 1.0e-4"}),
        help_text="More settings as YAML or JSON; applied after the table above.",
    )

    def clean(self):
        cleaned = super().clean()
        kind, preset = cleaned.get("kind"), cleaned.get("preset") or ""
        if kind and preset and preset not in kinds.get(kind).preset_names():
            available = ", ".join(kinds.get(kind).preset_names()) or "none"
            self.add_error("preset", f"no preset {preset!r} for {kind}; available: {available}")
        return cleaned


def overrides_from_sources(kind: str, post) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Model settings taken from a finished run picked on the form (its saved model folder)."""
    overrides: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, sources in kinds.get(kind).inputs.models.items():
        chosen = str(post.get(SOURCE_PREFIX + name, "")).strip()
        if not chosen or not sources:
            continue
        run = runs_with_models(kinds=list(sources)).filter(pk=int(chosen) if chosen.isdigit() else -1).first()
        path = run_model_path(run) if run is not None else None
        if path is None:
            problems.append((name, f"run {chosen} is not a succeeded {' or '.join(sources)} run with a saved model"))
        else:
            overrides[name] = str(path)
    return overrides, problems
