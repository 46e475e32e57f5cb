/**
 * Pure checkpoint rules: folder names, leftover names, best tracking, rotation plans, leftover decisions,
 * part encoding and manifest validation.
 */
import { expect } from 'chai';
import {
  checkpointName,
  leftoverName,
  parseCheckpointName,
  parseLeftoverName,
  pointerTempName,
} from '../../lib/checkpoint/names';
import { formatMetric, improves, metricValue, pickBest } from '../../lib/checkpoint/best';
import { planRotation } from '../../lib/checkpoint/rotation';
import { leftoverAction, type LeftoverContext } from '../../lib/checkpoint/leftovers';
import { encodePartValue, validatePartName } from '../../lib/checkpoint/parts';
import { buildManifest, manifestProblems } from '../../lib/checkpoint/manifest';
import { hasCode } from '../../lib/errors';

describe('checkpoint: names', () => {
  it('formats ckpt-step%08d and parses it back', () => {
    expect(checkpointName(5234)).to.equal('ckpt-step00005234');
    expect(checkpointName(0)).to.equal('ckpt-step00000000');
    expect(checkpointName(123456789)).to.equal('ckpt-step123456789');
    expect(parseCheckpointName('ckpt-step00005234')).to.equal(5234);
    expect(parseCheckpointName('ckpt-step123456789')).to.equal(123456789);
  });
  it('rejects non-checkpoint names and bad steps', () => {
    for (const n of [
      'ckpt-step5234',
      'ckpt-step0000523x',
      '.tmp-ckpt-step00000001-1-ab',
      'latest.json',
      'ckpt-step00000001.bak',
      'checkpoint_epoch_1.pt',
    ]) {
      expect(parseCheckpointName(n), n).to.equal(null);
    }
    for (const s of [-1, 1.5, NaN]) expect(() => checkpointName(s)).to.throw(/integer >= 0/);
  });
  it('numeric order differs from string order past 8 digits', () => {
    const names = [checkpointName(99999999), checkpointName(100000000), checkpointName(7)];
    const byStep = [...names].sort((a, b) => parseCheckpointName(a)! - parseCheckpointName(b)!);
    expect(byStep).to.deep.equal(['ckpt-step00000007', 'ckpt-step99999999', 'ckpt-step100000000']);
    expect([...names].sort()[1]).to.equal('ckpt-step100000000'); // string order is wrong: the listing sorts by parsed step
  });
  it('leftover names round-trip', () => {
    expect(parseLeftoverName(leftoverName('tmp', 'ckpt-step00000005', 4242, 'a1b2'))).to.deep.equal({
      kind: 'tmp',
      target: 'ckpt-step00000005',
      pid: 4242,
    });
    expect(parseLeftoverName(leftoverName('old', 'ckpt-step00000005', 7, 'ff'))).to.deep.equal({
      kind: 'old',
      target: 'ckpt-step00000005',
      pid: 7,
    });
    expect(parseLeftoverName(leftoverName('del', 'ckpt-step00000005', 7, 'ff'))!.kind).to.equal('del');
    expect(parseLeftoverName(pointerTempName('latest.json', 99, 'c0'))).to.deep.equal({
      kind: 'pointer-tmp',
      target: 'latest.json',
      pid: 99,
    });
    expect(leftoverName('tmp', 'ckpt-step00000005', 1)).to.match(/^\.tmp-ckpt-step00000005-1-[0-9a-f]{12}$/);
    for (const n of ['.tmp-foo-1-ab', '.hidden', 'notes.txt', '.tmp-ckpt-step00000005-x-ab', '.latest.json.tmp-1-']) {
      expect(parseLeftoverName(n), n).to.equal(null);
    }
  });
});

describe('checkpoint: best rule', () => {
  it('reads only finite numbers of the configured metric', () => {
    expect(metricValue({ metrics: { auc: 0.7 } }, 'auc')).to.equal(0.7);
    expect(metricValue({ metrics: { auc: null } }, 'auc')).to.equal(null);
    expect(metricValue({ metrics: { auc: NaN } }, 'auc')).to.equal(null);
    expect(metricValue({ metrics: { auc: Infinity } }, 'auc')).to.equal(null);
    expect(metricValue({ metrics: { auc: '0.9' } }, 'auc')).to.equal(null);
    expect(metricValue({ metrics: { other: 0.9 } }, 'auc')).to.equal(null); // save-only step
    expect(metricValue({}, 'auc')).to.equal(null);
    expect(metricValue(null, 'auc')).to.equal(null);
    expect(metricValue({ metrics: {} }, 'constructor')).to.equal(null);
  });
  it('improvement is strict, per mode; null/NaN never improve', () => {
    expect(improves(0.5, null, 'max')).to.equal(true);
    expect(improves(0.6, 0.5, 'max')).to.equal(true);
    expect(improves(0.5, 0.5, 'max')).to.equal(false);
    expect(improves(0.4, 0.5, 'max')).to.equal(false);
    expect(improves(0.4, 0.5, 'min')).to.equal(true);
    expect(improves(0.5, 0.5, 'min')).to.equal(false);
    expect(improves(null, null, 'max')).to.equal(false);
    expect(improves(NaN, null, 'min')).to.equal(false);
  });
  it('pickBest keeps the earliest of equal values and ignores missing ones', () => {
    const e = [
      { step: 30, value: 0.8 },
      { step: 10, value: 0.8 },
      { step: 20, value: null },
      { step: 5, value: 0.1 },
    ];
    expect(pickBest(e, 'max')).to.deep.equal({ step: 10, value: 0.8 });
    expect(pickBest(e, 'min')).to.deep.equal({ step: 5, value: 0.1 });
    expect(pickBest([{ step: 1, value: null }], 'max')).to.equal(null);
  });
  it('formats metrics with four decimals', () => {
    expect(formatMetric(0.81234)).to.equal('0.8123');
    expect(formatMetric(1)).to.equal('1.0000');
  });
});

describe('checkpoint: rotation plan', () => {
  const ck = (...steps: number[]) => steps.map((s) => ({ name: checkpointName(s), step: s }));
  it('keep 0 keeps everything', () => {
    expect(planRotation(ck(1, 2, 3), 0, []).delete).to.deep.equal([]);
  });
  it('keep 1 keeps the newest by step (not by listing order)', () => {
    const p = planRotation(ck(10, 9, 100), 1, []);
    expect(p.keep).to.deep.equal([checkpointName(100)]);
    expect(p.delete).to.deep.equal([checkpointName(9), checkpointName(10)]);
  });
  it('keep 3 plus an old best', () => {
    const p = planRotation(ck(1, 2, 3, 4, 5, 6), 3, [checkpointName(1)]);
    expect(p.keep).to.deep.equal(ck(6, 5, 4, 1).map((c) => c.name));
    expect(p.delete).to.deep.equal(ck(2, 3).map((c) => c.name));
  });
  it('protected names (the one just saved) are kept even when older than the newest N', () => {
    const p = planRotation(ck(1, 2, 8, 9), 1, [checkpointName(2), null, undefined]);
    expect(p.keep).to.deep.equal([checkpointName(9), checkpointName(2)]);
    expect(p.delete).to.deep.equal([checkpointName(1), checkpointName(8)]);
  });
  it('rejects a bad keepLastN', () => {
    expect(() => planRotation([], -1)).to.throw(RangeError);
  });
});

describe('checkpoint: leftover decisions', () => {
  const ctx: LeftoverContext = {
    now: 10_000_000,
    ownPid: 100,
    staleAfterMs: 3_600_000,
    isAlive: (pid) => pid === 100 || pid === 200,
  };
  const fresh = { newestMtimeMs: 10_000_000 - 1000, targetExists: true, activeHere: false };
  const old = { ...fresh, newestMtimeMs: 10_000_000 - 3_600_000 };
  const tmp = (pid: number) => ({ kind: 'tmp' as const, target: 'ckpt-step00000001', pid });
  it('removes leftovers of this process and of dead processes', () => {
    expect(leftoverAction(tmp(100), fresh, ctx)).to.equal('remove');
    expect(leftoverAction(tmp(300), fresh, ctx)).to.equal('remove');
  });
  it('keeps a fresh leftover of another live process, removes it once stale', () => {
    expect(leftoverAction(tmp(200), fresh, ctx)).to.equal('keep');
    expect(leftoverAction(tmp(200), old, ctx)).to.equal('remove');
  });
  it('never touches a temp path a save of this process is using', () => {
    expect(leftoverAction(tmp(100), { ...old, activeHere: true }, ctx)).to.equal('keep');
  });
  it('restores an .old- copy whose checkpoint name is missing, removes it otherwise', () => {
    const o = { kind: 'old' as const, target: 'ckpt-step00000001', pid: 300 };
    expect(leftoverAction(o, { ...fresh, targetExists: false }, ctx)).to.equal('restore');
    expect(leftoverAction(o, fresh, ctx)).to.equal('remove');
    expect(leftoverAction({ ...o, pid: 200 }, { ...fresh, targetExists: false }, ctx)).to.equal('keep');
  });
});

describe('checkpoint: parts and manifest', () => {
  it('part names are plain file names and not reserved', () => {
    for (const ok of ['model.safetensors', 'rng.json', 'config.yaml', '_x'])
      expect(() => validatePartName(ok)).to.not.throw();
    for (const bad of ['manifest.json', 'meta.json', '../x', 'a/b', '.hidden', '', 'a b']) {
      let err: unknown;
      try {
        validatePartName(bad);
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, 'ARGUMENT_ERROR'), bad).to.equal(true);
    }
  });
  it('encodes returned values: bytes as is, strings as UTF-8, JSON strictly', () => {
    const b = Buffer.from([1, 2, 3]);
    expect(encodePartValue(b)).to.equal(b);
    expect(Buffer.from(encodePartValue(new Float32Array([1])) as Uint8Array)).to.deep.equal(
      Buffer.from(new Float32Array([1]).buffer),
    );
    expect(encodePartValue('a: 1\n')).to.equal('a: 1\n');
    const text = encodePartValue({ loss: NaN, auc: Infinity, v: [1, -Infinity], ok: 0.5 }) as string;
    expect(JSON.parse(text)).to.deep.equal({ loss: null, auc: null, v: [1, null], ok: 0.5 });
    expect(text).to.not.match(/NaN|Infinity/);
  });
  it('validates manifests', () => {
    const m = buildManifest(7, 'ckpt-step00000007', {
      'b.bin': { size: 1, sha256: 'a'.repeat(64) },
      'a.json': { size: 2, sha256: 'b'.repeat(64) },
    });
    expect(Object.keys(m.files)).to.deep.equal(['a.json', 'b.bin']);
    expect(manifestProblems(JSON.parse(JSON.stringify(m)))).to.deep.equal([]);
    expect(manifestProblems([])).to.deep.equal(['not a JSON object']);
    expect(manifestProblems({ ...m, formatVersion: 99 })[0]).to.match(/newer than this ctclip reads/);
    expect(manifestProblems({ ...m, files: { '../x': { size: 1, sha256: 'a'.repeat(64) } } })[0]).to.match(
      /invalid name/,
    );
    expect(manifestProblems({ ...m, files: { x: { size: 1, sha256: 'zz' } } })[0]).to.match(
      /expected \{size, sha256\}/,
    );
    expect(manifestProblems({ ...m, step: -1 })[0]).to.match(/step/);
  });
});
