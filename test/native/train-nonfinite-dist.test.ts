/**
 * Data parallel (2 ranks, Gloo on loopback): a step that is non-finite on ONE rank only (a NaN voxel in rank 1's
 * batch, or the injected +inf gradient on rank 1) is skipped by every rank, every rank's state (weights, codebook,
 * AdamW, its own dropout stream) is bit-for-bit as before it, and the next step equals that of a twin model that never
 * took the skipped step. Feature-cache (gather) and sequential paths, 1 and 2 micro-batches per rank.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { requireGloo } from '../helpers/native';
import { freePort, killAll, startRanks, type RankRun } from '../helpers/dist';

const CHILD = path.join(__dirname, '..', 'helpers', 'dist-skip-child.js');

interface SkipOut {
  rank: number;
  skipped: boolean;
  before: Record<string, string>;
  after: Record<string, string>;
  run: { skipped: boolean; loss: number; gradNorm: number; state: Record<string, string> };
  ref: { skipped: boolean; loss: number; gradNorm: number; state: Record<string, string> };
}

function differing(a: Record<string, string>, b: Record<string, string>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort();
}

describe('native: a non-finite step on one rank is skipped and rolled back on every rank (Gloo, loopback)', function () {
  this.timeout(120_000);
  let runs: RankRun[] = [];
  let tmp = '';
  before(function () {
    requireGloo(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-dist-skip-'));
  });
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));
  afterEach(() => killAll(runs));

  const CASES = [
    { source: 'nan', gather: true, micro: 2, what: 'feature cache, 2 micro-batches' },
    { source: 'inject', gather: true, micro: 1, what: 'feature cache, 1 micro-batch' },
    { source: 'nan', gather: false, micro: 2, what: 'sequential, 2 micro-batches' },
    { source: 'inject', gather: false, micro: 1, what: 'sequential, 1 micro-batch' },
  ] as const;

  for (const c of CASES) {
    it(`${c.what}, ${c.source === 'nan' ? 'a NaN voxel' : 'an injected inf gradient'} on rank 1`, async function () {
      const port = await freePort();
      const name = `${c.source}-${c.gather}-${c.micro}`;
      runs = startRanks([CHILD], 2, port, (r) => ({
        SKIP_OUT: path.join(tmp, `${name}-${r}.json`),
        SKIP_SOURCE: c.source,
        SKIP_GATHER: String(c.gather),
        SKIP_MICRO: String(c.micro),
      }));
      await Promise.all(runs.map((r) => r.done));
      const outs = runs.map((r) => {
        expect(r.child.exitCode, `rank ${r.rank}: ${r.stderr}`).to.equal(0);
        return JSON.parse(fs.readFileSync(path.join(tmp, `${name}-${r.rank}.json`), 'utf8')) as SkipOut;
      });
      for (const o of outs) {
        expect(o.skipped, `rank ${o.rank} skipped the step`).to.equal(true);
        expect(differing(o.before, o.after), `rank ${o.rank}: state changed by the skipped step`).to.deep.equal([]);
        expect(o.run.skipped).to.equal(false);
        expect(o.run.loss, `rank ${o.rank}: loss of the next step`).to.equal(o.ref.loss);
        expect(o.run.gradNorm).to.equal(o.ref.gradNorm);
        expect(
          differing(o.run.state, o.ref.state),
          `rank ${o.rank}: differs from the twin that never took the skipped step`,
        ).to.deep.equal([]);
      }
      // the ranks hold the same weights and codebook (their dropout streams differ on purpose)
      const shared = (o: SkipOut) =>
        Object.fromEntries(
          Object.entries(o.run.state).filter(([k]) => k.startsWith('model/') || k.startsWith('adam/')),
        );
      expect(differing(shared(outs[0]), shared(outs[1]))).to.deep.equal([]);
    });
  }
});
