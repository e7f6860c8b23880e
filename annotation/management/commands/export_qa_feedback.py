from django.core.management.base import BaseCommand, CommandError

from annotation.management.commands._progress import ExportBar, raw_stream
from annotation.models import Dataset
from annotation.qa.errors import Refused
from annotation.qa.format import FEEDBACK, FORMATS
from annotation.services.datasets import dataset_export


class Command(BaseCommand):
    help = (
        "Write one split of a dataset as a qa-feedback file: the feedback format (like dev_feedback.json, the "
        "latest submitted feedback per example) or the policy-input format (like dev.json)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", required=True)
        parser.add_argument("--out", required=True, help="file to write (replaced if it exists)")
        parser.add_argument("--format", choices=FORMATS, default=FEEDBACK, dest="fmt")

    def handle(self, *args, dataset: str, split: str, out: str, fmt: str, verbosity: int = 1, **options):
        if not Dataset.objects.filter(name=dataset).exists():
            known = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"no dataset named {dataset!r} (datasets: {known})")
        with ExportBar(raw_stream(self.stderr), disable=verbosity == 0) as bar:
            try:
                summary = dataset_export(dataset=dataset, split=split, fmt=fmt, out=out, progress=bar)
            except Refused as exc:
                raise CommandError(str(exc)) from None
            except OSError as exc:
                raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
        if verbosity:
            what = f"{summary.examples} examples ({fmt} format) of {dataset}/{split}"
            self.stdout.write(f"Wrote {what} to {out} in {summary.seconds:.2f} s.")
