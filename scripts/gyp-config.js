// Prints one piece of build configuration for binding.gyp (node-gyp path; cmake-js is the primary build).
//   node scripts/gyp-config.js sources|include_dirs|libraries|ldflags|defines|cflags
'use strict';
const fs = require('fs');
const path = require('path');
const { findLibtorch, HOW_TO } = require('./libtorch');

const root = path.resolve(__dirname, '..');
const what = process.argv[2];
// The defines, warnings and C++ standard rule CMakeLists.txt reads too (one list, so the two builds cannot drift).
const flags = JSON.parse(fs.readFileSync(path.join(root, 'native', 'build-flags.json'), 'utf8'));

function sources(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(p));
    else if (entry.name.endsWith('.cc')) out.push(path.relative(root, p));
  }
  return out.sort();
}

if (what === 'sources') {
  console.log(sources(path.join(root, 'native')).join(' '));
  process.exit(0);
}

const torch = findLibtorch();
if (!torch) {
  console.error(HOW_TO);
  process.exit(1);
}
// The header that defines TORCH_VERSION_MAJOR: newer libtorch keeps it in torch/headeronly/version.h, which
// torch/version.h only includes.
const versionHeader = ['torch/headeronly/version.h', 'torch/version.h', 'torch/csrc/api/include/torch/version.h']
  .flatMap((rel) => torch.includeDirs.map((d) => path.join(d, ...rel.split('/'))))
  .find((p) => fs.existsSync(p) && /TORCH_VERSION_MAJOR \d/.test(fs.readFileSync(p, 'utf8')));
const text = versionHeader ? fs.readFileSync(versionHeader, 'utf8') : '';
const major = Number((/TORCH_VERSION_MAJOR (\d+)/.exec(text) || [])[1] || 0);
const minor = Number((/TORCH_VERSION_MINOR (\d+)/.exec(text) || [])[1] || 0);
const [cxx20Major, cxx20Minor] = flags.cxx20FromLibtorch.split('.').map(Number);
const cxx20 = major > cxx20Major || (major === cxx20Major && minor >= cxx20Minor);
const cxx = `c++${cxx20 ? 20 : flags.cxxStandard}`;
const haveGloo =
  torch.includeDirs.some((d) =>
    fs.existsSync(path.join(d, 'torch', 'csrc', 'distributed', 'c10d', 'ProcessGroupGloo.hpp')),
  ) && torch.includeDirs.some((d) => fs.existsSync(path.join(d, 'gloo')));

switch (what) {
  case 'include_dirs':
    console.log([...torch.includeDirs, path.join(root, 'native'), require('node-addon-api').include_dir].join(' '));
    break;
  case 'libraries':
    console.log(['-ltorch', '-ltorch_cpu', '-lc10'].join(' '));
    break;
  case 'ldflags':
    // -fopenmp: the same libgomp libtorch loads (see CMakeLists.txt: our at::parallel_for kernels need _OPENMP).
    console.log([`-L${torch.libDir}`, `-Wl,-rpath,${torch.libDir}`, '-Wl,--disable-new-dtags', '-fopenmp'].join(' '));
    break;
  case 'defines':
    // `<!@(...)` splits on whitespace and gyp drops the quotes of string defines, so only plain tokens here
    // (the cmake-js build also records the libtorch folder and source as strings).
    console.log(
      [
        ...flags.napiDefines,
        'CTCLIP_NODE_GYP_BUILD=1',
        ...(haveGloo ? ['CTCLIP_HAVE_GLOO=1', 'USE_DISTRIBUTED', 'USE_C10D_GLOO'] : []),
      ].join(' '),
    );
    break;
  case 'cflags':
    console.log([`-std=${cxx}`, '-D_GLIBCXX_USE_CXX11_ABI=1', '-fexceptions', ...flags.warnings, '-fopenmp'].join(' '));
    break;
  default:
    console.error(`unknown item '${what}'`);
    process.exit(2);
}
