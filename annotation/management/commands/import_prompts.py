from django.core.management.base import BaseCommand, CommandError

from annotation.qa.errors import Refused
from annotation.qa.prompts import SHOWN_PROBLEMS, PromptFileError
from annotation.services.prompts import prompts_import


class Command(BaseCommand):
    help = (
        "Import detox prompts (RealToxicityPrompts JSON lines, or {\"prompt\": \"...\"} lines) into a new split of "
        "a detox dataset. Every bad line is reported with its number and field; nothing is stored if any is bad."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSON-lines file of prompts")
        parser.add_argument("--dataset", required=True, help="dataset name (created as a detox dataset if missing)")
        parser.add_argument("--split", required=True, help="split name, e.g. train, dev")
        parser.add_argument("--min-toxicity", type=float, default=None,
                            help="keep only prompts whose prompt.toxicity is at least this (e.g. 0.5)")
        parser.add_argument("--challenging", action="store_true",
                            help="keep only prompts marked challenging (RealToxicityPrompts' challenging subset)")

    def handle(self, *args, path: str, dataset: str, split: str, min_toxicity, challenging: bool, verbosity: int = 1,
               **options):
        try:
            summary = prompts_import(path_or_file=path, dataset_name=dataset, split=split, min_toxicity=min_toxicity,
                                     challenging_only=challenging)
        except PromptFileError as exc:
            lines = exc.lines()
            text = f"{path} was not imported, nothing was stored: {lines[0]}"
            if len(lines) > 1:
                more = len(lines) - SHOWN_PROBLEMS
                text += "\nother problems:\n  " + "\n  ".join(lines[1:SHOWN_PROBLEMS])
                text += f"\n  ... and {more} more" if more > 0 else ""
            raise CommandError(text) from None
        except Refused as exc:
            raise CommandError(f"{path} was not imported: {exc}") from None
        if verbosity:
            self.stdout.write(str(summary))
