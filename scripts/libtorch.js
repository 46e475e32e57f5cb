// libtorch discovery shared by the build scripts (build-native.js, binding.gyp via gyp-config.js).
// Same order as CMakeLists.txt: env LIBTORCH / Torch_DIR → Python `torch` → system libtorch.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const SYSTEM_CMAKE_DIRS = [
  '/usr/lib/x86_64-linux-gnu/cmake/Torch',
  '/usr/lib/aarch64-linux-gnu/cmake/Torch',
  '/usr/share/cmake/Torch',
  '/usr/local/share/cmake/Torch',
  '/usr/lib/cmake/Torch',
];

/**
 * Returns { source, cmakeDir, prefix, includeDirs, libDir } for the libtorch that would be used, or null.
 * `prefix` holds include/ and lib/ for LIBTORCH and pip installs; Debian splits them across /usr.
 */
function findLibtorch(env = process.env) {
  const pinned = (source, cmakeDir) => {
    const prefix = path.resolve(cmakeDir, '..', '..', '..');
    return {
      source,
      cmakeDir,
      prefix,
      includeDirs: [path.join(prefix, 'include'), path.join(prefix, 'include', 'torch', 'csrc', 'api', 'include')],
      libDir: path.join(prefix, 'lib'),
    };
  };
  if (env.LIBTORCH) return pinned(`env LIBTORCH=${env.LIBTORCH}`, path.join(env.LIBTORCH, 'share', 'cmake', 'Torch'));
  if (env.Torch_DIR) return pinned(`env Torch_DIR=${env.Torch_DIR}`, env.Torch_DIR);
  const py = spawnSync(
    env.CTCLIP_PYTHON || 'python3',
    ['-c', 'import torch, torch.utils; print(torch.utils.cmake_prefix_path)'],
    { encoding: 'utf8', env },
  );
  if (py.status === 0 && py.stdout.trim()) {
    const cmakeDir = path.join(py.stdout.trim(), 'Torch');
    if (fs.existsSync(path.join(cmakeDir, 'TorchConfig.cmake')))
      return pinned(`python torch (${py.stdout.trim()})`, cmakeDir);
  }
  for (const dir of SYSTEM_CMAKE_DIRS) {
    if (!fs.existsSync(path.join(dir, 'TorchConfig.cmake'))) continue;
    const libDir = path.resolve(dir, '..', '..'); // e.g. /usr/lib/x86_64-linux-gnu
    return {
      source: `system (${dir})`,
      cmakeDir: dir,
      prefix: '/usr',
      includeDirs: ['/usr/include', '/usr/include/torch/csrc/api/include'],
      libDir,
    };
  }
  return null;
}

const HOW_TO = [
  'libtorch was not found. Provide it in one of three ways, then run `npm run build:native`:',
  '  1. export LIBTORCH=/path/to/libtorch        (an unpacked libtorch; or Torch_DIR=<…/share/cmake/Torch>)',
  '  2. pip install torch                        (the Python package; its bundled libtorch is used)',
  '  3. apt-get install libtorch-dev libgloo-dev libopenblas0-pthread   (Debian/Ubuntu; `bash scripts/setup.sh` does it as root)',
].join('\n');

module.exports = { findLibtorch, HOW_TO };

// `node scripts/libtorch.js` prints the discovery result (used by setup.sh).
if (require.main === module) {
  const found = findLibtorch();
  if (!found) {
    console.error(HOW_TO);
    process.exit(1);
  }
  console.log(JSON.stringify(found));
}
