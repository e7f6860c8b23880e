#!/usr/bin/env bash
# GPU check (issue 14): a few PPO steps with the paper preset's shapes (T5-large policy and
# reference, t5-base value model, three longformer-base reward models, random weights, no hub)
# and a few reward-model steps, on one GPU; prints tokens/s, MFU, peak memory and the step-time
# split. Meant to finish in under 8 minutes on an 80 GB A100 / H100 / H200.
#
#   benchmarks/gpu_check.sh                     # the check
#   benchmarks/gpu_check.sh --checkpointing     # with gradient checkpointing (or --lora-r 16, --rm-dtype float32)
#   benchmarks/gpu_check.sh --cpu-smoke         # tiny sizes on a CPU: checks the script itself
#
# Extra arguments go to benchmarks/gpu_check.py. GPU_CHECK_TIMEOUT (seconds, default 480) bounds it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PYTHON" benchmarks/gpu_check.py "$@"
