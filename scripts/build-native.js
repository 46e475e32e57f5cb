#!/usr/bin/env node
// Builds the native addon with cmake-js (CMakeLists.txt does the libtorch discovery and pinning).
//
//   node scripts/build-native.js              build; fail loudly when libtorch is missing
//   node scripts/build-native.js --if-libtorch  the `npm install` hook: build when libtorch can be found,
//                                             otherwise explain how to provide it and exit 0 (installs never
//                                             fail, and never run apt, for library consumers)
//   options: --debug, --out DIR (default build), --clean
'use strict';
const { spawnSync } = require('child_process');
const { findLibtorch, HOW_TO } = require('./libtorch');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const ifLibtorch = args.includes('--if-libtorch');
const outIdx = args.indexOf('--out');
const outDir = outIdx >= 0 ? args[outIdx + 1] : 'build';

const found = findLibtorch();
if (!found) {
  if (ifLibtorch) {
    console.log(`ctclip: skipping the native build.\n${HOW_TO}`);
    process.exit(0);
  }
  console.error(`ctclip: ${HOW_TO}`);
  process.exit(1);
}
if (!fs.existsSync(path.join(root, 'node_modules', 'cmake-js'))) {
  console.error('ctclip: cmake-js is not installed; run `npm install` first.');
  process.exit(1);
}

console.log(`ctclip: building the native addon against libtorch from ${found.source}`);
const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const cmd = [cmakeJs, args.includes('--clean') ? 'rebuild' : 'compile', '--out', outDir];
if (args.includes('--debug')) cmd.push('--debug');
const env = {
  ...process.env,
  CMAKE_BUILD_PARALLEL_LEVEL: process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(os.cpus().length),
};
const result = spawnSync(process.execPath, cmd, { cwd: root, stdio: 'inherit', env });
if (result.status !== 0) {
  console.error(`ctclip: the native build failed (exit ${result.status}). See the compiler output above.`);
  process.exit(result.status || 1);
}
