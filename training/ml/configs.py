"""Typed trainer configs: defaults from the paper, presets from YAML, clear errors.

Each trainer defines a dataclass with a docstring per field; the registry maps
a run kind to that class. `build_config` merges a preset with overrides and
checks every value's type, so a researcher's typo is refused with the field's
name instead of surfacing as a crash on a GPU node.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

# kind -> "module:ConfigClass"
CONFIG_CLASSES: dict[str, str] = {
    "sft": "training.ml.sft:SFTConfig",
    "rm_relevance": "training.ml.train_rm:TokenRMConfig",
    "rm_factuality": "training.ml.train_rm:TokenRMConfig",
    "rm_completeness": "training.ml.train_rm:PreferenceRMConfig",
    "rm_preference": "training.ml.train_rm:PreferenceRMConfig",
    "ppo_holistic": "training.ml.ppo:PPOConfig",
    "ppo_fine_grained": "training.ml.ppo:PPOConfig",
}


class ConfigError(ValueError):
    """A config value that cannot be used; `problems` lists (field, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))


def _load(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def config_class(kind: str) -> type:
    if kind not in CONFIG_CLASSES:
        raise ConfigError([("kind", f"unknown run kind {kind!r}; expected one of {', '.join(CONFIG_CLASSES)}")])
    return _load(CONFIG_CLASSES[kind])


def list_presets(kind: str) -> list[str]:
    folder = PRESETS_DIR / kind
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_preset(kind: str, name: str) -> dict[str, Any]:
    path = PRESETS_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError([("preset", f"no preset {name!r} for {kind}; available: {', '.join(list_presets(kind)) or 'none'}")])
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError([("preset", f"{path.name} must hold a mapping")])
    return data


def _check_type(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and all(_check_type(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build `cls` from a dict, refusing unknown keys and values of the wrong type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[tuple[str, str]] = []
    for key in data:
        if key not in fields:
            problems.append((key, f"unknown setting; known settings: {', '.join(sorted(fields))}"))
    values: dict[str, Any] = {}
    for name in fields:
        if name not in data:
            continue
        value = data[name]
        if isinstance(value, int) and not isinstance(value, bool) and hints[name] is float:
            value = float(value)
        if not _check_type(value, hints[name]):
            pretty = getattr(hints[name], "__name__", str(hints[name]))
            problems.append((name, f"expected {pretty}, got {value!r}"))
            continue
        values[name] = value
    if problems:
        raise ConfigError(problems)
    instance = cls(**values)
    validate = getattr(instance, "validate", None)
    if validate is not None:
        extra = validate()
        if extra:
            raise ConfigError(list(extra))
    return instance


def build_config(kind: str, *, preset: str | None = None, overrides: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {}
    if preset:
        data.update(load_preset(kind, preset))
    data.update(overrides or {})
    return from_dict(config_class(kind), data)


def field_docs(cls: type) -> dict[str, str]:
    """Per-field help text: the `#:` comment or the field metadata's `help`."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
