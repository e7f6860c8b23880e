import argparse
import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.management.commands._progress import raw_stream
from annotation.qa.agreement import LATEST, RULE_DESCRIPTIONS, RULES
from annotation.qa.errors import Refused
from annotation.services.rm_files import rm_data_build

# More processes than this by default would hold more copies of the records than a build gains from.
MAX_DEFAULT_JOBS = 4
DEFAULT_JOBS = max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


class Command(BaseCommand):
    # A data command: the system checks (URLs, templates, admin) would import every view for nothing.
    requires_system_checks = []
    help = (
        "Build the reward-model training files of one dataset split: OUT/NF-ERR_subsentence/SPLIT.json, "
        "OUT/F-ERR_sentence/SPLIT.json, OUT/COMP_sequence/SPLIT.json, OUT/preference_pairs/SPLIT.jsonl (TRL "
        "chosen/rejected pairs) and OUT/summary/SPLIT.json. Each example uses one version of its annotations, "
        "chosen by --aggregate (default: the most recent submitted one)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", required=True)
        parser.add_argument("--out", required=True, help="folder to write into (created if missing)")
        parser.add_argument(
            "--splitter",
            default=None,
            help="sentence splitter: auto (en_core_web_sm if installed, else the sentencizer), sentencizer, "
            f"or a spaCy model name (default: the SENTENCE_SPLITTER setting, now {settings.SENTENCE_SPLITTER})",
        )
        parser.add_argument(
            "--aggregate",
            choices=RULES,
            default=LATEST,
            help="which version of several annotators' work each example contributes: "
            + "; ".join(RULE_DESCRIPTIONS[rule] for rule in RULES),
        )
        parser.add_argument(
            "--jobs",
            type=_positive,
            default=DEFAULT_JOBS,
            help="processes that build at once, each a run of the examples; the files are the same whatever the "
            f"number (default: the CPUs, at most {MAX_DEFAULT_JOBS}; now {DEFAULT_JOBS})",
        )

    def handle(self, *args, dataset: str, split: str, out: str, splitter: str | None, verbosity: int = 1, **options):
        aggregate = options.get("aggregate") or LATEST
        jobs = options.get("jobs") or DEFAULT_JOBS
        bar = tqdm(desc="building", unit="ex", file=raw_stream(self.stderr), disable=verbosity == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            with bar:
                summary = rm_data_build(
                    dataset=dataset,
                    split=split,
                    out_dir=out,
                    splitter=splitter,
                    progress=progress,
                    aggregate=aggregate,
                    workers=jobs,
                )
        except Refused as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot write into {out}: {exc.strerror or exc}") from None
        if verbosity:
            self.stdout.write(f"Sentence splitter: {summary['splitter']}")
            self.stdout.write(
                f"Built from {summary['examples']} of {summary['examples_in_split']} examples of {dataset}/{split} "
                f"in {summary['seconds']:.2f} s; rule: {summary['annotation_rule']}."
            )
            left = ", ".join(f"{count} {why}" for why, count in summary["left_out_by_rule"].items()) or "none"
            self.stdout.write(f"Left out by the {summary['aggregate']} rule: {left}")
            for entry in summary["files"].values():
                skipped = ", ".join(f"{count} {reason}" for reason, count in entry["skipped"].items()) or "none"
                self.stdout.write(f"  {entry['path']}: {entry['written']} written; left out: {skipped}")
            if verbosity > 1:
                self.stdout.write(json.dumps(summary, indent=2))
