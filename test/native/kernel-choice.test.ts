/**
 * native/model/kernel_choice.cc: which implementation each custom CPU kernel (batched matmul NN / NT, PEG conv,
 * fused GEGLU, AdamW) runs — the per-build table by default, a one-time calibration per shape, or forced by
 * setKernelMode / $CTCLIP_KERNELS. Both paths of every kernel must give the same training step within the kernels'
 * documented tolerances, so the choice changes speed, never results beyond float32 summation order.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { CTClip, type CTClipConfig } from '../../lib/model/ctclip';
import { loadAddon } from '../../lib/native';
import { makeCTClipBatch } from '../helpers/ctclip-batch';
import { requireAddon } from '../helpers/native';
import { TINY_BERT, TINY_CTCLIP_IMAGE } from '../helpers/tiny-configs';
import { values } from '../helpers/tensors';

// Small, but with every kernel on its custom-eligible path: temporal attention over T' = 4 (bmm NN and NT),
// PEG and GEGLU in both stacks, fp32 AdamW with weight decay.
const CONFIG: CTClipConfig = {
  image: { ...TINY_CTCLIP_IMAGE, dim: 32, dim_head: 16 },
  text: TINY_BERT,
  dim_latent: 8,
  seed: 11,
  training: { max_grad_norm: 0.5, weight_decay: 0.01 },
};
const FRAMES = 8;
const KERNELS = ['bmm_nn', 'bmm_nt', 'peg', 'geglu', 'adamw'];

interface StepOutcome {
  losses: number[];
  gradNorms: number[];
  weights: Map<string, number[]>;
}

async function twoSteps(mode: string): Promise<StepOutcome> {
  const addon = loadAddon();
  addon.setKernelMode(mode);
  const model = CTClip.create(CONFIG);
  model.train();
  const out: StepOutcome = { losses: [], gradNorms: [], weights: new Map() };
  try {
    for (let s = 0; s < 2; s++) {
      const r = await model.trainStep(makeCTClipBatch(CONFIG, 2, 5 + s, { L: 10, frames: FRAMES }), 1e-3);
      out.losses.push(r.loss);
      out.gradNorms.push(r.gradNorm);
    }
    const sd = model.stateDict();
    sd.names.forEach((n, i) => out.weights.set(n, values(sd.tensors[i])));
  } finally {
    model.dispose();
  }
  return out;
}

function maxWeightDiff(a: StepOutcome, b: StepOutcome): number {
  let m = 0;
  for (const [name, w] of a.weights) {
    const v = b.weights.get(name)!;
    for (let i = 0; i < w.length; i++) m = Math.max(m, Math.abs(w[i] - v[i]));
  }
  return m;
}

describe('kernel choice (custom CPU kernels vs ATen)', function () {
  this.timeout(120000);
  before(function () {
    requireAddon(this);
  });
  after(function () {
    loadAddon().setKernelMode('table');
  });

  it('forcing every kernel to ATen or to ours gives the same steps within float32 tolerance', async function () {
    const custom = await twoSteps('custom');
    const choices = loadAddon().kernelChoices();
    expect([...new Set(choices.map((c) => c.kernel))].sort(), 'every custom kernel ran').to.deep.equal(
      [...KERNELS].sort(),
    );
    expect(choices.every((c) => c.custom && c.source === 'forced')).to.equal(true);
    const aten = await twoSteps('aten');
    expect(
      loadAddon()
        .kernelChoices()
        .every((c) => !c.custom && c.source === 'forced'),
    ).to.equal(true);
    for (let s = 0; s < 2; s++) {
      // Summation order only (the GEGLU erf differs by ≤ 1.5e-7 relative): float32 noise on an O(1) loss.
      expect(Math.abs(custom.losses[s] - aten.losses[s]), `loss, step ${s + 1}`).to.be.at.most(1e-5);
      expect(Math.abs(custom.gradNorms[s] / aten.gradNorms[s] - 1), `grad norm, step ${s + 1}`).to.be.at.most(1e-4);
    }
  });

  it('AdamW alone: the one-pass kernel and the ATen ops give the same weights', async function () {
    const ours = await twoSteps('bmm=custom,peg=custom,geglu=custom,adamw=custom');
    const aten = await twoSteps('bmm=custom,peg=custom,geglu=custom,adamw=aten');
    expect(ours.losses).to.deep.equal(aten.losses);
    // Same float32 scalars and op order; on libtorch 1.13 the weights agree to a rounding step (≤ 1e-6). ATen 2.x's
    // vectorised lerp / addcdiv round differently (FMA), and for elements with a near-zero gradient the ratio
    // m̂ / (√v̂ + eps) amplifies that: allow 5 % of one step (lr 1e-3) per step taken.
    expect(maxWeightDiff(ours, aten)).to.be.at.most(2 * 0.05 * 1e-3);
  });

  it('the default table: attn·v in ATen on torch ≥ 2 with MKL only; AdamW in ATen from 65,536 elements', async function () {
    await twoSteps('table');
    const info = loadAddon().buildInfo();
    expect(info.kernelMode).to.equal(KERNELS.map((k) => `${k}=table`).join(','));
    const torch2Mkl = Number(info.runtimeTorchVersion.split('.')[0]) >= 2 && /mkl/i.test(info.blas);
    for (const c of loadAddon().kernelChoices()) {
      expect(c.source, `${c.kernel} ${c.shape}`).to.equal('table');
      const expected = c.kernel === 'bmm_nn' ? !torch2Mkl : c.kernel === 'adamw' ? Number(c.shape) < 65536 : true;
      expect(c.custom, `${c.kernel} ${c.shape}`).to.equal(expected);
    }
  });

  it('calibrate: times both paths once per shape and keeps the faster', async function () {
    await twoSteps('calibrate');
    const choices = loadAddon().kernelChoices();
    expect(choices.length).to.be.greaterThan(0);
    const keys = choices.map((c) => `${c.kernel} ${c.shape}`);
    expect(new Set(keys).size, 'one choice per kernel and shape').to.equal(keys.length);
    for (const c of choices) {
      expect(c.source).to.equal('calibrated');
      expect(c.customMs).to.be.a('number').and.at.least(0);
      expect(c.atenMs).to.be.a('number').and.at.least(0);
      expect(c.custom).to.equal(c.customMs! <= c.atenMs!);
    }
  });

  it('rejects a bad mode with ARGUMENT_ERROR naming it', function () {
    const addon = loadAddon();
    const err = (spec: string) => {
      try {
        addon.setKernelMode(spec);
      } catch (e) {
        return e as Error & { code?: string };
      }
      throw new Error(`setKernelMode('${spec}') did not throw`);
    };
    expect(err('fast')).to.include({ code: 'ARGUMENT_ERROR' });
    expect(err('fast').message).to.contain("unknown kernel mode 'fast'");
    expect(err('conv=aten').message).to.contain("unknown kernel 'conv'");
    expect(err('bmm').message).to.contain('unknown kernel mode');
    expect(err('peg=aten,geglu').message).to.contain("'geglu' is not kernel=mode");
  });

  it('reads $CTCLIP_KERNELS at start-up, and a bad value fails loading with its name', function () {
    const script = `const a = require(${JSON.stringify(path.resolve(__dirname, '../../lib/native'))}).loadAddon();
      console.log(a.buildInfo().kernelMode);`;
    const ok = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: { ...process.env, CTCLIP_KERNELS: 'bmm_nn=aten,adamw=calibrate' },
    });
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stdout.trim()).to.equal('bmm_nn=aten,bmm_nt=table,peg=table,geglu=table,adamw=calibrate');
    const bad = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: { ...process.env, CTCLIP_KERNELS: 'sometimes' },
    });
    expect(bad.status).to.not.equal(0);
    expect(bad.stderr).to.contain("CTCLIP_KERNELS: unknown kernel mode 'sometimes'");
  });
});
