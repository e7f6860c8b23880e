"""Import and export of many qa-feedback examples, side by side with `json.load` of the same file.

    .venv/bin/python benchmarks/bench_scale.py --database-url postgres://postgres@127.0.0.1:5432/granary_bench
    .venv/bin/python benchmarks/bench_scale.py --examples 50000 200000 --database-url ...   # linear? flat?
    .venv/bin/python benchmarks/bench_scale.py --keep --database-url ...   # import once, then export only

The file is the shared dev_feedback.json repeated until it holds N examples,
each question made unique ("... (copy 3)"), written into a temporary folder
(never into the repository). Each step runs in a child process of its own,
so its peak memory (the child's maximum resident set, Python, Django and the
database driver included) is its own:

- json.load: the whole file decoded into memory, the floor any import that
  parses the file has to beat;
- import: manage-free `dataset_import` of the file into a new split (one
  transaction; COPY on PostgreSQL);
- export: `dataset_export` of that split to a file, compared byte for byte
  with the imported file.

Times are wall-clock seconds (what a user waits), the child's CPU seconds,
and the CPU seconds of its PostgreSQL backend process when the database runs
on this machine (read from /proc). The machine's load average is
printed before and after: on a shared machine wall times grow with it.
Without --database-url a throwaway SQLite file is used. The benchmark's
dataset is deleted afterwards, unless --keep is given: then it is kept under
the name `bench-scale-kept`, and a later run with --keep finds each size's
split already there, skips its import and measures json.load and the export
alone (for work on the export; the file is generated again, the same bytes).
"""

import argparse
import hashlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRANARY_SHARED_DIR", REPO.parent / "shared")) / "data" / "qa_feedback"
FEEDBACK_FILE = SHARED / "dev_feedback.json"


def generate(path: Path, examples: int) -> None:
    """dev_feedback.json repeated to `examples` examples with unique questions, written as the file is."""
    sys.path.insert(0, str(REPO))
    from annotation.qa.format import FEEDBACK, iter_dump

    base = json.loads(FEEDBACK_FILE.read_text(encoding="utf-8"))

    def records():
        for i in range(examples):
            record = dict(base[i % len(base)])
            record["question"] = f"{record['question']} (copy {i // len(base)})"
            yield record

    with open(path, "w", encoding="utf-8", newline="") as out:
        out.writelines(iter_dump(records(), fmt=FEEDBACK))


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- steps, each in a child process ------------------------------------------------------------------


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _server_cpu() -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend, when it runs on this machine."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # a database on another machine
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(step: str, path: str, dataset: str, split: str) -> dict:
    server_before = server_after = None
    if step == "json.load":
        began, cpu = time.perf_counter(), time.process_time()
        with open(path, encoding="utf-8") as stream:
            examples = len(json.load(stream))
    else:
        _setup_django()
        from annotation.services.datasets import dataset_export, dataset_import

        server_before = _server_cpu()
        began, cpu = time.perf_counter(), time.process_time()
        if step == "import":
            examples = dataset_import(path_or_file=path, dataset_name=dataset, split=split).examples
        elif step == "export":
            examples = dataset_export(dataset=dataset, split=split, fmt="feedback", out=path).examples
        else:  # "baseline": what a child holds before it does anything
            examples = 0
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    if server_before is not None:
        server_after = _server_cpu()  # after the import's commit, its ANALYZE included
    return {
        "examples": examples,
        "wall": wall,
        "cpu": cpu,
        "server_cpu": None if server_after is None else server_after - server_before,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(step: str, path: Path, dataset: str, split: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, str(path), dataset, split],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def delete_dataset(name: str) -> None:
    """Delete the benchmark's rows with plain DELETEs: the ORM's cascade would load every row first."""
    from django.contrib.auth import get_user_model

    from annotation.models import (
        Comparison,
        Dataset,
        ErrorSpan,
        Example,
        FineGrainedFeedback,
        MissingInfo,
        Passage,
        Response,
    )

    examples = {"dataset__name": name}
    for queryset in (
        ErrorSpan.objects.filter(feedback__response__example__dataset__name=name),
        MissingInfo.objects.filter(feedback__response__example__dataset__name=name),
        FineGrainedFeedback.objects.filter(response__example__dataset__name=name),
        Comparison.objects.filter(example__dataset__name=name),
        Passage.objects.filter(example__dataset__name=name),
        Response.objects.filter(example__dataset__name=name),
        Example.objects.filter(**examples),
    ):
        queryset._raw_delete(queryset.db)
    Dataset.objects.filter(name=name).delete()
    get_user_model().objects.filter(username=f"import@{name}").delete()


# --- the run -----------------------------------------------------------------------------------------


def _imported(dataset: str, split: str) -> bool:
    from annotation.models import Example

    return Example.objects.filter(dataset__name=dataset, split=split).exists()


def measure(examples: int, folder: Path, dataset: str, *, reuse: bool = False) -> dict:
    source, exported = folder / f"feedback-{examples}.json", folder / f"export-{examples}.json"
    began = time.perf_counter()
    generate(source, examples)
    print(f"  generated {examples} examples ({source.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - began:.0f} s")
    split = f"n{examples}"
    row = {"examples": examples, "mb": source.stat().st_size / 1e6}
    row["json.load"] = run_child("json.load", source, dataset, split)
    row["import"] = None if reuse and _imported(dataset, split) else run_child("import", source, dataset, split)
    row["export"] = run_child("export", exported, dataset, split)
    row["identical"] = _digest(source) == _digest(exported)
    for path in (source, exported):
        path.unlink()
    return row


def report(rows: list[dict], baseline: dict, load_before, load_after, vendor: str) -> None:
    print()
    print(f"machine: {os.cpu_count()} CPUs; load average before {load_before}, after {load_after}")
    print(f"database: {vendor}; a child process that only starts Django peaks at {baseline['peak_mb']:.0f} MB")
    head = (
        f"{'examples':>8} {'file MB':>8} | {'step':<9} {'wall s':>7} {'x json.load':>11} {'s/10k':>6} "
        f"{'cpu s':>6} {'db cpu s':>8} {'peak MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        floor = row["json.load"]["wall"]
        for step in ("json.load", "import", "export"):
            m = row[step]
            if m is None:
                print(f"{row['examples']:>8} {row['mb']:>8.0f} | {step:<9} (kept from an earlier run with --keep)")
                continue
            ratio = m["wall"] / floor
            per = m["wall"] / row["examples"] * 10_000
            server = "" if m.get("server_cpu") is None else f"{m['server_cpu']:.1f}"
            print(
                f"{row['examples']:>8} {row['mb']:>8.0f} | {step:<9} {m['wall']:>7.1f} {ratio:>11.2f} {per:>6.2f} "
                f"{m['cpu']:>6.1f} {server:>8} {m['peak_mb']:>8.0f}"
            )
        print(f"{'':>17} | export byte-identical to the imported file: {'yes' if row['identical'] else 'NO'}")
    print()
    print("Targets (issue 9, PostgreSQL): import and export each at most 3x json.load; export peak under 300 MB.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, nargs="+", default=[50_000], help="sizes to run, e.g. 50000 200000")
    parser.add_argument("--database-url", help="scratch database (PostgreSQL for the targets); default: SQLite")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the imported splits (dataset bench-scale-kept) and reuse them: later runs measure the export alone",
    )
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="granary-bench-scale-")
    folder = Path(scratch.name)
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{folder}/bench.sqlite3"
    os.environ["GRANARY_VAR_DIR"] = str(folder)
    # Production settings (DEBUG off, as the settings default to) need a key; the children inherit it.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    _setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if args.keep and not args.database_url:
        parser.error("--keep needs --database-url (the SQLite file is thrown away)")
    dataset = "bench-scale-kept" if args.keep else f"bench-scale-{os.getpid()}"
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    baseline = run_child("baseline", folder / "none", dataset, "none")
    rows = []
    try:
        for examples in args.examples:
            print(f"{examples} examples:")
            rows.append(measure(examples, folder, dataset, reuse=args.keep))
    finally:
        if not args.keep:
            delete_dataset(dataset)
        scratch.cleanup()
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    report(rows, baseline, load_before, load_after, connection.vendor)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:6])))
    else:
        main()
