#!/usr/bin/env bash
# `npm run demo`: the product's main job on an embedded default, end to end on a CPU, with nothing downloaded.
# It writes a small synthetic CT-RATE-like dataset, indexes it, shows the native runtime and the run plan for
# the debug config. (Training, validation and the report join this script as those issues land.)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CTCLIP_DEMO_DIR:-demo-run}"
export CTCLIP_DEBUG_DATA="$out/data" CTCLIP_RUNS="$out/runs"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "native runtime (ctclip info)"
node lib/cli.js info

step "synthetic dataset: 64 training + 16 validation volumes (32×32×12), reports and 18 labels"
node lib/cli.js synth --out "$out/data/train" --samples 64 --shape 32,32,12 --shards 4 --seed 1 --quiet
node lib/cli.js synth --out "$out/data/valid" --samples 16 --shape 32,32,12 --shards 1 --seed 2 --quiet

step "index the shards (headers only; corrupt samples would be listed and excluded)"
node lib/cli.js shards index "$out/data/train/shard-{000000..000003}.tar" --labels-csv "$out/data/train/labels.csv"

step "run plan for configs/debug_config.yaml"
node lib/cli.js plan --config configs/debug_config.yaml

step "run plan for the full-size base config with 29,500 samples on 8 ranks"
node lib/cli.js plan --config configs/base_config.yaml --samples 29500 --world-size 8

echo
echo "demo finished: data in $out/data"
