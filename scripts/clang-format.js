#!/usr/bin/env node
// Formats the C++ sources under native/ with the clang-format binary that the `clang-format` npm package ships
// (a pinned version, so every machine formats alike). `--check` reports files that differ and exits 1 instead.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const path = require('path');

const root = path.resolve(__dirname, '..');
const check = process.argv.includes('--check');
const files = execFileSync('git', ['ls-files', '--', 'native/*.cc', 'native/*.h', 'native/*.cu', 'native/*.cuh'], {
  cwd: root,
  encoding: 'utf8',
})
  .split('\n')
  .filter(Boolean);
const binary = path.join(path.dirname(require.resolve('clang-format/package.json')), 'index.js');
const args = check ? ['--dry-run', '--Werror', ...files] : ['-i', ...files];
const r = spawnSync(process.execPath, [binary, ...args], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  if (check) console.error('C++ formatting differs from .clang-format: run `npm run format` to fix.');
  process.exit(r.status ?? 1);
}
if (check) console.log(`clang-format: ${files.length} C++ files match .clang-format`);
