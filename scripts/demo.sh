#!/usr/bin/env bash
# `npm run demo`: the product's main job on an embedded default, end to end on a CPU, with nothing downloaded.
# It writes a small synthetic CT-RATE-like dataset, indexes it, shows the native runtime and the run plan, then
# trains the debug config (configs/debug_config.yaml) with zero-shot validation, checkpoints and the HTML report.
#
#   CTCLIP_DEMO_DIR=DIR     where everything goes (default demo-run)
#   CTCLIP_DEMO_QUICK=1     a shortened demo for CI: less data, a few dozen steps (still validates and reports)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CTCLIP_DEMO_DIR:-demo-run}"
export CTCLIP_DEBUG_DATA="$out/data" CTCLIP_RUNS="$out/runs"
quick="${CTCLIP_DEMO_QUICK:-}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Four findings whose phantom structures are several voxels large at 32×32×12 (calcifications, metal or a 5 mm
# nodule are below one voxel at this size, so no model could see them); the reports carry the prompt sentences
# "<finding> is present." / "<finding> is not present.", so zero-shot classification is learnable.
classes="Lung opacity,Atelectasis,Pleural effusion,Cardiomegaly"
if [[ -n "$quick" ]]; then n_train=128; n_val=100; train_args=(--set training.max_steps=30 --set validation.eval_every_n_steps=15 --set training.save_every_n_steps=15)
else n_train=1024; n_val=200; train_args=(); fi

step "native runtime (ctclip info)"
node lib/cli.js info

step "synthetic dataset: $n_train training + $n_val validation volumes (32×32×12), reports and labels of 4 findings"
node lib/cli.js synth --out "$out/data/train" --samples "$n_train" --shape 32,32,12 --shards 4 --seed 1 --quiet --classes "$classes"
node lib/cli.js synth --out "$out/data/valid" --samples "$n_val" --shape 32,32,12 --shards 1 --seed 2 --quiet --classes "$classes"

step "index the shards (headers only; corrupt samples would be listed and excluded)"
node lib/cli.js shards index "$out/data/train/shard-{000000..000003}.tar" --labels-csv "$out/data/train/labels.csv"

step "run plan for configs/debug_config.yaml"
node lib/cli.js plan --config configs/debug_config.yaml

step "run plan for the full-size base config with 29,500 samples on 8 ranks"
node lib/cli.js plan --config configs/base_config.yaml --samples 29500 --world-size 8

step "train the debug config on the CPU: progress, zero-shot validation, checkpoints, report"
rm -rf "$out/runs/ctclip-debug"   # a fresh run each time (use --resume latest to continue one)
start=$(date +%s)
node lib/train.js --config configs/debug_config.yaml "${train_args[@]}"
end=$(date +%s)

run="$out/runs/ctclip-debug"
echo
echo "demo finished in $((end - start)) s of training:"
echo "  data:         $out/data (shards, ctclip-index.json, reports/labels CSVs, vocab.txt)"
echo "  run:          $run"
echo "  checkpoints:  $(cd "$run" && ls -d ckpt-step* | tr '\n' ' ')(latest.json, best.json)"
echo "  metrics:      $run/metrics.jsonl"
echo "  report:       $run/report.html"
echo "  continue:     node lib/train.js --config configs/debug_config.yaml --resume latest --set training.max_epochs=20"
