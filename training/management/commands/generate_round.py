"""`python manage.py generate_round --dataset D --split S --policy-run ID --samples K [--limit N] [--campaign NAME] [--json]`."""

import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import Dataset
from annotation.qa.errors import Refused
from training.models import RoundJob, TrainingRun
from training.rounds import round_generate


class Command(BaseCommand):
    help = ("Sample K answers per example from a policy run, store them as the dataset's next annotation round "
            "(a new split) scored by the run's reward models, and open a campaign over them. Runs here, not on a worker.")

    def add_arguments(self, parser):
        parser.add_argument("--policy-run", type=int, required=True, help="a succeeded SFT or PPO run")
        parser.add_argument("--dataset", help="dataset to take the questions from (default: the run's)")
        parser.add_argument("--split", default="", help="split to take the questions from (default: the run's eval split)")
        parser.add_argument("--samples", type=int, default=4, help="answers per question, 1 to 4 (4: also a comparison of the four)")
        parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
        parser.add_argument("--campaign", default="", help="the campaign's name (default: 'Round R: ...')")
        parser.add_argument("--json", action="store_true", help='print {"round", "examples", "responses", "campaign"}')

    def handle(self, *args, **options):
        run = TrainingRun.objects.filter(pk=options["policy_run"]).first()
        if run is None:
            raise CommandError(f"--policy-run {options['policy_run']}: no such run")
        dataset = None
        if options["dataset"]:
            dataset = Dataset.objects.filter(name=options["dataset"]).first()
            if dataset is None:
                raise CommandError(f"--dataset {options['dataset']}: no such dataset")
        bar = tqdm(desc="sampling", unit="answer", file=self.stderr._out, disable=options["json"])

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            job = round_generate(run=run, dataset=dataset, split=options["split"], samples=options["samples"],
                                 limit=options["limit"], campaign_name=options["campaign"], progress=progress)
        except Refused as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        if job.status == RoundJob.Status.CANCELLED:
            raise CommandError(f"round job #{job.pk} was cancelled (from the run page); nothing was stored")
        if job.status != RoundJob.Status.SUCCEEDED:
            raise CommandError(f"the round failed: {job.error}")
        result = {"round": job.round, "examples": job.examples, "responses": job.responses, "campaign": job.campaign_id}
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"Round {job.round}: {job.examples} questions, {job.responses} answers in split {job.dataset.name}/{job.split}; "
                f"campaign #{job.campaign_id} opened.")
