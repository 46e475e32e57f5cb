#!/usr/bin/env node
/**
 * `npm run docs:config`: regenerates docs/configuration.md from the zod schema (lib/config/schema.ts) through
 * lib/config/reference.ts (compile first: `npm run docs:config` runs tsc). `--check` only compares and exits 1
 * when the file is out of date. Keys without a `.describe()` text are listed on stderr.
 */
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const { renderConfigReference, missingDescriptions } = require(path.join(root, 'lib/config/reference.js'));
const target = path.join(root, 'docs/configuration.md');
const text = renderConfigReference();
const check = process.argv.includes('--check');
const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : null;

const missing = missingDescriptions();
if (missing.length) process.stderr.write(`keys without a description in lib/config/schema.ts: ${missing.join(', ')}\n`);

if (check) {
  if (current === text) {
    process.stdout.write('docs/configuration.md is up to date\n');
  } else {
    process.stderr.write('docs/configuration.md is out of date: run `npm run docs:config`\n');
    process.exitCode = 1;
  }
} else if (current === text) {
  process.stdout.write('docs/configuration.md is up to date\n');
} else {
  fs.writeFileSync(target, text);
  process.stdout.write(`wrote docs/configuration.md\n`);
}
