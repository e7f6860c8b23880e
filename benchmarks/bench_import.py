"""How fast the 500 dev examples of qa-feedback import and export.

    .venv/bin/python benchmarks/bench_import.py [--repeat 3] [--database-url URL]

By default everything runs in a throwaway SQLite database in a temporary
folder. With --database-url the given database is migrated and used (point it
at a scratch database); the benchmark's dataset is deleted afterwards.

Prints, for each step, the best and median seconds over the repeats and the
examples per second of the best run; then the wall time of the management
command `import_qa_feedback` as a user runs it (Django start-up included).
Every export is compared byte for byte with the shared file.
"""

import argparse
import json
import os
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
INPUTS_FILE = DATA / "dev.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="scratch database to use instead of a temporary SQLite file")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="granary-bench-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch.name}/bench.sqlite3"
    os.environ["GRANARY_VAR_DIR"] = scratch.name
    # Production settings (DEBUG off, the default) need a key; the timed command inherits it.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(REPO))

    import django

    django.setup()
    from django.core.management import call_command

    from annotation.models import Dataset
    from annotation.services.datasets import dataset_export, dataset_import

    call_command("migrate", verbosity=0)
    dataset_name = f"bench-{os.getpid()}"
    timings: dict[str, list[float]] = {}
    counts: dict[str, int] = {}

    def timed(step: str, func, **kwargs) -> int:
        began = time.perf_counter()
        summary = func(**kwargs)
        timings.setdefault(step, []).append(time.perf_counter() - began)
        counts[step] = summary.examples
        return summary.examples

    out = Path(scratch.name)
    try:
        for run in range(args.repeat):
            split = f"dev{run}"
            where = {"dataset_name": dataset_name, "split": split}
            timed("import feedback (new split)", dataset_import, path_or_file=FEEDBACK_FILE, **where)
            timed("import inputs (joined)", dataset_import, path_or_file=INPUTS_FILE, **where)
            for fmt, reference in (("feedback", FEEDBACK_FILE), ("inputs", INPUTS_FILE)):
                target = out / f"{fmt}-{run}.json"
                timed(f"export {fmt}", dataset_export, dataset=dataset_name, split=split, fmt=fmt, out=target)
                if target.read_bytes() != reference.read_bytes():
                    raise SystemExit(f"export {fmt} differs from {reference}")

        env = dict(os.environ)
        began = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(REPO / "manage.py"),
                "import_qa_feedback",
                str(FEEDBACK_FILE),
                "--dataset",
                dataset_name,
                "--split",
                "cli",
                "-v0",
            ],
            check=True,
            env=env,
            cwd=REPO,
        )
        command_seconds = time.perf_counter() - began
    finally:
        Dataset.objects.filter(name=dataset_name).delete()
        scratch.cleanup()

    engine = django.db.connection.vendor
    print(f"database: {engine}; {args.repeat} runs; exports identical to the shared files")
    print(f"{'step':<34} {'examples':>8} {'best s':>8} {'median s':>9} {'examples/s':>11}")
    for step, values in timings.items():
        best = min(values)
        print(
            f"{step:<34} {counts[step]:>8} {best:>8.3f} {statistics.median(values):>9.3f} {counts[step] / best:>11.0f}"
        )
    command_examples = len(json.loads(FEEDBACK_FILE.read_text()))
    print(f"{'manage.py import_qa_feedback (wall)':<34} {command_examples:>8} {command_seconds:>8.3f}")


if __name__ == "__main__":
    main()
