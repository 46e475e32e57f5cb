#!/usr/bin/env bash
# Prepares this machine for `npm test` and `npm run demo` (both call it first):
#   1. libtorch: found through LIBTORCH / Torch_DIR, the Python torch package, or the system. When none is found
#      on Debian/Ubuntu as root, installs libtorch-dev libgloo-dev libopenblas0-pthread with apt-get (and says
#      so); otherwise stops with the three ways to provide libtorch. (`npm install` alone never runs apt.)
#   2. node modules: `npm ci` when node_modules is missing or older than package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libtorch-dev libgloo-dev libopenblas0-pthread)

can_apt() { [ -f /etc/debian_version ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  echo "ctclip setup: installing Debian packages: $* (apt-get, as root)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || apt-get update -q
  apt-get install -y -q --no-install-recommends "$@"
}

if ! torch_json="$(node scripts/libtorch.js 2>/dev/null)"; then
  if can_apt; then
    echo "ctclip setup: no libtorch found (LIBTORCH, Torch_DIR, python torch, system)."
    apt_install "${APT_PACKAGES[@]}"
    torch_json="$(node scripts/libtorch.js)"
  else
    node scripts/libtorch.js || true
    echo "ctclip setup: cannot install libtorch automatically here (needs Debian/Ubuntu and root)." >&2
    exit 1
  fi
fi
# The system libtorch also needs Gloo headers (distributed) and a BLAS at run time.
if [[ "$torch_json" == *'"source":"system'* ]] && can_apt; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
fi
echo "ctclip setup: libtorch from $(node -p "JSON.parse(process.argv[1]).source" "$torch_json")"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ctclip setup: installing node modules (npm ci)"
  npm ci --no-audit --no-fund
fi
