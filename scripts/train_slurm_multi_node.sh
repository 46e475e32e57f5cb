#!/usr/bin/env bash
# Multi-node training on SLURM: one task per node, each running the torchrun-style launcher (lib/commands/launch.ts) for
# all of that node's GPUs. Submit from the repository root (logs/ must exist for --output):
#
#   mkdir -p logs && sbatch scripts/train_slurm_multi_node.sh [extra train args ...]
#   CONFIG=configs/my.yaml sbatch --nodes=4 scripts/train_slurm_multi_node.sh --set training.max_steps=20000
#
#SBATCH --job-name=ctclip
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --output=logs/ctclip-%j.out
#
# Environment (read when the job starts; sbatch passes the submitting shell's environment by default):
#   CONFIG=FILE       training config (default configs/base_config.yaml of this checkout)
#   GPUS_PER_NODE=N   workers per node (default: SLURM_GPUS_ON_NODE, else `nvidia-smi -L` on the first node, else 1)
#   MASTER_ADDR=HOST  rank 0's node (default: the first host of `scontrol show hostnames "$SLURM_JOB_NODELIST"`)
#   MASTER_PORT=P     TCP port of rank 0's c10d store (default 29500 + SLURM_JOB_ID % 1000: jobs sharing a node
#                     rarely collide)
#   MAX_RESTARTS=K    per-node restarts after a failure, with --resume latest (default 0; see the guide: restarts
#                     are per node, the other nodes follow after distributed.timeout_minutes)
#   NODE=BIN          node binary (default: node on PATH of each node)
#   DRY_RUN=1         run nothing: for each task id 0..SLURM_NNODES-1, print the exact command that task would run
#
# NCCL (export before sbatch, or here; srun passes the environment to every task):
#   NCCL_DEBUG=INFO            log NCCL's ring/tree setup and the network it picked (first thing to do on a hang)
#   NCCL_SOCKET_IFNAME=ib0     the network interface for NCCL's bootstrap/sockets (e.g. ib0, eth0, ^lo,docker0);
#                              set it when nodes have several interfaces and NCCL picks an unroutable one
#   NCCL_IB_DISABLE=1          no InfiniBand (use TCP sockets): for clusters without IB, or to rule IB out
#   The c10d store (MASTER_ADDR:MASTER_PORT) must be reachable from every node: open that port in the firewall.
#
# Exit code: the first failing task's (srun): 0 ok · 1 a worker failed, no restarts left · 2 bad arguments
# · 130 SIGINT · 143 SIGTERM. Guide: scripts/MULTI_GPU_GUIDE.md.
set -euo pipefail
root="${CTCLIP_ROOT:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}}"
[[ -f "$root/lib/launch.js" ]] || root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

: "${SLURM_JOB_NODELIST:?not inside a SLURM allocation (SLURM_JOB_NODELIST is unset): submit with sbatch}"
: "${SLURM_NNODES:?SLURM_NNODES is unset}"

if [[ -z "${MASTER_ADDR:-}" ]]; then
  # the whole list first (no `| head -n 1`: with pipefail, scontrol's SIGPIPE would abort the script)
  hosts="$(scontrol show hostnames "$SLURM_JOB_NODELIST")"
  MASTER_ADDR="${hosts%%$'\n'*}"
fi
[[ -n "$MASTER_ADDR" ]] || { echo "train_slurm_multi_node.sh: could not determine MASTER_ADDR from '$SLURM_JOB_NODELIST'" >&2; exit 2; }
MASTER_PORT="${MASTER_PORT:-$((29500 + ${SLURM_JOB_ID:-0} % 1000))}"

if [[ -n "${GPUS_PER_NODE:-}" ]]; then
  NPROC_PER_NODE="$GPUS_PER_NODE"
elif [[ -n "${SLURM_GPUS_ON_NODE:-}" ]]; then
  NPROC_PER_NODE="$SLURM_GPUS_ON_NODE"
elif command -v nvidia-smi >/dev/null 2>&1; then
  NPROC_PER_NODE="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
fi
[[ "${NPROC_PER_NODE:-0}" -ge 1 ]] 2>/dev/null || NPROC_PER_NODE=1

export CTCLIP_ROOT="$root" NODE_BIN="${NODE:-node}" CONFIG="${CONFIG:-$root/configs/base_config.yaml}"
export MASTER_ADDR MASTER_PORT NPROC_PER_NODE MAX_RESTARTS="${MAX_RESTARTS:-0}"

echo "ctclip: ${SLURM_NNODES} node(s) × ${NPROC_PER_NODE} worker(s), master ${MASTER_ADDR}:${MASTER_PORT}, config ${CONFIG}" >&2

# Runs in EACH task: single-quoted, so $SLURM_NODEID / $SLURM_PROCID are that task's own values (expanding them
# once here would give every node rank 0, the reference script's bug).
# shellcheck disable=SC2016
TASK_CMD='set -euo pipefail
node_rank="${SLURM_NODEID:-$SLURM_PROCID}"
set -- "$NODE_BIN" "$CTCLIP_ROOT/lib/launch.js" \
  --nnodes "$SLURM_NNODES" --node_rank "$node_rank" --nproc_per_node "$NPROC_PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" --max_restarts "$MAX_RESTARTS" \
  --run_id "${SLURM_JOB_ID:-none}" \
  "$CTCLIP_ROOT/lib/train.js" --config "$CONFIG" "$@"
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf "task %s: " "$SLURM_PROCID"; printf "%q " "$@"; printf "\n"
else
  exec "$@"
fi'

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  for ((task = 0; task < SLURM_NNODES; task++)); do
    (
      export SLURM_PROCID="$task" SLURM_NODEID="$task" SLURM_LOCALID=0
      "${BASH:-bash}" -c "$TASK_CMD" ctclip-task "$@"
    )
  done
  exit 0
fi
exec srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "$TASK_CMD" ctclip-task "$@"
