"""training/ml as a library: importing it does nothing to the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

IMPORT_EVERYTHING = """
import importlib, json, os, pkgutil, signal

environment = dict(os.environ)
handlers = {int(s): signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
import training.ml
names = sorted(m.name for m in pkgutil.iter_modules(training.ml.__path__))
for name in names:
    importlib.import_module(f"training.ml.{name}")
print(json.dumps({
    "modules": names,
    "environment": sorted(k for k in set(environment) | set(os.environ) if environment.get(k) != os.environ.get(k)),
    "handlers": sorted(s for s, h in handlers.items() if signal.getsignal(s) is not h),
}))
"""


def test_importing_every_ml_module_changes_no_environment_variable_or_signal_handler():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(REPO_ROOT)}, timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"ppo", "sft", "train_rm", "reward_models", "policy", "tiny", "loop", "checkpoints"} <= set(report["modules"])
    assert report["environment"] == []
    assert report["handlers"] == []
