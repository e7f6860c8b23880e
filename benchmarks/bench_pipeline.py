"""Wall and CPU time of the tiny `fine_grained` pipeline, and of each of its stages, through a real worker.

    .venv/bin/python benchmarks/bench_pipeline.py [--train 400] [--eval 100] [--pipeline fine_grained]

What a researcher does with nothing but a feedback file: dev_feedback.json's
first N records are imported as `train` and the next M as `dev` (no dev.json:
SFT and PPO read policy inputs derived from the feedback), then
`run_pipeline fine_grained --preset tiny --wait --json` runs against one Celery
worker (`--pool=solo`, one process, as `make worker` starts it) in a throwaway
SQLite database and MODEL_ROOT. Prints the pipeline's wall time, the CPU time
of the worker and every trainer it started (the machine may be shared, so
both are given), each stage's wall time (queued -> finished and its trainer's
own running time), and the first and last values of each stage's learning
curve, to show that the tiny settings still learn.
"""

import argparse
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GRANARY_SHARED_DIR", REPO.parent / "shared")) / "data" / "qa_feedback"
# One curve per stage kind that shows it learns.
CURVES = {
    "sft": ("train/loss", "eval/rouge_lsum"),
    "rm_relevance": ("train/loss", "eval/macro_f1"),
    "rm_factuality": ("train/loss", "eval/macro_f1"),
    "rm_completeness": ("train/loss", "eval/pairwise_accuracy"),
    "rm_preference": ("train/loss", "eval/pairwise_accuracy"),
    "ppo_fine_grained": ("reward/mean", "eval/mean_reward"),
    "ppo_holistic": ("reward/mean", "eval/mean_reward"),
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--eval", type=int, default=100)
    parser.add_argument("--pipeline", default="fine_grained")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="granary-bench-pipeline-")
    root = Path(scratch.name)
    queue = f"bench-{secrets.token_hex(4)}"
    env = {
        "DATABASE_URL": f"sqlite:///{root}/bench.sqlite3",
        "GRANARY_VAR_DIR": str(root),
        "MODEL_ROOT": str(root / "models"),
        "CELERY_BROKER_FOLDER": str(root / "broker"),
        "TRAINING_QUEUE": queue,
        "TRAINING_PIPELINE_QUEUE": queue,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TRAINING_HEARTBEAT_TIMEOUT_S": "300",
    }
    os.environ.update(env)
    (root / "models").mkdir()
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    from annotation.services.datasets import dataset_import
    from training.models import RunMetric, TrainingRun

    call_command("migrate", verbosity=0)
    records = json.loads((DATA / "dev_feedback.json").read_text(encoding="utf-8"))
    for split, part in (("train", records[: args.train]), ("dev", records[args.train : args.train + args.eval])):
        path = root / f"{split}.json"
        path.write_text(json.dumps(part), encoding="utf-8")
        dataset_import(path_or_file=path, dataset_name="bench", split=split)
    print(f"imported {args.train} train + {args.eval} dev feedback records (no policy-input file)")

    celery = str(Path(sys.executable).with_name("celery"))
    log = open(root / "worker.log", "wb")
    worker = subprocess.Popen(
        [celery, "-A", "config", "worker", "-Q", queue, "-c", "1", "--pool=solo", "--loglevel=WARNING",
         "--without-gossip", "--without-mingle", "--hostname", f"{queue}@%h"],
        cwd=REPO, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT,
    )
    cpu_before = _children_cpu()
    started = time.monotonic()
    out = StringIO()
    try:
        call_command("run_pipeline", args.pipeline, "--dataset", "bench", "--train-split", "train", "--eval-split", "dev",
                     "--preset", args.preset, "--wait", "--json", stdout=out)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 1)
    wall = time.monotonic() - started
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    log.close()
    cpu = _children_cpu() - cpu_before
    report = json.loads(out.getvalue())

    print(f"\npipeline {args.pipeline} --preset {args.preset}: {report['status']} (exit {status})")
    print(f"  wall time  {wall:7.1f} s   (one worker, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    print(f"  CPU time   {cpu:7.1f} s   (worker and every trainer it started)")
    print(f"\n{'stage':<8} {'kind':<18} {'status':<10} {'queued->done':>12} {'trainer':>9}   learning curve (first -> last)")
    for entry in report["runs"]:
        run = TrainingRun.objects.get(pk=entry["id"])
        total = (run.finished_at - run.created_at).total_seconds() if run.finished_at else float("nan")
        own = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else float("nan")
        curves = []
        for key in CURVES.get(run.kind, ()):
            values = list(RunMetric.objects.filter(run=run, key=key).order_by("step").values_list("value", flat=True))
            if values:
                curves.append(f"{key} {values[0]:.3f} -> {values[-1]:.3f} ({len(values)} points)")
        print(f"{entry['stage']:<8} {run.kind:<18} {run.status:<10} {total:>10.1f} s {own:>7.1f} s   {'; '.join(curves)}")
    if status:
        print((root / "worker.log").read_text(errors="replace")[-3000:])
        print(report.get("error", ""))
    scratch.cleanup()
    sys.exit(status)


if __name__ == "__main__":
    main()
