/**
 * CheckpointManager on real files: layout and manifest, pointers, rotation, best tracking (persisted across
 * instances), resume resolution with corrupt/incomplete checkpoints, same-step re-save, reading parts back.
 */
import { expect } from 'chai';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import {
  CheckpointManager,
  checkpointName,
  readJsonPart,
  readMeta,
  readPart,
  type CheckpointManagerOptions,
} from '../../lib/checkpoint';
import { hasCode } from '../../lib/errors';
import {
  collectLog,
  entries,
  fakeWeights,
  flipByte,
  makeCkptDir,
  removeDir,
  sampleParts,
} from '../helpers/checkpoint-fixtures';
import { rejection } from '../helpers/errors';

const pkgVersion = (
  JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8')) as { version: string }
).version;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('checkpoint manager (real files)', () => {
  let dir: string;
  let log: ReturnType<typeof collectLog>;
  const mk = (o: Partial<CheckpointManagerOptions> = {}) =>
    new CheckpointManager({ dir, keepLastN: 0, bestMetric: 'weighted_auroc', onLog: log.log, ...o });
  const ckptDirs = () => entries(dir).filter((e) => e.startsWith('ckpt-step'));
  const pointer = (name: string) =>
    JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { checkpoint: string; step: number; value?: number };

  beforeEach(() => {
    dir = path.join(makeCkptDir('mgr'), 'ckpts'); // not created yet: the first save creates it
    log = collectLog();
  });
  afterEach(() => removeDir(path.dirname(dir)));

  describe('layout', () => {
    it('writes ckpt-step%08d with every part, meta.json and a manifest whose checksums match the files', async () => {
      const m = mk();
      const res = await m.save(
        5234,
        { ...sampleParts(5234), 'rng.json': { torch: [1, 2], ts: 'abc' }, 'config.yaml': 'a: 1\n' },
        { metrics: { weighted_auroc: 0.75, loss: NaN }, epoch: 3 },
      );
      expect(res.path).to.equal(path.join(dir, 'ckpt-step00005234'));
      expect(entries(dir)).to.deep.equal(['best.json', 'ckpt-step00005234', 'latest.json']);
      const files = entries(res.path);
      expect(files).to.deep.equal([
        'config.yaml',
        'manifest.json',
        'meta.json',
        'model.safetensors',
        'optimizer.safetensors',
        'rng.json',
        'schedule.json',
      ]);
      const manifest = JSON.parse(fs.readFileSync(path.join(res.path, 'manifest.json'), 'utf8'));
      expect(manifest).to.include({
        format: 'ctclip-checkpoint',
        formatVersion: 1,
        ctclipVersion: pkgVersion,
        step: 5234,
        name: 'ckpt-step00005234',
      });
      expect(Date.parse(manifest.createdAt)).to.be.closeTo(Date.now(), 60_000);
      expect(Object.keys(manifest.files)).to.deep.equal(files.filter((f) => f !== 'manifest.json'));
      for (const f of Object.keys(manifest.files)) {
        const b = fs.readFileSync(path.join(res.path, f));
        expect(manifest.files[f]).to.deep.equal({ size: b.length, sha256: sha(b) });
      }
      expect(fs.readFileSync(path.join(res.path, 'model.safetensors'))).to.deep.equal(fakeWeights(5234));
      expect(fs.readFileSync(path.join(res.path, 'config.yaml'), 'utf8')).to.equal('a: 1\n');
      // strict JSON: NaN → null, no NaN token anywhere
      const metaText = fs.readFileSync(path.join(res.path, 'meta.json'), 'utf8');
      expect(metaText).to.not.match(/NaN/);
      expect(JSON.parse(metaText)).to.deep.equal({
        metrics: { weighted_auroc: 0.75, loss: null },
        epoch: 3,
        step: 5234,
      });
      expect(pointer('latest.json')).to.include({ checkpoint: 'ckpt-step00005234', step: 5234 });
      expect(res.manifest.step).to.equal(5234);
      expect(log.infos()[0]).to.equal(`Saved checkpoint: ${res.path}`);
      expect((await m.verify(res.path)).ok).to.equal(true);
    });

    it('refuses bad part names before writing anything', async () => {
      const m = mk();
      for (const bad of ['manifest.json', 'meta.json', '../escape', 'sub/x']) {
        const err = await rejection(m.save(1, { [bad]: 'x' }, {}));
        expect(hasCode(err, 'ARGUMENT_ERROR'), bad).to.equal(true);
      }
      expect(fs.existsSync(path.join(path.dirname(dir), 'escape'))).to.equal(false);
      expect(fs.existsSync(dir) ? ckptDirs() : []).to.deep.equal([]);
    });

    it('a writer that neither returns content nor creates its file fails the save, naming the part', async () => {
      const err = await rejection(mk().save(3, { 'model.safetensors': () => undefined }, {}));
      expect(err.message)
        .to.match(/part 'model\.safetensors'/)
        .and.match(/did not create/);
      expect(entries(dir)).to.deep.equal([]);
    });

    it('a writer that both creates its file and returns content fails the save', async () => {
      const err = await rejection(
        mk().save(
          3,
          {
            'a.bin': (p) => {
              fs.writeFileSync(p, 'x');
              return Buffer.from('y');
            },
          },
          {},
        ),
      );
      expect(err.message)
        .to.match(/part 'a\.bin'/)
        .and.match(/also returned content/);
      expect(entries(dir)).to.deep.equal([]);
    });

    it('readPart/readJsonPart/readMeta read parts back and refuse corrupted bytes', async () => {
      const res = await mk().save(7, sampleParts(7), { metrics: { weighted_auroc: 0.5 } });
      expect(await readPart(res.path, 'optimizer.safetensors')).to.deep.equal(fakeWeights(1007, 1024));
      expect(await readJsonPart(res.path, 'schedule.json')).to.deep.equal({ step: 7, lr: 1e-5 });
      expect(await readMeta(res.path)).to.deep.equal({ metrics: { weighted_auroc: 0.5 }, step: 7 });
      flipByte(path.join(res.path, 'optimizer.safetensors'), 100);
      const err = await rejection(readPart(res.path, 'optimizer.safetensors'));
      expect(hasCode(err, 'IO_ERROR')).to.equal(true);
      expect(err.message)
        .to.contain('optimizer.safetensors')
        .and.match(/sha256/);
      expect((await readPart(res.path, 'optimizer.safetensors', { verify: false })).length).to.equal(1024);
      expect((await rejection(readPart(res.path, 'nope.bin'))).message).to.match(/not a part of this checkpoint/);
    });

    it('concurrent saves of one manager run one after the other', async () => {
      const m = mk({ keepLastN: 2 });
      const results = await Promise.all([1, 2, 3, 4].map((s) => m.save(s, sampleParts(s), {})));
      expect(results.map((r) => r.step)).to.deep.equal([1, 2, 3, 4]);
      expect(ckptDirs()).to.deep.equal([checkpointName(3), checkpointName(4)]);
    });
  });

  describe('rotation (from the listing)', () => {
    const saveSteps = async (m: CheckpointManager, steps: number[], metric?: (s: number) => number | undefined) => {
      for (const s of steps) {
        const v = metric?.(s);
        await m.save(s, sampleParts(s), v === undefined ? {} : { metrics: { weighted_auroc: v } });
      }
    };
    it('keep_last_n 0 keeps all', async () => {
      await saveSteps(mk({ keepLastN: 0 }), [1, 2, 3, 4, 5]);
      expect(ckptDirs()).to.have.length(5);
    });
    it('keep_last_n 1 keeps only the newest, deleting after the new one is in place', async () => {
      const m = mk({ keepLastN: 1, bestMetric: null });
      await saveSteps(m, [10, 20, 30]);
      expect(ckptDirs()).to.deep.equal([checkpointName(30)]);
      expect(log.infos()).to.deep.equal([
        `Saved checkpoint: ${path.join(dir, checkpointName(10))}`,
        `Saved checkpoint: ${path.join(dir, checkpointName(20))}`,
        `Deleted old checkpoint: ${path.join(dir, checkpointName(10))}`,
        `Saved checkpoint: ${path.join(dir, checkpointName(30))}`,
        `Deleted old checkpoint: ${path.join(dir, checkpointName(20))}`,
      ]);
      expect(pointer('latest.json').checkpoint).to.equal(checkpointName(30));
    });
    it('keep_last_n 3 keeps the newest three plus an older best', async () => {
      await saveSteps(mk({ keepLastN: 3 }), [1, 2, 3, 4, 5, 6], (s) => (s === 2 ? 0.9 : 0.1 * s));
      expect(ckptDirs()).to.deep.equal([2, 4, 5, 6].map(checkpointName));
      expect(pointer('best.json')).to.include({ checkpoint: checkpointName(2), value: 0.9 });
    });
    it('the old best is kept with keep_last_n 1 until a better one arrives', async () => {
      const m = mk({ keepLastN: 1 });
      await saveSteps(m, [1, 2, 3], (s) => [0, 0.8, 0.5, 0.6][s]);
      expect(ckptDirs()).to.deep.equal([1, 3].map(checkpointName));
      await saveSteps(m, [4], () => 0.85);
      expect(ckptDirs()).to.deep.equal([checkpointName(4)]);
    });
    it('a new instance rotates what an earlier one left (no in-memory history), numerically', async () => {
      await saveSteps(mk({ keepLastN: 0, bestMetric: null }), [9, 10, 100000000, 99999999]);
      const m2 = mk({ keepLastN: 2, bestMetric: null });
      expect((await m2.list()).map((c) => c.step)).to.deep.equal([9, 10, 99999999, 100000000]);
      log.clear();
      await saveSteps(m2, [11]);
      expect(log.warnings()).to.have.length(1);
      expect(log.warnings()[0])
        .to.contain(path.join(dir, 'ckpt-step100000000'))
        .and.match(/newer than step 11/);
      // the newest (step 100000000) is never deleted; the one just saved is kept too
      expect(ckptDirs().sort()).to.deep.equal(['ckpt-step00000011', 'ckpt-step100000000', 'ckpt-step99999999'].sort());
    });
    it('a folder that is not a complete checkpoint is neither counted nor deleted', async () => {
      const m = mk({ keepLastN: 1, bestMetric: null });
      fs.mkdirSync(path.join(dir, checkpointName(1)), { recursive: true });
      fs.writeFileSync(path.join(dir, checkpointName(1), 'model.safetensors'), 'x');
      await saveSteps(m, [2, 3]);
      expect(ckptDirs()).to.deep.equal([1, 3].map(checkpointName));
      const list = await m.list();
      expect(list.map((c) => [c.step, c.complete])).to.deep.equal([
        [1, false],
        [3, true],
      ]);
      expect(list[0].problem)
        .to.contain(path.join(dir, checkpointName(1), 'manifest.json'))
        .and.match(/missing/);
    });
  });

  describe('best tracking', () => {
    it('logs ★ New best, ignores ties, and persists across a new manager instance', async () => {
      const m1 = mk();
      expect((await m1.save(100, sampleParts(100), { metrics: { weighted_auroc: 0.81234 } })).isBest).to.equal(true);
      expect(log.infos()).to.include(
        `★ New best weighted_auroc: 0.8123 (step 100) - ${path.join(dir, checkpointName(100))}`,
      );
      expect((await m1.save(200, sampleParts(200), { metrics: { weighted_auroc: 0.81234 } })).isBest).to.equal(false); // tie
      const m2 = mk();
      expect((await m2.save(300, sampleParts(300), { metrics: { weighted_auroc: 0.8 } })).isBest).to.equal(false);
      expect(pointer('best.json').checkpoint).to.equal(checkpointName(100));
      expect((await m2.save(400, sampleParts(400), { metrics: { weighted_auroc: 0.9 } })).isBest).to.equal(true);
      expect(pointer('best.json')).to.include({ checkpoint: checkpointName(400), step: 400, value: 0.9 });
      expect((await m2.resolve('best'))!.path).to.equal(path.join(dir, checkpointName(400)));
    });
    it('min mode', async () => {
      const m = mk({ bestMetric: 'val_loss', bestMode: 'min' });
      const flags = [];
      for (const [s, v] of [
        [1, 2.0],
        [2, 1.5],
        [3, 1.7],
        [4, 1.5],
        [5, 1.2],
      ] as const) {
        flags.push((await m.save(s, sampleParts(s), { metrics: { val_loss: v } })).isBest);
      }
      expect(flags).to.deep.equal([true, true, false, false, true]);
    });
    it('save-only checkpoints (no metric) never become best, also after a restart', async () => {
      const m1 = mk();
      expect((await m1.save(1, sampleParts(1), {})).isBest).to.equal(false);
      expect(fs.existsSync(path.join(dir, 'best.json'))).to.equal(false);
      await m1.save(2, sampleParts(2), { metrics: { weighted_auroc: 0.6 } });
      const m2 = mk();
      expect((await m2.save(3, sampleParts(3), { metrics: {} })).isBest).to.equal(false);
      expect((await m2.save(4, sampleParts(4), { metrics: { macro_auroc: 0.99 } })).isBest).to.equal(false);
      expect(pointer('best.json').checkpoint).to.equal(checkpointName(2));
    });
    it('NaN and null metrics never become best', async () => {
      const m = mk();
      expect((await m.save(1, sampleParts(1), { metrics: { weighted_auroc: NaN } })).isBest).to.equal(false);
      expect((await m.save(2, sampleParts(2), { metrics: { weighted_auroc: null } })).isBest).to.equal(false);
      expect(await m.resolve('best')).to.equal(null);
      expect((await m.save(3, sampleParts(3), { metrics: { weighted_auroc: 0.1 } })).isBest).to.equal(true);
      expect((await m.save(4, sampleParts(4), { metrics: { weighted_auroc: NaN } })).isBest).to.equal(false);
      expect(pointer('best.json').checkpoint).to.equal(checkpointName(3));
    });
    it('a changed best metric re-derives the best from the checkpoints, with a warning', async () => {
      await mk().save(1, sampleParts(1), { metrics: { weighted_auroc: 0.9, macro_auroc: 0.5 } });
      await mk().save(2, sampleParts(2), { metrics: { weighted_auroc: 0.8, macro_auroc: 0.7 } });
      log.clear();
      const m = mk({ bestMetric: 'macro_auroc' });
      expect((await m.save(3, sampleParts(3), { metrics: { macro_auroc: 0.6 } })).isBest).to.equal(false);
      expect(log.warnings().join('\n')).to.match(/tracks weighted_auroc \(max\), this run tracks macro_auroc/);
      expect(pointer('best.json')).to.include({ checkpoint: checkpointName(2), value: 0.7 });
    });
  });

  describe('pointers missing, dangling or invalid', () => {
    it('latest: the listing is the truth', async () => {
      const m = mk();
      await m.save(1, sampleParts(1), {});
      await m.save(2, sampleParts(2), {});
      fs.unlinkSync(path.join(dir, 'latest.json'));
      expect((await m.resolve('latest'))!.path).to.equal(path.join(dir, checkpointName(2)));
      fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify({ checkpoint: checkpointName(77), step: 77 }));
      expect((await m.resolve('latest'))!.path).to.equal(path.join(dir, checkpointName(2)));
      await m.save(3, sampleParts(3), {});
      expect(pointer('latest.json').checkpoint).to.equal(checkpointName(3));
    });
    it('best: a missing pointer is re-derived (read-only resolve does not write; a save repairs it)', async () => {
      const m = mk();
      await m.save(1, sampleParts(1), { metrics: { weighted_auroc: 0.7 } });
      await m.save(2, sampleParts(2), { metrics: { weighted_auroc: 0.9 } });
      await m.save(3, sampleParts(3), { metrics: { weighted_auroc: 0.8 } });
      fs.unlinkSync(path.join(dir, 'best.json'));
      const ro = mk({ readOnly: true });
      expect((await ro.resolve('best'))!.path).to.equal(path.join(dir, checkpointName(2)));
      expect(fs.existsSync(path.join(dir, 'best.json'))).to.equal(false);
      expect((await m.save(4, sampleParts(4), { metrics: { weighted_auroc: 0.85 } })).isBest).to.equal(false);
      expect(pointer('best.json').checkpoint).to.equal(checkpointName(2));
    });
    it('best: dangling and garbage pointers are reported and re-derived', async () => {
      const m = mk();
      await m.save(1, sampleParts(1), { metrics: { weighted_auroc: 0.7 } });
      fs.writeFileSync(
        path.join(dir, 'best.json'),
        JSON.stringify({ checkpoint: checkpointName(9), step: 9, metric: 'weighted_auroc', mode: 'max' }),
      );
      expect((await m.resolve('best'))!.path).to.equal(path.join(dir, checkpointName(1)));
      expect(log.warnings().join('\n'))
        .to.contain(path.join(dir, checkpointName(9)))
        .and.match(/re-derived/);
      log.clear();
      fs.writeFileSync(path.join(dir, 'best.json'), '{"checkpoint": "../../etc"}');
      expect((await m.resolve('best'))!.path).to.equal(path.join(dir, checkpointName(1)));
      expect(log.warnings().join('\n')).to.match(/not a checkpoint folder name/);
      fs.writeFileSync(path.join(dir, 'best.json'), '{not json');
      expect((await m.save(2, sampleParts(2), { metrics: { weighted_auroc: 0.6 } })).isBest).to.equal(false);
      expect(pointer('best.json').checkpoint).to.equal(checkpointName(1));
    });
    it('a hand-written pointer holding just a folder name is accepted', async () => {
      const m = mk({ bestMetric: null });
      await m.save(1, sampleParts(1), {});
      await m.save(2, sampleParts(2), {});
      fs.writeFileSync(path.join(dir, 'best.json'), `${checkpointName(1)}\n`);
      expect((await m.resolve('best'))!.path).to.equal(path.join(dir, checkpointName(1)));
    });
  });

  describe('resume resolution', () => {
    it('with no checkpoint: latest and best are null, the dir is not created', async () => {
      const m = mk();
      expect(await m.resolve('latest')).to.equal(null);
      expect(await m.resolve('best')).to.equal(null);
      expect(await m.list()).to.deep.equal([]);
      expect(fs.existsSync(dir)).to.equal(false);
    });
    const corruptions: Array<[string, (ck: string) => void, RegExp]> = [
      [
        'a flipped byte in a part',
        (ck) => flipByte(path.join(ck, 'model.safetensors'), 123),
        /model\.safetensors: sha256 mismatch/,
      ],
      [
        'a truncated part',
        (ck) => fs.truncateSync(path.join(ck, 'model.safetensors'), 100),
        /model\.safetensors: size 100 bytes, manifest says 4096/,
      ],
      ['a deleted manifest', (ck) => fs.unlinkSync(path.join(ck, 'manifest.json')), /manifest\.json: missing/],
      [
        'a truncated manifest',
        (ck) => fs.truncateSync(path.join(ck, 'manifest.json'), 40),
        /manifest\.json: invalid JSON/,
      ],
      [
        'a deleted part',
        (ck) => fs.unlinkSync(path.join(ck, 'optimizer.safetensors')),
        /optimizer\.safetensors: missing/,
      ],
    ];
    for (const [what, corrupt, pattern] of corruptions) {
      it(`latest skips a newest checkpoint with ${what}, with a warning naming the file`, async () => {
        const m = mk();
        await m.save(1, sampleParts(1), {});
        const newest = (await m.save(2, sampleParts(2), {})).path;
        corrupt(newest);
        log.clear();
        const r = await m.resolve('latest');
        expect(r!.path).to.equal(path.join(dir, checkpointName(1)));
        expect(r!.manifest.step).to.equal(1);
        expect(log.warnings()).to.have.length(1);
        expect(log.warnings()[0]).to.contain(newest).and.match(pattern);
        const v = await m.verify(newest);
        expect(v.ok).to.equal(false);
        expect(v.problems.join('\n')).to.match(pattern);
        const err = await rejection(m.resolve(newest));
        expect(hasCode(err, 'IO_ERROR')).to.equal(true);
        expect(err.message).to.match(pattern);
      });
    }
    it('latest is an error listing each checkpoint when every one is corrupt or incomplete (never "none"); a corrupt best is an error', async () => {
      const m = mk();
      const p = (await m.save(1, sampleParts(1), { metrics: { weighted_auroc: 0.5 } })).path;
      const q = (await m.save(2, sampleParts(2), {})).path;
      flipByte(path.join(p, 'schedule.json'), 2);
      fs.rmSync(path.join(q, 'manifest.json'));
      const latest = await rejection(m.resolve('latest'));
      expect(hasCode(latest, 'IO_ERROR')).to.equal(true);
      expect(latest.message).to.contain(`no usable checkpoint in ${dir}: all 2 fail their checks`);
      expect(latest.message).to.contain(`\n  ${p}: ${path.join(p, 'schedule.json')}: sha256 mismatch`);
      expect(latest.message).to.contain(`\n  ${q}: `);
      expect(latest.message).to.contain('another directory (checkpoint.save_dir)');
      fs.rmSync(q, { recursive: true });
      const err = await rejection(m.resolve('best'));
      expect(hasCode(err, 'IO_ERROR')).to.equal(true);
      expect(err.message).to.contain(path.join(p, 'schedule.json'));
    });
    it('a path: absolute, a folder name in the dir, a manifest file; a missing one is an argument error', async () => {
      const m = mk();
      const p = (await m.save(5, sampleParts(5), {})).path;
      expect((await m.resolve(p))!.path).to.equal(p);
      expect((await m.resolve(checkpointName(5)))!.path).to.equal(p);
      expect((await m.resolve(path.join(p, 'manifest.json')))!.path).to.equal(p);
      const err = await rejection(m.resolve(path.join(dir, checkpointName(6))));
      expect(hasCode(err, 'ARGUMENT_ERROR')).to.equal(true);
      expect(err.message).to.contain(checkpointName(6));
    });
  });

  describe('same-step re-save', () => {
    it('replaces the old folder atomically, leaves no aside copy, and re-derives a best that pointed at it', async () => {
      const m = mk();
      await m.save(1, sampleParts(1), { metrics: { weighted_auroc: 0.5 } });
      await m.save(2, sampleParts(2), { metrics: { weighted_auroc: 0.9 } });
      expect(pointer('best.json').checkpoint).to.equal(checkpointName(2));
      const res = await m.save(2, { 'model.safetensors': fakeWeights(222) }, {}); // resume overlap, save-only this time
      expect(res.isBest).to.equal(false);
      expect(entries(dir)).to.deep.equal(['best.json', checkpointName(1), checkpointName(2), 'latest.json']);
      expect(entries(res.path)).to.deep.equal(['manifest.json', 'meta.json', 'model.safetensors']);
      expect(await readPart(res.path, 'model.safetensors')).to.deep.equal(fakeWeights(222));
      expect(pointer('best.json').checkpoint).to.equal(checkpointName(1)); // the 0.9 content is gone
      expect((await m.save(2, sampleParts(2), { metrics: { weighted_auroc: 0.95 } })).isBest).to.equal(true);
      expect(pointer('best.json')).to.include({ checkpoint: checkpointName(2), value: 0.95 });
    });
    it('removes the best pointer when the re-saved step was the only best', async () => {
      const m = mk();
      await m.save(1, sampleParts(1), { metrics: { weighted_auroc: 0.9 } });
      await m.save(1, sampleParts(1), { metrics: { weighted_auroc: NaN } });
      expect(fs.existsSync(path.join(dir, 'best.json'))).to.equal(false);
      expect(await m.resolve('best')).to.equal(null);
    });
  });

  it('a read-only manager refuses to save and does not clean up', async () => {
    fs.mkdirSync(dir, { recursive: true });
    const leftover = path.join(dir, `.tmp-${checkpointName(1)}-${process.pid}-abc`);
    fs.mkdirSync(leftover);
    const ro = mk({ readOnly: true });
    expect(fs.existsSync(leftover)).to.equal(true);
    const err = await rejection(ro.save(1, sampleParts(1), {}));
    expect(err.message).to.match(/read-only/);
  });

  it('a checkpoint dir that is a file is an IO_ERROR naming it', () => {
    fs.writeFileSync(dir, 'not a folder');
    let err: unknown;
    try {
      mk();
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'IO_ERROR')).to.equal(true);
    expect((err as Error).message).to.contain(dir);
  });

  it('rejects bad options with ARGUMENT_ERROR', () => {
    for (const o of [
      { keepLastN: -1 },
      { keepLastN: 1.5 },
      { bestMode: 'up' as never },
      { bestMetric: '' },
      { dir: '' },
    ]) {
      let err: unknown;
      try {
        mk(o);
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, 'ARGUMENT_ERROR'), JSON.stringify(o)).to.equal(true);
    }
  });
});
