/**
 * The package root (lib/index.ts): the names the README and the library users rely on are exported, the aliases
 * are the functions they alias, importing never loads the native addon, and ERROR_CODES lists the codes.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as api from '../../lib/index';
import { planRun } from '../../lib/plan';
import { bootstrapMetrics } from '../../lib/metrics/bootstrap';

describe('public API (lib/index.ts)', () => {
  it('exports the library surface by name', () => {
    for (const name of [
      'loadConfig',
      'parseConfig',
      'ConfigSchema',
      'planRun',
      'planSchedule',
      'formatPlan',
      'lrAt',
      'lrFactor',
      'Tokenizer',
      'CTClip',
      'createModel',
      'loadModel',
      'saveModel',
      'encodeTexts',
      'zeroShot',
      'encodePrompts',
      'scoreVolumes',
      'Trainer',
      'CheckpointManager',
      'launch',
      'ProcessGroup',
      'distEnvFrom',
      'CtclipError',
      'hasCode',
      'ERROR_CODES',
      'Rng',
      'tensorFromBuffer',
      'readTensor',
      'addonAvailable',
      'buildInfo',
      'indexShards',
      'openIndex',
      'SampleReader',
      'TarWriter',
      'configKeyReference',
      'renderConfigReference',
    ]) {
      expect((api as Record<string, unknown>)[name], name).to.not.equal(undefined);
    }
    for (const ns of ['data', 'metrics', 'evaluation', 'weights', 'checkpoint'] as const)
      expect(api[ns], ns).to.be.an('object');
  });

  it('planSchedule is planRun, and the metrics aliases are the scikit-learn-equivalent functions', () => {
    expect(api.planSchedule).to.equal(planRun);
    expect(api.metrics.auroc).to.equal(api.metrics.rocAucScore);
    expect(api.metrics.auprc).to.equal(api.metrics.averagePrecisionScore);
    expect(api.metrics.bootstrap).to.equal(bootstrapMetrics);
    // Positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered → 0.75.
    expect(api.metrics.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).to.equal(0.75);
  });

  it('ERROR_CODES are the codes of lib/errors.ts', () => {
    const src = fs.readFileSync(path.resolve(__dirname, '../../lib/errors.ts'), 'utf8');
    const union = src.slice(
      src.indexOf('export type ErrorCode'),
      src.indexOf(';', src.indexOf('export type ErrorCode')),
    );
    const codes = [...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]);
    expect([...api.ERROR_CODES].sort()).to.deep.equal(codes.sort());
  });

  it('importing the package does not load the native addon', () => {
    // Other suites in the same mocha process may have loaded it: check in a fresh process.
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        "require('./lib/index.js'); process.stdout.write(String(Object.keys(require.cache).filter((k) => k.endsWith('.node')).length))",
      ],
      {
        cwd: path.resolve(__dirname, '../..'),
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('0');
  });
});
