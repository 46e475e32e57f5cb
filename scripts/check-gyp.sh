#!/usr/bin/env bash
# Smoke-checks the node-gyp build path (binding.gyp) without a second full build: configure with node-gyp in a
# scratch copy (node-gyp insists on ./build, which cmake-js owns here), then compile ONE translation unit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tu="${1:-native/napi/build_info.cc}"  # includes torch/torch.h: checks the include/define setup
scratch="$(mktemp -d -t ctclip-gyp-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
cp -r "$root/binding.gyp" "$root/package.json" "$root/native" "$root/scripts" "$scratch/"
ln -s "$root/node_modules" "$scratch/node_modules"
cd "$scratch"
# Use the headers installed with Node (never download them).
nodedir="$(node -p "require('path').resolve(process.execPath, '..', '..')")"
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
  echo "node-gyp smoke: Node's own headers are not installed under $nodedir/include/node" >&2
  exit 1
fi
node "$root/node_modules/node-gyp/bin/node-gyp.js" configure --nodedir="$nodedir" >gyp.log 2>&1 || { cat gyp.log >&2; exit 1; }
obj="Release/obj.target/ctclip/${tu%.cc}.o"
make -C build "$obj" >/dev/null
test -s "build/$obj"
echo "node-gyp: configured and compiled $tu OK"
