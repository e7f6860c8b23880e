"""How fast `manage.py agreement` runs on the 500 dev examples annotated by three annotators.

    .venv/bin/python benchmarks/bench_agreement.py [--repeat 5] [--database-url URL]

The shared dev_feedback.json is imported three times with `--annotator`: as
itself (ana) and as two seeded variations (ben, cleo: spans dropped or
retyped, preferences and corrections changed; tests/annotation/annotators_data.py).
Then, side by side in one run:

- the attributed imports (the first creates the split, the others attach);
- the whole command `manage.py agreement --json` as a user runs it, wall and
  CPU time (Django start-up included), next to `manage.py agreement --help`
  (start-up alone, the floor any command pays);
- in-process: the plain read of the rows (selectors.agreement.split_items),
  the figures from them (qa.agreement.agreement), and the `krippendorff`
  package alone on the same units given as reliability matrices (the
  library's usual input) instead of value counts.

Target (issue 10): the command under 2 s.
"""

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GRANARY_SHARED_DIR", REPO.parent / "shared")) / "data" / "qa_feedback"
FEEDBACK_FILE = DATA / "dev_feedback.json"
ANNOTATORS = {"ana": None, "ben": 1, "cleo": 2}  # name -> variation seed (None: the shared file as it is)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _command(args: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one manage.py run."""
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args], check=True, capture_output=True, text=True, cwd=REPO
    )
    return time.perf_counter() - began, _children_cpu() - cpu, done.stdout


def _row(name: str, values: list[float], cpu: list[float] | None = None) -> str:
    text = f"{name:<52} {min(values):>8.3f} {statistics.median(values):>9.3f}"
    return text + (f" {statistics.median(cpu):>9.3f}" if cpu else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="scratch database to use instead of a temporary SQLite file")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="granary-bench-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch.name}/bench.sqlite3"
    os.environ["GRANARY_VAR_DIR"] = scratch.name
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(REPO))

    import django

    django.setup()
    import krippendorff
    import numpy as np
    from django.core.management import call_command

    from annotation.models import Dataset
    from annotation.qa import agreement as qa_agreement
    from annotation.qa.agreement import _Matrices
    from annotation.selectors.agreement import split_items
    from annotation.services.datasets import dataset_import
    from tests.annotation.annotators_data import feedback_text, variant

    call_command("migrate", verbosity=0)
    dataset_name = f"bench-agreement-{os.getpid()}"
    records = json.loads(FEEDBACK_FILE.read_text(encoding="utf-8"))
    imports: list[tuple[str, float]] = []
    timings: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        for name, seed in ANNOTATORS.items():
            path = FEEDBACK_FILE
            if seed is not None:
                path = Path(scratch.name) / f"{name}.json"
                path.write_text(feedback_text(variant(records, seed)), encoding="utf-8")
            summary = dataset_import(path_or_file=path, dataset_name=dataset_name, split="dev", annotator=name)
            how = "attached" if summary.attached else "new split"
            imports.append((f"import --annotator {name} ({how})", summary.seconds))

        where = ["--dataset", dataset_name, "--split", "dev"]
        figures = None
        for _ in range(args.repeat):
            wall, used, out = _command(["agreement", *where, "--json"])
            timings.setdefault("manage.py agreement --json (wall)", []).append(wall)
            cpu.setdefault("manage.py agreement --json (wall)", []).append(used)
            figures = json.loads(out)
            wall, used, _ = _command(["agreement", "--help"])
            timings.setdefault("manage.py agreement --help (start-up alone)", []).append(wall)
            cpu.setdefault("manage.py agreement --help (start-up alone)", []).append(used)

            began = time.perf_counter()
            rows = split_items(dataset=dataset_name, split="dev")
            timings.setdefault("in process: read the rows (split_items)", []).append(time.perf_counter() - began)
            items = [row.item for row in rows]
            began = time.perf_counter()
            qa_agreement.agreement(items)
            timings.setdefault("in process: the figures from the rows", []).append(time.perf_counter() - began)

            # The library alone on its usual input: coders x units matrices with NaN, one per figure.
            matrices = _Matrices(qa_agreement.shared_items(items))
            words = np.where(matrices.words < 0, np.nan, matrices.words.astype(float))
            preferences = np.where(matrices.preferences < 0, np.nan, matrices.preferences.astype(float))
            began = time.perf_counter()
            krippendorff.alpha(reliability_data=preferences, level_of_measurement="nominal")
            krippendorff.alpha(reliability_data=words, level_of_measurement="nominal")
            for code in range(1, len(qa_agreement.ERROR_VALUES)):
                binary = np.where(np.isnan(words), np.nan, (words == code).astype(float))
                krippendorff.alpha(reliability_data=binary, value_domain=[0.0, 1.0], level_of_measurement="nominal")
            timings.setdefault("krippendorff alone, reliability matrices (7 alphas)", []).append(
                time.perf_counter() - began
            )
        units = matrices.words.shape[1]
    finally:
        Dataset.objects.filter(name=dataset_name).delete()
        scratch.cleanup()

    print(f"database: {django.db.connection.vendor}; 500 examples x 3 annotators; {args.repeat} runs")
    for step, seconds in imports:
        print(f"{step:<52} {seconds:>8.3f} s")
    print(f"{figures['items']} shared examples, {units} word units; figures: {json.dumps(figures)}")
    print(f"{'step':<52} {'best s':>8} {'median s':>9} {'CPU s':>9}")
    for step, values in timings.items():
        print(_row(step, values, cpu.get(step)))


if __name__ == "__main__":
    main()
