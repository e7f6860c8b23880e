"""`python manage.py launch_run KIND --dataset NAME [--config FILE] [--set key=value ...]`."""

from pathlib import Path

import yaml
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Dataset
from training import kinds
from training.ml.configs import ConfigError
from training.services import run_create


def _parse_set(items: list[str]) -> dict:
    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set {item!r}: write it as key=value")
        # YAML reads numbers, booleans and lists the way a config file would.
        values[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return values


class Command(BaseCommand):
    help = "Create a training run and queue it for a GPU worker (the same as the dashboard's launch form)."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=kinds.names())
        parser.add_argument("--dataset", help="dataset name in the database (or use --train-file)")
        parser.add_argument("--train-split", default="train")
        parser.add_argument("--eval-split", default="dev", help="empty for no evaluation")
        parser.add_argument("--train-file", type=Path, help="a training file to use instead of a dataset")
        parser.add_argument("--eval-file", type=Path)
        parser.add_argument("--preset", help="preset name (default: the kind's paper preset); 'none' for the config defaults")
        parser.add_argument("--config", type=Path, help="YAML or JSON file of settings, applied over the preset")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more setting (repeatable)")
        parser.add_argument("--name", default="")

    def handle(self, *args, **options):
        kind = options["kind"]
        spec = kinds.get(kind)
        preset = options["preset"]
        if preset is None:
            preset = spec.default_preset()
        elif preset == "none":
            preset = ""
        elif preset not in spec.preset_names():
            raise CommandError(f"no preset {preset!r} for {kind}; available: {', '.join(spec.preset_names()) or 'none'}")

        overrides = {}
        if options["config"]:
            try:
                data = yaml.safe_load(options["config"].read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise CommandError(f"--config {options['config']}: {exc}") from None
            if not isinstance(data, dict):
                raise CommandError(f"--config {options['config']}: expected a mapping of setting: value")
            overrides.update(data)
        overrides.update(_parse_set(options["set"]))

        dataset = None
        if options["dataset"]:
            dataset = Dataset.objects.filter(name=options["dataset"]).first()
            if dataset is None:
                names = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"no dataset {options['dataset']!r} (datasets: {names})")

        handles = {}
        try:
            for role in ("train", "eval"):
                path = options[f"{role}_file"]
                if path is not None:
                    if not path.is_file():
                        raise CommandError(f"--{role}-file {path}: no such file")
                    handles[role] = File(open(path, "rb"), name=path.name)
            run = run_create(
                kind=kind,
                dataset=dataset,
                train_split=options["train_split"] if dataset else "",
                eval_split=options["eval_split"] if dataset else "",
                preset=preset or None,
                overrides=overrides,
                uploads=handles,
                name=options["name"],
            )
        except ConfigError as exc:
            lines = "\n".join(f"  {field}: {message}" for field, message in exc.problems)
            raise CommandError(f"the run was not created:\n{lines}") from None
        finally:
            for handle in handles.values():
                handle.close()
        self.stdout.write(self.style.SUCCESS(f"Run #{run.pk} ({kind}) queued; output folder MODEL_ROOT/{run.output_dir}"))
