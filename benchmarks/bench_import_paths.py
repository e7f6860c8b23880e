"""What each part of the bulk import buys: the same PostgreSQL import with each one turned off, side by side.

    .venv/bin/python benchmarks/bench_import_paths.py --database-url postgres://postgres@127.0.0.1:5432/granary_bench
    .venv/bin/python benchmarks/bench_import_paths.py --examples 20000 --rounds 2 --database-url ...

The file is bench_scale's (dev_feedback.json repeated, unique questions).
Each variant imports it into a new split, in a child process of its own, one
after the other, and prints wall seconds, the child's CPU seconds, its
PostgreSQL backend's CPU seconds (from /proc; the database must run on this
machine) and the COMMIT's seconds:

- all: the import as shipped;
- one thread: COPYs sent by the reading thread, each waited for (no writer thread);
- checked FKs: PostgreSQL's per-row foreign key checks left on (queued, run at COMMIT);
- text COPY: the text format instead of the binary one;
- gc as before: without freezing the objects that existed before the import.

Run on a quiet machine for wall times. `--rounds` repeats the whole series.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
VARIANTS = ("all", "one thread", "checked FKs", "text COPY", "gc as before")


def child(variant: str, path: str, dataset: str, split: str) -> dict:
    from bench_scale import _server_cpu, _setup_django

    _setup_django()
    from django.db.backends.base import base

    from annotation.services import bulk, datasets

    if variant == "one thread":
        bulk.CopySink.pipelined = bulk.RowSink.pipelined
    elif variant == "checked FKs":
        bulk.CopySink._trust = lambda self, locks: None
    elif variant == "text COPY":
        bulk.postgres = SimpleNamespace(types={})
    elif variant == "gc as before":
        datasets._older_objects_frozen = nullcontext
    commit = [0.0]
    plain_commit = base.BaseDatabaseWrapper._commit

    def timed_commit(self):
        began = time.perf_counter()
        plain_commit(self)
        commit[0] += time.perf_counter() - began

    base.BaseDatabaseWrapper._commit = timed_commit
    server = _server_cpu()
    began, cpu = time.perf_counter(), time.process_time()
    examples = datasets.dataset_import(path_or_file=path, dataset_name=dataset, split=split).examples
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"examples": examples, "wall": wall, "cpu": cpu, "db": _server_cpu() - server, "commit": commit[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url", required=True, help="a scratch PostgreSQL database on this machine")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    from bench_scale import _setup_django, delete_dataset, generate

    _setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    dataset = f"bench-paths-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="granary-bench-paths-") as folder:
        source = Path(folder) / "feedback.json"
        generate(source, args.examples)
        print(f"{args.examples} examples, {source.stat().st_size / 1e6:.0f} MB; load average {os.getloadavg()}")
        print(f"{'variant':<13} {'wall s':>7} {'cpu s':>6} {'db cpu s':>8} {'commit s':>8}")
        try:
            for round_ in range(args.rounds):
                for n, variant in enumerate(VARIANTS):
                    split = f"r{round_}v{n}"
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", variant, str(source), dataset, split],
                        check=True, capture_output=True, text=True, cwd=REPO,
                    )
                    m = json.loads(out.stdout.strip().splitlines()[-1])
                    assert m["examples"] == args.examples
                    print(f"{variant:<13} {m['wall']:>7.1f} {m['cpu']:>6.1f} {m['db']:>8.1f} {m['commit']:>8.2f}")
        finally:
            delete_dataset(dataset)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:6])))
    else:
        main()
