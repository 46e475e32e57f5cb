/**
 * Data-parallel equivalence (the fixture tolerances of docs/reference.md): one step with W = 2 ranks × B samples gives
 * the loss, the all-reduced gradients, the post-step weights (case C's noise-aware rule) and the VQ codebook of
 * one process with the 2B samples; likewise A = 2 micro-batches × B against A = 1 × 2B, and W = 2 × A = 2 × 1.
 * Gather on, dropout 0. Also with loss.local_loss false and with SigLIP.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { requireGloo } from '../helpers/native';
import { freePort, killAll, startRanks, type RankRun } from '../helpers/dist';

const CHILD = path.join(__dirname, '..', 'helpers', 'dist-step-child.js');

interface StepOut {
  rank: number;
  loss: number;
  gradNorm: number;
  clipCoef: number;
  worldSize: number;
  grads: Record<string, number[]>;
  state: Record<string, { kind: string; values: number[] }>;
}

/** Gradients that are mathematically zero (docs/reference.md): compare only that they are tiny. */
const NOISE_ONLY = [/attention\.self\.key\.bias$/, /spatial_rel_pos_bias\.net\.2\.bias$/];

describe('native: data-parallel step equivalence (Gloo, loopback)', function () {
  this.timeout(180000);
  let runs: RankRun[] = [];
  let tmp = '';
  before(function () {
    requireGloo(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-dist-eq-'));
  });
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));
  afterEach(() => killAll(runs));

  async function step(name: string, split: number[][][], env: Record<string, string> = {}): Promise<StepOut[]> {
    const port = await freePort();
    const W = split.length;
    runs = startRanks([CHILD], W, port, (r) => ({
      STEP_SPLIT: JSON.stringify(split),
      STEP_OUT: path.join(tmp, `${name}-${r}.json`),
      ...env,
    }));
    await Promise.all(runs.map((r) => r.done));
    return runs.map((r) => {
      expect(r.child.exitCode, `${name} rank ${r.rank}: ${r.stderr}`).to.equal(0);
      return JSON.parse(fs.readFileSync(path.join(tmp, `${name}-${r.rank}.json`), 'utf8')) as StepOut;
    });
  }

  function expectEquivalent(got: StepOut, ref: StepOut, what: string, opts: { codebook: boolean }): void {
    expect(got.loss, `${what}: loss`).to.be.closeTo(ref.loss, 1e-5);
    expect(
      Math.abs(got.gradNorm - ref.gradNorm) / ref.gradNorm,
      `${what}: pre-clip norm ${got.gradNorm} vs ${ref.gradNorm}`,
    ).to.be.at.most(1e-5);
    expect(Object.keys(got.grads)).to.deep.equal(Object.keys(ref.grads));
    for (const [name, g] of Object.entries(ref.grads)) {
      const mine = got.grads[name];
      if (NOISE_ONLY.some((re) => re.test(name))) {
        for (const v of mine) expect(Math.abs(v), `${what}: ${name} (mathematically zero)`).to.be.at.most(1e-6);
        continue;
      }
      const tol = 1e-5 + 1e-4 * Math.max(...g.map(Math.abs));
      for (let k = 0; k < g.length; k++)
        if (Math.abs(mine[k] - g[k]) > tol)
          expect.fail(`${what}: grad ${name}[${k}] ${mine[k]} vs ${g[k]} (tol ${tol})`);
    }
    const coef = ref.clipCoef;
    for (const [name, s] of Object.entries(ref.state)) {
      const mine = got.state[name].values;
      if (s.kind === 'buffer') {
        if (!opts.codebook && name.includes('vq._codebook')) continue;
        for (let k = 0; k < s.values.length; k++)
          if (Math.abs(mine[k] - s.values[k]) > 1e-6)
            expect.fail(`${what}: buffer ${name}[${k}] ${mine[k]} vs ${s.values[k]}`);
        continue;
      }
      const g = ref.grads[name];
      for (let k = 0; k < s.values.length; k++) {
        // Case C: where the clipped gradient is signal, atol 2e-6; at noise level an Adam step may land anywhere in ±lr.
        const tol = !g ? 0 : Math.abs(coef * g[k]) >= 1e-7 ? 2e-6 : 2e-3;
        if (Math.abs(mine[k] - s.values[k]) > tol)
          expect.fail(`${what}: weight ${name}[${k}] ${mine[k]} vs ${s.values[k]} (tol ${tol})`);
      }
    }
  }

  for (const loss of ['softmax', 'siglip'] as const) {
    it(`${loss}: W=2 × B=2, A=2 × B=2 and W=2 × A=2 × B=1 equal one process with B=4`, async function () {
      const env = { STEP_LOSS: loss };
      const [ref] = await step(`${loss}-ref`, [[[0, 1, 2, 3]]], env);
      expect(ref.worldSize).to.equal(1);
      const w2 = await step(`${loss}-w2`, [[[0, 1]], [[2, 3]]], env);
      for (const o of w2) {
        expect(o.worldSize).to.equal(2);
        expectEquivalent(o, ref, `${loss} W=2 rank ${o.rank}`, { codebook: true });
      }
      const [a2] = await step(
        `${loss}-a2`,
        [
          [
            [0, 1],
            [2, 3],
          ],
        ],
        env,
      );
      // A micro-batches update the codebook once each (not once for A·B): compare parameters, not the EMA buffers.
      expectEquivalent(a2, ref, `${loss} A=2`, { codebook: false });
      const w2a2 = await step(
        `${loss}-w2a2`,
        [
          [[0], [1]],
          [[2], [3]],
        ],
        env,
      );
      for (const o of w2a2) expectEquivalent(o, ref, `${loss} W=2 A=2 rank ${o.rank}`, { codebook: false });
    });
  }

  it('loss.local_loss false (every rank the full global loss) gives the same step', async function () {
    const [ref] = await step('full-ref', [[[0, 1, 2, 3]]]);
    const w2 = await step('full-w2', [[[0, 1]], [[2, 3]]], { STEP_LOCAL_LOSS: 'false' });
    for (const o of w2) expectEquivalent(o, ref, `local_loss false rank ${o.rank}`, { codebook: true });
  });

  it('without gather (the reference), each rank contrasts only its own batch: the loss differs from the global one', async function () {
    const [ref] = await step('nog-ref', [[[0, 1, 2, 3]]]);
    const w2 = await step('nog-w2', [[[0, 1]], [[2, 3]]], { STEP_GATHER: 'false' });
    expect(Math.abs(w2[0].loss - ref.loss)).to.be.above(1e-3);
    // ... but the ranks still agree on everything after the step.
    for (const [name, s] of Object.entries(w2[0].state)) expect(w2[1].state[name].values, name).to.deep.equal(s.values);
  });
});
