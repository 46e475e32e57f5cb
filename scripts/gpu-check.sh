#!/usr/bin/env bash
# GPU check for a CUDA machine WITHOUT network (e.g. one H200, 16 cores): uses the repository's built JS (lib/**.js,
# test/**.js, bench/**.js — run `npx tsc -p .` before copying the tree) and the node_modules carried over, compiles
# ONLY the native addon against the machine's CUDA libtorch (the Python torch there), runs the golden-fixture tests
# and the benches, and writes everything to one folder: $OUT if set, else ./gpu-check-out. Whole run ≤ 8 minutes.
#
#   bash scripts/gpu-check.sh                    on the CUDA machine
#   GPU_CHECK_DRY_RUN=1 bash scripts/gpu-check.sh  here: the non-CUDA steps on CPU with an existing addon
#                                                  ($CTCLIP_ADDON, else build-perf/ or build/), nothing compiled
#
# What runs (everything under the 8-minute budget; each step is capped by what is left):
#   build           the addon against the machine's libtorch (build-cuda/)
#   CUDA, when libtorch sees a GPU (skipped, with a SKIP line each, in a dry run or without CUDA):
#     fixture-tests-cuda   the golden-fixture and device tests with the model on cuda:0 (CTCLIP_TEST_DEVICE=cuda:0;
#                          the tolerances are the CPU ones)
#     bench-full-bf16-b4   the `full` preset (configs/base_config.yaml's model) in bf16 at batch 4 on cuda:0
#     bench-full-bf16-bN   the largest batch that fits: 6, 8, 11, 16, 24, 32, 48 … until OUT_OF_MEMORY or the
#                          budget; GPU memory sampled every 200 ms (nvidia-smi) and the peak reported per batch
#     reference-full-bf16  with $CTCLIP_REFERENCE_DIR set (a CT-CLIP checkout + vector-quantize-pytorch 1.1.2, and
#                          einops/beartype/transformers in the machine's Python): the reference Python step and ours
#                          side by side (bench/reference.ts), `full`, bf16, batch 4, cuda, 2 interleaved pairs
#     bench-nccl           with more than one GPU: the 2-rank data-parallel bench on cuda:<LOCAL_RANK> with NCCL
#   CPU: the fixture tests and the `mid`/`large` train-step benches with all cores (what is left of the budget).
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-$root/gpu-check-out}"
mkdir -p "$out"
dry="${GPU_CHECK_DRY_RUN:-0}"
budget_s="${GPU_CHECK_BUDGET_S:-480}" # 8 minutes for everything
start_s=$(date +%s)
summary="$out/summary.txt"
: >"$summary"

log() { echo "[gpu-check] $*" | tee -a "$summary"; }
left() { echo $((budget_s - ($(date +%s) - start_s))); }
# step NAME SECONDS CMD...: runs CMD under `timeout` (capped by what is left of the budget), output to $out/NAME.log
step() {
  local name="$1" secs="$2"
  shift 2
  local rem
  rem=$(left)
  if [ "$rem" -le 5 ]; then
    log "SKIP $name: the ${budget_s}s budget is spent"
    return 124
  fi
  [ "$secs" -gt "$rem" ] && secs="$rem"
  log "RUN  $name (limit ${secs}s)"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=10 "$secs" "$@" >"$out/$name.log" 2>&1
  rc=$?
  log "     $name: exit $rc after $(($(date +%s) - t0))s (log: $name.log)"
  return $rc
}

log "ctclip gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) dry_run=$dry out=$out"
log "node $(node --version); $(nproc) CPUs"

# 1. The device.
gpus=0
if [ "$dry" != "1" ]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    log "nvidia-smi: $gpus GPU(s): $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | paste -sd ';' -)"
  else
    log "nvidia-smi not found: no NVIDIA driver visible"
  fi
fi

# 2. The native addon against the machine's libtorch (the JS is used as carried over).
if [ ! -f lib/index.js ] || [ ! -d node_modules ]; then
  log "FAIL: lib/index.js or node_modules missing — build the JS (npx tsc -p .) and carry node_modules over"
  exit 1
fi
if [ "$dry" = "1" ]; then
  addon="${CTCLIP_ADDON:-}"
  if [ -z "$addon" ]; then
    for d in build-perf build; do
      [ -f "$root/$d/Release/ctclip.node" ] && addon="$root/$d/Release/ctclip.node" && break
    done
  fi
  [ -n "$addon" ] || { log "FAIL: dry run needs a built addon (CTCLIP_ADDON or build/Release/ctclip.node)"; exit 1; }
  log "dry run: using $addon, no native build"
else
  if [ -z "${LIBTORCH:-}" ]; then
    LIBTORCH=$(python -c 'import torch,os;print(os.path.dirname(torch.__file__))' 2>/dev/null || python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))' 2>/dev/null || true)
    export LIBTORCH
  fi
  log "LIBTORCH=${LIBTORCH:-<not found>}"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  if ! step build-native 300 node scripts/build-native.js --out build-cuda; then
    log "FAIL: the native build against CUDA libtorch failed (see build-native.log)"
    exit 1
  fi
  addon="$root/build-cuda/Release/ctclip.node"
fi
export CTCLIP_ADDON="$addon"

step build-info 30 node -e "
const a = require('./lib/native').loadAddon();
const i = a.buildInfo();
console.log(JSON.stringify(i, null, 2));
require('fs').writeFileSync(process.argv[1], JSON.stringify(i, null, 2));
" "$out/build-info.json"
cuda=$(node -e "try{const i=require(process.argv[1]);console.log(i.cudaAvailable?i.cudaDeviceCount:0)}catch(e){console.log(0)}" "$out/build-info.json")
log "addon: CUDA available to libtorch: $cuda device(s)"

# 3. CUDA: the model on the GPU (needs device placement: ctclipToDevice).
have_to_device=0
node -e "process.exit(require('./lib/native').loadAddon().ctclipToDevice ? 0 : 1)" >/dev/null 2>&1 && have_to_device=1
cuda_steps=(fixture-tests-cuda bench-full-bf16-b4 reference-full-bf16 bench-full-bf16-largest bench-nccl)
# sample_start NAME / sample_stop NAME: GPU memory used (MiB per GPU) every 200 ms into $out/NAME.mem; the peak is the
# largest sample of any GPU
sampler_pid=""
sample_start() {
  sampler_pid=""
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/$1.mem" 2>/dev/null &
  sampler_pid=$!
}
sample_stop() {
  if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null; fi
  sampler_pid=""
  local peak
  peak=$(sort -n "$out/$1.mem" 2>/dev/null | tail -1)
  echo "${peak:-?}"
}
if [ "$cuda" -gt 0 ] 2>/dev/null && [ "$have_to_device" = 1 ]; then
  cuda_tests=(test/native/ctclip-fixtures.test.js test/native/device.test.js)
  step fixture-tests-cuda 120 env CTCLIP_TEST_DEVICE=cuda:0 npx mocha --reporter dot "${cuda_tests[@]}" ||
    log "FAIL: fixture tests on cuda:0 (see fixture-tests-cuda.log)"
  full_args=(--preset full --device cuda:0 --precision bf16 --threads "$(nproc)" --iters 3 --warmup 1 --json)
  sample_start bench-full-bf16-b4
  step bench-full-bf16-b4 150 node bench/ctclip.js "${full_args[@]}" --batch 4
  rc=$?
  log "     bench-full-bf16-b4: exit $rc, peak GPU memory $(sample_stop bench-full-bf16-b4) MiB (nvidia-smi, 200 ms samples)"
  cp "$out/bench-full-bf16-b4.log" "$out/bench-full-bf16-b4.json" 2>/dev/null || true
  if [ -n "${CTCLIP_REFERENCE_DIR:-}" ]; then
    py=$(command -v python || command -v python3)
    step reference-full-bf16 180 env CTCLIP_PYTHON="$py" CTCLIP_ADDON_TORCH2="$addon" node bench/run.js --only reference \
      --presets full --device cuda --precision bf16 --threads "$(nproc)" --pairs 2 ||
      log "FAIL: side-by-side reference on cuda (see reference-full-bf16.log)"
    grep -E '^  full:|note:' "$out/reference-full-bf16.log" | tee -a "$summary"
  else
    log "SKIP reference-full-bf16: CTCLIP_REFERENCE_DIR is not set (the public CT-CLIP code is not part of this repository)"
  fi
  largest=""
  if [ "$rc" -eq 0 ]; then
    largest=4
    for b in 6 8 11 16 24 32 48 64; do
      [ "$(left)" -le 30 ] && { log "largest-batch search: budget nearly spent, stopping before batch $b"; break; }
      sample_start "bench-full-bf16-b$b"
      step "bench-full-bf16-b$b" 90 node bench/ctclip.js "${full_args[@]}" --batch "$b"
      rc=$?
      log "     bench-full-bf16-b$b: exit $rc, peak GPU memory $(sample_stop "bench-full-bf16-b$b") MiB"
      if [ "$rc" -ne 0 ]; then
        if grep -q 'OUT_OF_MEMORY\|out of memory' "$out/bench-full-bf16-b$b.log" 2>/dev/null; then
          log "largest-batch search: batch $b is out of memory"
        else
          log "largest-batch search: batch $b failed (exit $rc, not OOM; see bench-full-bf16-b$b.log)"
        fi
        break
      fi
      largest=$b
    done
  fi
  log "RESULT largest full bf16 batch that ran on cuda:0: ${largest:-none}"
  if [ "$gpus" -gt 1 ] 2>/dev/null; then
    step bench-nccl 150 node bench/distributed.js --preset large --device cuda --iters 3 --warmup 1 --json ||
      log "FAIL: 2-rank NCCL bench (see bench-nccl.log)"
  else
    log "SKIP bench-nccl: needs more than one GPU ($gpus visible)"
  fi
else
  if [ "$have_to_device" != 1 ]; then why="the addon has no ctclipToDevice (device placement)"
  elif [ "$dry" = "1" ]; then why="dry run"
  else why="libtorch sees no CUDA device"; fi
  for s in "${cuda_steps[@]}"; do log "SKIP $s: $why"; done
fi

# 4. CPU: golden-fixture and variant tests, then the train-step benches (what is left of the budget).
tests=(test/native/ctvit-fixtures.test.js test/native/ctclip-fixtures.test.js test/native/ctvit-variants.test.js)
step fixture-tests 150 npx mocha --reporter dot "${tests[@]}" || log "FAIL: fixture tests (see fixture-tests.log)"
threads=$(nproc)
[ "$dry" = "1" ] && bench_args=(--iters 2 --warmup 1) || bench_args=(--iters 5 --warmup 2)
for preset in mid large; do
  step "bench-$preset-cpu" 90 node bench/ctclip.js --preset "$preset" --threads "$threads" "${bench_args[@]}" --json
  cp "$out/bench-$preset-cpu.log" "$out/bench-$preset-cpu.json" 2>/dev/null || true
done

log "done in $(($(date +%s) - start_s))s; results in $out"
