#!/usr/bin/env bash
# Single-node multi-GPU (or multi-process CPU) training through the torchrun-style launcher (lib/commands/launch.ts):
#
#   scripts/train_multi_gpu.sh [NUM_GPUS] [extra train args ...]
#
#   NUM_GPUS        workers on this node; default: the GPUs that `nvidia-smi -L` lists (1 without nvidia-smi)
#   extra args      passed to lib/train.js after --config, e.g. --resume latest, --set training.max_steps=1000
#
# Environment:
#   CONFIG=FILE     training config (default configs/base_config.yaml of this checkout)
#   MAX_RESTARTS=K  restart all workers up to K times after a failure, with --resume latest (default 0)
#   MASTER_PORT=P   TCP port of rank 0's c10d store on this node (default 29500; change it when it is in use)
#   NODE=BIN        node binary (default: node on PATH)
#   DRY_RUN=1       print the command instead of running it
#   CTCLIP_THREADS  threads per worker (default: CPUs / NUM_GPUS, chosen by the launcher)
#
# Runs: node lib/launch.js --nproc_per_node N [--max_restarts K] [--master_port P] lib/train.js --config CONFIG ...
# Exit code: the launcher's (0 ok · 1 a worker failed, no restarts left · 2 bad arguments · 130 SIGINT · 143 SIGTERM).
# Guide: scripts/MULTI_GPU_GUIDE.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  nproc="$1"
  shift
elif command -v nvidia-smi >/dev/null 2>&1; then
  nproc="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
else
  nproc=1
fi
if [[ -z "$nproc" || "$nproc" -lt 1 ]]; then
  echo "train_multi_gpu.sh: no GPU found by nvidia-smi -L; starting 1 worker" >&2
  nproc=1
fi

cmd=("${NODE:-node}" "$root/lib/launch.js" --nproc_per_node "$nproc")
[[ -n "${MAX_RESTARTS:-}" ]] && cmd+=(--max_restarts "$MAX_RESTARTS")
[[ -n "${MASTER_PORT:-}" ]] && cmd+=(--master_port "$MASTER_PORT")
cmd+=("$root/lib/train.js" --config "${CONFIG:-$root/configs/base_config.yaml}" "$@")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
  exit 0
fi
exec "${cmd[@]}"
