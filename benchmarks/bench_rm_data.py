"""How fast the reward-model training files are built from the 500 dev examples.

    .venv/bin/python benchmarks/bench_rm_data.py [--repeat 3] [--naive-examples 100] [--splitter sentencizer]
        [--baseline-repo PATH]

Builds NF-ERR_subsentence, F-ERR_sentence and COMP_sequence from
dev_feedback.json with the pure builder (no database), one file at a time and
then all three together, and prints examples per second and seconds (best of
--repeat runs, on one core; spaCy's model load is not counted). Each output is
compared byte for byte with the shared reference files.

With more than one CPU, all three are also built by as many processes
(forked; `build_rm_files(workers=...)`), against the reference files too.

Then the whole command, `manage.py build_rm_data` for those 500 examples
(imported first into a throwaway SQLite database), start-up included: its
wall and CPU seconds (best of --repeat runs), split into a bare Django start,
loading the sentence splitter (spaCy's tokenizer rules, cached by the first
run in the throwaway var folder, or spaCy itself) and the rest, next to the
issue's target of about 1 s; the first run, which exports the rules, on its own; and
whether torch was imported (nothing in it needs torch). With --baseline-repo
(another checkout, e.g. `git archive main | tar -x -C /tmp/base`), the same
command from that checkout is timed too, its runs alternating with this one's,
on the same database and with the same Python.

Then the naive method, the way the original scripts compute it (every window
joined into a string and scored by difflib's SequenceMatcher.quick_ratio), is
timed on the first --naive-examples examples (0 skips it, -1 runs all 500,
which takes about half a minute) and the speed-up per example is printed.
"""

import argparse
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
DATA = Path(os.environ.get("GRANARY_SHARED_DIR", REPO.parent / "shared")) / "data" / "qa_feedback"
sys.path.insert(0, str(REPO))

from annotation.qa.rm_files import DifflibMatcher, build_rm_files
from annotation.qa.text import load_splitter
from annotation.qa.vocab import RM_FILE_NAMES


def best_of(repeat: int, func) -> tuple[float, float, object]:
    """(best wall seconds, best CPU seconds of this process, result): CPU time shows less of a busy machine."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        result = func()
        best = min(best, time.perf_counter() - began)
        best_cpu = min(best_cpu, time.process_time() - began_cpu)
    return best, best_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-examples", type=int, default=100)
    parser.add_argument("--splitter", default="sentencizer")
    parser.add_argument("--baseline-repo", type=Path, help="another checkout whose whole command is timed alongside")
    args = parser.parse_args()

    records = json.loads((DATA / "dev_feedback.json").read_text(encoding="utf-8"))
    nlp, splitter = load_splitter(args.splitter)
    nlp("Warm the vocabulary up. Then time.")
    print(f"{len(records)} examples from {DATA / 'dev_feedback.json'}; splitter: {splitter}")

    for name in RM_FILE_NAMES:
        seconds, cpu, built = best_of(args.repeat, lambda name=name: build_rm_files(records, nlp=nlp, files=[name]))
        same = built.files[name].content == (DATA / "reference" / name / "dev.json").read_text(encoding="utf-8")
        print(
            f"{name:20s} {len(records) / seconds:8.0f} examples/s  {seconds:6.3f} s (CPU {cpu:.3f} s)  "
            f"written {built.files[name].written:3d}  identical to reference: {'yes' if same else 'NO'}"
        )
    fast, cpu, built = best_of(args.repeat, lambda: build_rm_files(records, nlp=nlp))
    print(f"{'all three':20s} {len(records) / fast:8.0f} examples/s  {fast:6.3f} s (CPU {cpu:.3f} s)")
    workers = os.cpu_count() or 1
    if workers > 1:
        both, _, built = best_of(args.repeat, lambda: build_rm_files(records, nlp=nlp, workers=workers))
        same = all(
            built.files[n].content == (DATA / "reference" / n / "dev.json").read_text(encoding="utf-8")
            for n in RM_FILE_NAMES
        )
        print(
            f"{f'all three, {workers} procs':20s} {len(records) / both:8.0f} examples/s  {both:6.3f} s "
            f"({fast / both:.2f}x faster; forked children's CPU not counted)  identical to reference: "
            f"{'yes' if same else 'NO'}"
        )

    whole_command(args.repeat, args.baseline_repo)

    if args.naive_examples:
        subset = records if args.naive_examples < 0 else records[: args.naive_examples]
        slow, slow_cpu, naive = best_of(
            1, lambda: build_rm_files(subset, nlp=nlp, matcher=DifflibMatcher, batch_size=1)
        )
        fast_subset = build_rm_files(subset, nlp=nlp)
        same = all(naive.files[n].content == fast_subset.files[n].content for n in RM_FILE_NAMES)
        per_example_slow = slow / len(subset)
        print(
            f"{'naive (difflib)':20s} {len(subset) / slow:8.0f} examples/s  {slow:6.3f} s (CPU {slow_cpu:.3f} s) "
            f"for {len(subset)} examples (~{per_example_slow * len(records):.1f} s for {len(records)})  "
            f"same output: {'yes' if same else 'NO'}"
        )
        print(
            f"speed-up: {per_example_slow * len(records) / fast:.1f}x wall, "
            f"{slow_cpu / len(subset) * len(records) / cpu:.1f}x CPU"
        )


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict, repeat: int, cwd: Path = REPO) -> tuple[float, float, str]:
    """(best wall s, best CPU s, last stdout) of a child process run `repeat` times."""
    best, best_cpu, out = float("inf"), float("inf"), ""
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), _child_cpu()
        out = subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True, text=True).stdout
        best, best_cpu = min(best, time.perf_counter() - began), min(best_cpu, _child_cpu() - began_cpu)
    return best, best_cpu, out


PROBE = """
import os, sys, time
import django
django.setup()
from django.conf import settings
began = time.process_time()
from annotation.qa.text import load_splitter_cached
load_splitter_cached("sentencizer", settings.SPLITTER_CACHE_DIR)
print(f"{time.process_time() - began:.3f} {'torch' in sys.modules} {'spacy' in sys.modules}")
"""


def whole_command(repeat: int, baseline: Path | None = None) -> None:
    """`manage.py build_rm_data` on the dev examples, as a user runs it: a fresh process, start-up included."""
    with tempfile.TemporaryDirectory(prefix="granary-bench-rm-") as folder:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3",
            "GRANARY_VAR_DIR": folder,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        }
        manage = [sys.executable, str(REPO / "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=REPO, check=True)
        subprocess.run(
            [*manage, "import_qa_feedback", str(DATA / "dev_feedback.json"), "--dataset", "bench", "--split", "dev", "-v0"],
            env=env, cwd=REPO, check=True, capture_output=True,
        )
        checkouts = {"this checkout": REPO, **({"baseline": baseline.resolve()} if baseline else {})}
        # This checkout's command in one process too (--jobs 1): what the default --jobs (the CPUs) buys.
        runs = {**checkouts, "one process": REPO}
        timed: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        for _ in range(repeat):
            # Alternating, so all see the same load from other work on the machine.
            for name, repo in runs.items():
                build = [sys.executable, str(repo / "manage.py"), "build_rm_data", "--dataset", "bench", "--split",
                         "dev", "--out", f"{folder}/out-{name}", "--splitter", "sentencizer", "-v0"]
                build += ["--jobs", "1"] if name == "one process" else []
                wall, cpu, _ = _timed(build, {**env, "GRANARY_SHARED_DIR": str(DATA.parents[1])}, 1, cwd=repo)
                timed[name].append((wall, cpu))
        start_wall, start_cpu, _ = _timed([sys.executable, "-c", "import django; django.setup()"], env, repeat)
        _, _, probe = _timed([sys.executable, "-c", PROBE], env, 1)
        spacy_cpu, torch, spacy = probe.split()
        same = {
            name: all(
                (Path(folder) / f"out-{name}" / rm / "dev.json").read_bytes()
                == (DATA / "reference" / rm / "dev.json").read_bytes()
                for rm in RM_FILE_NAMES
            )
            for name in runs
        }
    wall, cpu = (min(values) for values in zip(*timed["this checkout"]))
    print(
        f"{'whole command':20s} {wall:6.3f} s wall, CPU {cpu:.3f} s (target: about 1 s, start-up included); "
        f"of which a bare Django start (django.setup) {start_cpu:.3f} s CPU ({start_wall:.3f} s wall), "
        f"loading the sentence splitter as the command does {float(spacy_cpu):.3f} s CPU (spaCy imported: "
        f"{spacy}); torch imported: {torch}; "
        f"files identical to reference: {'yes' if same['this checkout'] else 'NO'}"
    )
    one_wall, one_cpu = (min(values) for values in zip(*timed["one process"]))
    print(
        f"{'  with --jobs 1':20s} {one_wall:6.3f} s wall, CPU {one_cpu:.3f} s (the default --jobs is the CPUs, at "
        f"most 4: here {min(4, os.cpu_count() or 1)}); files identical to reference: "
        f"{'yes' if same['one process'] else 'NO'}"
    )
    first_wall, first_cpu = timed["this checkout"][0]
    print(f"{'  its first run':20s} {first_wall:6.3f} s wall, CPU {first_cpu:.3f} s (exports the tokenizer rules)")
    if baseline:
        base_wall, base_cpu = (min(values) for values in zip(*timed["baseline"]))
        print(
            f"{'baseline command':20s} {base_wall:6.3f} s wall, CPU {base_cpu:.3f} s ({baseline}; runs alternating "
            f"with this checkout's); files identical to reference: {'yes' if same['baseline'] else 'NO'}; "
            f"this checkout: {base_cpu / cpu:.2f}x less CPU, {base_wall / wall:.2f}x less wall"
        )
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
