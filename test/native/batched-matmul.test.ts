/**
 * native/model/batched_matmul.cc: the attention's batched products. Many small matrices (the temporal attention's
 * T' × T' problems) go through a loop kernel with its own backward instead of ATen's per-matrix bmm; larger ones,
 * other dtypes and other devices through at::matmul. Checked against at::matmul on the same inputs: the output and
 * both input gradients, for q·kᵀ (NT) and attn·v (NN), float32 and float64, plus the size threshold.
 */
import { expect } from 'chai';
import { loadAddon } from '../../lib/native';
import { requireAddon } from '../helpers/native';

type Case = { batch: number; m: number; k: number; n: number; transB: boolean; label: string };

// The shapes the model produces: temporal logits/attention of the bench configs (T' = 6 and 8, dim_head 32), the
// full size (T' = 24), a causal-free odd size, and a non-square product.
const SMALL: Case[] = [
  { batch: 576, m: 6, k: 32, n: 6, transB: true, label: 'mid temporal q·kᵀ (576 × 6×32·32×6)' },
  { batch: 576, m: 6, k: 6, n: 32, transB: false, label: 'mid temporal attn·v (576 × 6×6·6×32)' },
  { batch: 64, m: 24, k: 32, n: 24, transB: true, label: 'full-size temporal q·kᵀ (T′ = 24)' },
  { batch: 64, m: 24, k: 24, n: 32, transB: false, label: 'full-size temporal attn·v' },
  { batch: 7, m: 5, k: 3, n: 9, transB: false, label: 'odd sizes NN' },
  { batch: 7, m: 5, k: 3, n: 9, transB: true, label: 'odd sizes NT' },
];

describe('BatchedMatmul (small-matrix attention products)', function () {
  this.timeout(60000);
  before(function () {
    requireAddon(this);
  });

  for (const c of SMALL) {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`${c.label}, ${dtype}: output and both gradients match at::matmul`, async function () {
        const r = await loadAddon().batchedMatmulCompare({ ...c, dtype, iters: 1 });
        expect(r.small, 'the loop kernel takes this product').to.equal(true);
        // Each element is a sum of at most 32 products of values in [-1, 1] (gradients: of ≤ 32 products with the
        // random upstream weights); float32 summation-order differences stay near k · 2⁻²⁴ · |sum| ≲ 1e-5.
        const tol = dtype === 'float64' ? 1e-12 : 5e-5;
        expect(r.maxDiff.out, 'forward').to.be.at.most(tol);
        expect(r.maxDiff.gradA, 'gradient of a').to.be.at.most(tol);
        expect(r.maxDiff.gradB, 'gradient of b').to.be.at.most(tol);
      });
    }
  }

  it('leaves larger products (the spatial attention of the bench configs) to at::matmul', async function () {
    const spatial = await loadAddon().batchedMatmulCompare({ batch: 4, m: 36, k: 32, n: 36, transB: true, iters: 1 });
    expect(spatial.small).to.equal(false);
    expect(spatial.maxDiff).to.deep.equal({ out: 0, gradA: 0, gradB: 0 });
  });

  it('rejects bad options with ARGUMENT_ERROR naming the key', async function () {
    let err: (Error & { code?: string }) | undefined;
    try {
      await loadAddon().batchedMatmulCompare({ batch: 0, m: 2, k: 2, n: 2, transB: false, iters: 1 });
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).to.equal('ARGUMENT_ERROR');
    expect(err?.message).to.contain("'batch'");
  });
});
