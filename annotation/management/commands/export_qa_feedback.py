from django.core.management.base import BaseCommand, CommandError

from annotation.management.commands._progress import ExportBar, raw_stream
from annotation.models import Dataset
from annotation.qa.agreement import LATEST, RULE_DESCRIPTIONS, RULES
from annotation.qa.errors import Refused
from annotation.qa.format import FEEDBACK
from annotation.services.datasets import EXPORT_FORMATS, dataset_export


class Command(BaseCommand):
    help = (
        "Write one split of a dataset as a qa-feedback file: the feedback format (like dev_feedback.json, one "
        "record per example under --aggregate, or one annotator's work with --annotator), the policy-input format "
        "(like dev.json), or the disagreement format: JSON lines, one per (example, annotator), with the "
        "annotator's raw feedback and preference, the example's aggregated version (--aggregate, default majority "
        "there) and its agreement figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", required=True)
        parser.add_argument("--out", required=True, help="file to write (replaced if it exists)")
        parser.add_argument("--format", choices=EXPORT_FORMATS, default=FEEDBACK, dest="fmt")
        parser.add_argument("--annotator", default=None, help="feedback format: only this annotator's annotations")
        rules = "; ".join(RULE_DESCRIPTIONS[rule] for rule in RULES)
        parser.add_argument(
            "--aggregate",
            choices=RULES,
            default=None,
            help=f"how several annotators' work becomes one record per example (default: {LATEST}, majority for "
            f"the disagreement format): {rules}",
        )

    def handle(self, *args, dataset: str, split: str, out: str, fmt: str, verbosity: int = 1, **options):
        if not Dataset.objects.filter(name=dataset).exists():
            known = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"no dataset named {dataset!r} (datasets: {known})")
        with ExportBar(raw_stream(self.stderr), disable=verbosity == 0) as bar:
            try:
                summary = dataset_export(
                    dataset=dataset,
                    split=split,
                    fmt=fmt,
                    out=out,
                    progress=bar,
                    annotator=options.get("annotator"),
                    aggregate=options.get("aggregate"),
                )
            except Refused as exc:
                raise CommandError(str(exc)) from None
            except OSError as exc:
                raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
        if verbosity:
            self.stdout.write(f"Wrote {summary.describe()} to {out} in {summary.seconds:.2f} s.")
