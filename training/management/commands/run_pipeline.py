"""`python manage.py run_pipeline NAME --dataset D --train-split S --eval-split E --preset tiny|paper
[--set STAGE.KEY=VALUE ...] [--no-reuse] [--wait] [--json]`."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Dataset
from training import pipelines
from training.ml.configs import ConfigError
from training.models import RunStatus
from training.pipeline_selectors import pipeline_report
from training.pipeline_services import pipeline_advance, pipeline_create

POLL_S = 2.0


class Command(BaseCommand):
    help = "Create a pipeline of runs (SFT, reward models, PPO) and start it; --wait follows it to the end."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=pipelines.names())
        parser.add_argument("--dataset", required=True, help="dataset name in the database")
        parser.add_argument("--train-split", default="train")
        parser.add_argument("--eval-split", default="dev", help="empty for no evaluation")
        parser.add_argument("--preset", default="tiny", help="tiny or paper (the pipeline's presets)")
        parser.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                            help="one setting of one stage, e.g. ppo.total_episodes=128 (repeatable)")
        parser.add_argument("--no-reuse", action="store_true", help="train every stage even if an equal finished run exists")
        parser.add_argument("--wait", action="store_true", help="follow the pipeline until it ends; exit 0 only if it succeeded")
        parser.add_argument("--json", action="store_true", help="print the pipeline and its runs as JSON (at the end with --wait)")

    def handle(self, *args, **options):
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            names = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no dataset {options['dataset']!r} (datasets: {names})")
        if options["eval_split"] and options["eval_split"] == options["train_split"]:
            # On stderr, so that --json stays one JSON document on stdout.
            self.stderr.write(f"warning: the eval split is the train split ({options['train_split']}): "
                              "evaluation figures will flatter the policy; pass another --eval-split if you have one")
        try:
            pipeline = pipeline_create(
                name=options["name"], dataset=dataset, train_split=options["train_split"],
                eval_split=options["eval_split"], preset=options["preset"],
                overrides=pipelines.parse_set(options["set"]), reuse=not options["no_reuse"],
            )
        except ConfigError as exc:
            raise CommandError("the pipeline cannot run:\n" + "\n".join(f"  {f}: {m}" for f, m in exc.problems)) from None
        if not options["json"]:
            self.stdout.write(f"pipeline {pipeline.pk} ({pipeline.label}) started")
        if options["wait"]:
            pipeline = self._follow(pipeline.pk, quiet=options["json"])
        report = pipeline_report(pipeline)
        if options["json"]:
            self.stdout.write(json.dumps(report))
        if options["wait"] and pipeline.status != RunStatus.SUCCEEDED:
            if not options["json"]:
                self.stderr.write(f"pipeline {pipeline.pk} {pipeline.status}: {pipeline.error}")
            raise SystemExit(1)

    def _follow(self, pipeline_id: int, *, quiet: bool):
        last = None
        while True:
            # Advancing here too is harmless (it is idempotent under a row lock) and keeps a pipeline going
            # even where no worker consumes the queue its advance tasks go to.
            pipeline = pipeline_advance(pipeline_id=pipeline_id)
            line = "  ".join(
                f"{run['stage']}:{run['status']}" + (f" {run['percent']}%" if run["status"] == RunStatus.RUNNING else "")
                for run in pipeline_report(pipeline)["runs"]
            )
            if line != last and not quiet:
                self.stdout.write(f"[{pipeline.status}] {line}")
                last = line
            if pipeline.is_finished:
                return pipeline
            time.sleep(POLL_S)
