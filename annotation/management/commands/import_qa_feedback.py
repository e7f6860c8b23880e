from django.core.management.base import BaseCommand, CommandError

from annotation.management.commands._progress import ImportBar, raw_stream
from annotation.qa.errors import Refused
from annotation.qa.format import FormatError
from annotation.services.datasets import dataset_import

# Enough lines to fix a file in one pass without burying the first problem.
SHOWN_PROBLEMS = 20


class Command(BaseCommand):
    help = (
        "Import a qa-feedback file into one split of a dataset. The format (policy inputs like dev.json, or "
        "feedback like dev_feedback.json) is told by the keys. A split holds each format once; importing the "
        "other format into a split joins its examples question by question. With --annotator, the file's "
        "feedback and preferences become that annotator's submitted work; a later annotator's file of the same "
        "split attaches to the same examples (matched by question, predictions checked). Nothing is written if "
        "any check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSON file in either qa-feedback format")
        parser.add_argument("--dataset", required=True, help="dataset name (created if missing)")
        parser.add_argument("--split", required=True, help="split name, e.g. train, dev, test")
        parser.add_argument(
            "--annotator",
            default=None,
            help="username whose annotations the file holds (the account is created, without a usable password, "
            "if missing); without it, imported feedback belongs to the dataset's import account",
        )

    def handle(self, *args, path: str, dataset: str, split: str, annotator: str | None = None, verbosity: int = 1, **options):
        with ImportBar(raw_stream(self.stderr), disable=verbosity == 0) as bar:
            try:
                summary = dataset_import(
                    path_or_file=path, dataset_name=dataset, split=split, progress=bar, annotator=annotator
                )
            except FormatError as exc:
                lines = exc.lines()
                text = f"{path} was not imported, nothing was written: {lines[0]}"
                if len(lines) > 1:
                    shown = "\n  ".join(lines[1:SHOWN_PROBLEMS])
                    more = len(lines) - SHOWN_PROBLEMS
                    text += f"\nother problems:\n  {shown}" + (f"\n  ... and {more} more" if more > 0 else "")
                raise CommandError(text) from None
            except Refused as exc:
                raise CommandError(f"{path} was not imported: {exc}") from None
        if verbosity:
            self.stdout.write(str(summary))
