import { expect } from 'chai';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { parseConfig } from '../../lib/config/load';
import { formatPlan, planRun } from '../../lib/plan';
import { epochGeometry, lrAt, lrFactor } from '../../lib/schedule';
import { repoRoot } from '../helpers/fixtures';

function cfg(over: Record<string, unknown> = {}) {
  const raw: Record<string, Record<string, unknown>> = { experiment: { name: 't' }, training: { warmup_steps: 1 } };
  for (const [k, v] of Object.entries(over)) {
    const [sec, key] = k.split('.');
    raw[sec] = { ...(raw[sec] ?? {}), [key]: v };
  }
  return parseConfig(raw);
}

describe('schedule: epoch geometry', function () {
  it('S = floor(N / (B·W·A)) and the remainder is dropped', function () {
    expect(epochGeometry({ samples: 29500, batchSize: 4, worldSize: 1, gradAccumSteps: 1 })).to.deep.equal({
      stepsPerEpoch: 7375,
      samplesPerStep: 4,
      samplesPerRankPerEpoch: 29500,
      droppedPerEpoch: 0,
    });
    // W = 2, A = 3: 16 per rank micro-batch... 1000 / (4·2·3) = 41 rem 16
    expect(epochGeometry({ samples: 1000, batchSize: 4, worldSize: 2, gradAccumSteps: 3 })).to.deep.equal({
      stepsPerEpoch: 41,
      samplesPerStep: 24,
      samplesPerRankPerEpoch: 41 * 3 * 4,
      droppedPerEpoch: 16,
    });
    expect(epochGeometry({ samples: 7463, batchSize: 16, worldSize: 1, gradAccumSteps: 1 }).stepsPerEpoch).to.equal(
      466,
    );
  });

  it('rejects S = 0 and bad inputs with a clear PLAN_ERROR', function () {
    expect(() => epochGeometry({ samples: 7, batchSize: 4, worldSize: 2, gradAccumSteps: 1 }))
      .to.throw(
        /7 samples, fewer than one optimizer step needs \(batch_size 4 × world size 2 × gradient_accumulation_steps 1 = 8\)/,
      )
      .with.property('code', 'PLAN_ERROR');
    expect(() => epochGeometry({ samples: 10, batchSize: 0, worldSize: 1, gradAccumSteps: 1 })).to.throw(
      /data.batch_size must be an integer >= 1/,
    );
    expect(() => epochGeometry({ samples: -1, batchSize: 1, worldSize: 1, gradAccumSteps: 1 })).to.throw(
      /non-negative integer/,
    );
    expect(epochGeometry({ samples: 8, batchSize: 4, worldSize: 2, gradAccumSteps: 1 }).stepsPerEpoch).to.equal(1);
  });
});

describe('schedule: warmup + cosine', function () {
  const p = { warmupSteps: 10, maxSteps: 110, minLrRatio: 0.01 };

  it('warms up linearly with f(k) = k / W (step 1 already learns)', function () {
    expect(lrFactor(1, p)).to.equal(0.1);
    expect(lrFactor(5, p)).to.equal(0.5);
    expect(lrFactor(10, p)).to.equal(1);
  });

  it('follows the cosine from the peak to min_lr_ratio at max_steps', function () {
    expect(lrFactor(11, p)).to.be.closeTo(0.01 + 0.99 * 0.5 * (1 + Math.cos(Math.PI / 100)), 1e-15);
    expect(lrFactor(60, p)).to.be.closeTo(0.01 + 0.99 * 0.5, 1e-15); // halfway
    expect(lrFactor(110, p)).to.be.closeTo(0.01, 1e-15);
    for (let k = 11; k < 110; k++) expect(lrFactor(k + 1, p)).to.be.at.most(lrFactor(k, p));
  });

  it('clamps the progress past max_steps (never rises again)', function () {
    for (const k of [111, 150, 1000]) expect(lrFactor(k, p)).to.be.closeTo(0.01, 1e-15);
  });

  it('handles no warmup, warmup = max_steps and T = 1', function () {
    const q = { warmupSteps: 0, maxSteps: 4, minLrRatio: 0 };
    expect([1, 2, 3, 4].map((k) => lrFactor(k, q))).to.deep.equal(
      [0.5 * (1 + Math.cos(Math.PI / 4)), 0.5, 0.5 * (1 + Math.cos((3 * Math.PI) / 4)), 0].map((v) => v),
    );
    expect(lrFactor(4, { warmupSteps: 4, maxSteps: 4, minLrRatio: 0.1 })).to.equal(1);
    expect(lrFactor(5, { warmupSteps: 4, maxSteps: 4, minLrRatio: 0.1 })).to.be.closeTo(0.1, 1e-15);
    expect(lrFactor(1, { warmupSteps: 0, maxSteps: 1, minLrRatio: 0.2 })).to.be.closeTo(0.2, 1e-15);
    expect(lrAt(5, 2e-4, p)).to.be.closeTo(1e-4, 1e-20);
    expect(() => lrFactor(0, p)).to.throw(/1-based/);
  });
});

describe('plan: derived quantities', function () {
  it('reproduces the documented plan for 29500 samples on the base config', function () {
    const { config } = loadConfig(path.join(repoRoot, 'configs', 'base_config.yaml'), { env: {} });
    const plan = planRun(config, { samples: 29500 });
    expect(plan).to.include({
      stepsPerEpoch: 7375,
      maxSteps: 147500,
      warmupSteps: 1000,
      evalEvery: 3687,
      saveEvery: 3687,
    });
    expect(formatPlan(plan)).to.deep.equal([
      'Using epoch-based training: 20 epochs = 147500 steps',
      'Dataset: 29500 samples / batch_size 4 = 7375 steps/epoch',
      'Training duration: 20.00 epochs = 147500 steps',
      'Warmup: 1000 steps (0.14 epochs)',
      'Eval every: 3687 steps (0.50 epochs)',
      'Save every: 3687 steps (0.50 epochs)',
    ]);
  });

  it('divides by world size and accumulation, reports the dropped remainder', function () {
    const plan = planRun(cfg({ 'training.gradient_accumulation_steps': 2 }), { samples: 1001, worldSize: 2 });
    expect(plan.stepsPerEpoch).to.equal(62); // 1001 / 16
    expect(plan.droppedPerEpoch).to.equal(9);
    expect(plan.maxSteps).to.equal(62 * 20);
    const lines = formatPlan(plan);
    expect(lines[1]).to.equal(
      'Dataset: 1001 samples / (batch_size 4 × 2 ranks × 2 accumulation steps) = 62 steps/epoch',
    );
    expect(lines[2]).to.match(/^Dropped per epoch: 9 samples/);
  });

  it('uses max_steps when set and epoch-derived cadences otherwise (rounding down)', function () {
    const plan = planRun(
      cfg({
        'training.max_steps': 500,
        'training.warmup_steps': null,
        'training.warmup_epochs': 0.25,
        'validation.eval_every_n_steps': 7,
      }),
      { samples: 130 },
    );
    expect(plan.stepsPerEpoch).to.equal(32);
    expect(plan).to.include({ mode: 'steps', maxSteps: 500, warmupSteps: 8, evalEvery: 7, saveEvery: 16 });
    expect(plan.epochs).to.equal(500 / 32);
    expect(formatPlan(plan)[0]).to.equal('Using step-based training: 500 steps = 15.63 epochs');
    expect(formatPlan(plan)).to.include('Training duration: 15.63 epochs = 500 steps');
    const frac = planRun(cfg({ 'training.max_epochs': 2.5 }), { samples: 40 });
    expect(frac.maxSteps).to.equal(25);
    expect(formatPlan(frac)[0]).to.equal('Using epoch-based training: 2.50 epochs = 25 steps');
  });

  it('treats null cadences as "end of training only" and null warmup as none', function () {
    const plan = planRun(
      cfg({
        'training.warmup_steps': null,
        'training.save_every_n_epochs': null,
        'validation.eval_every_n_epochs': null,
      }),
      { samples: 40 },
    );
    expect(plan).to.include({ warmupSteps: 0, evalEvery: null, saveEvery: null });
    expect(formatPlan(plan).slice(2)).to.deep.equal([
      'Training duration: 20.00 epochs = 200 steps',
      'Warmup: 0 steps (0.00 epochs)',
      'Eval every: end of training only',
      'Save every: end of training only',
    ]);
  });

  it('rejects derived cadences below one step and warmups longer than the run', function () {
    expect(() => planRun(cfg({ 'validation.eval_every_n_epochs': 0.01 }), { samples: 40 }))
      .to.throw(/validation.eval_every_n_epochs: 0.01 epochs × 10 steps\/epoch = 0.1 is less than one step/)
      .with.property('code', 'PLAN_ERROR');
    expect(() => planRun(cfg({ 'training.max_steps': 5, 'training.warmup_steps': 1000 }), { samples: 40 })).to.throw(
      /warmup \(1000 steps\) is longer than the whole run \(5 steps\)/,
    );
    expect(() => planRun(cfg(), { samples: 3 })).to.throw(/fewer than one optimizer step/);
  });
});
