/**
 * Crashes and leftovers: a failing part writer, an injected ENOSPC, a failing commit hook, a process SIGKILLed
 * in the middle of a part and just before the rename, and the cleanup rules for leftovers of interrupted writes.
 */
import { expect } from 'chai';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CheckpointManager, checkpointName, type CheckpointManagerOptions } from '../../lib/checkpoint';
import { CtclipError, hasCode } from '../../lib/errors';
import { collectLog, deadPid, entries, makeCkptDir, removeDir, sampleParts } from '../helpers/checkpoint-fixtures';
import { rejection } from '../helpers/errors';

const CHILD = path.join(__dirname, '../helpers/checkpoint-child.js');

/** Runs the child until it prints `marker`, SIGKILLs it, waits for its exit; returns its pid and the line. */
function killChildAt(args: object, marker: string): Promise<{ pid: number; line: string; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let line = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not reach ${marker}: ${out}${err}`));
    }, 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const hit = out.split('\n').find((l) => l.startsWith(marker));
      if (hit && !line) {
        line = hit;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (!line) reject(new Error(`child exited before ${marker}: ${out}${err}`));
      else resolve({ pid: child.pid!, line, signal });
    });
  });
}

describe('checkpoint crashes and leftovers (real files, real processes)', () => {
  let dir: string;
  let log: ReturnType<typeof collectLog>;
  const mk = (o: Partial<CheckpointManagerOptions> = {}) =>
    new CheckpointManager({ dir, keepLastN: 1, bestMetric: 'weighted_auroc', onLog: log.log, ...o });
  const snapshot = () =>
    entries(dir).map((e) => (e.endsWith('.json') ? `${e}=${fs.readFileSync(path.join(dir, e), 'utf8')}` : e));

  beforeEach(async () => {
    dir = makeCkptDir('crash');
    log = collectLog();
    await mk().save(10, sampleParts(10), { metrics: { weighted_auroc: 0.5 } });
    log.clear();
  });
  afterEach(() => removeDir(dir));

  describe('a save that fails in-process', () => {
    it('a part writer that throws: nothing visible, temp removed, previous latest intact', async () => {
      const before = snapshot();
      const err = await rejection(
        mk().save(
          20,
          {
            'model.safetensors': (p) => {
              fs.writeFileSync(p, 'partial');
              throw new Error('boom');
            },
            'x.json': {},
          },
          { metrics: { weighted_auroc: 0.9 } },
        ),
      );
      expect(hasCode(err, 'IO_ERROR')).to.equal(true);
      expect(err.message)
        .to.contain(path.join(dir, checkpointName(20)))
        .and.contain("writing part 'model.safetensors'")
        .and.contain('boom')
        .and.match(/Nothing was committed/);
      expect(snapshot()).to.deep.equal(before);
      expect((await mk().resolve('latest'))!.path).to.equal(path.join(dir, checkpointName(10)));
    });
    it("keeps the writer's error code (a native TORCH_ERROR stays one)", async () => {
      const err = await rejection(
        mk().save(
          20,
          {
            'model.safetensors': () => {
              throw new CtclipError('TORCH_ERROR', 'CUDA out of memory');
            },
          },
          {},
        ),
      );
      expect(hasCode(err, 'TORCH_ERROR')).to.equal(true);
      expect(err.message).to.contain('CUDA out of memory');
    });
    it('an injected ENOSPC surfaces as a clear IO_ERROR and leaves the previous checkpoint', async () => {
      const before = snapshot();
      const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
      const err = await rejection(
        mk().save(
          20,
          {
            ...sampleParts(20),
            'optimizer.safetensors': () => {
              throw enospc;
            },
          },
          {},
        ),
      );
      expect(hasCode(err, 'IO_ERROR')).to.equal(true);
      expect(err.message)
        .to.match(/no space left on device/)
        .and.contain("part 'optimizer.safetensors'");
      expect(snapshot()).to.deep.equal(before);
    });
    it('a failure at the commit point (hook) leaves nothing behind', async () => {
      const before = snapshot();
      const m = mk({
        hooks: {
          beforeCommit: (tmp) => {
            expect(fs.existsSync(path.join(tmp, 'manifest.json'))).to.equal(true);
            throw new Error('injected');
          },
        },
      });
      const err = await rejection(m.save(20, sampleParts(20), {}));
      expect(err.message).to.contain('beforeCommit').and.contain('injected');
      expect(snapshot()).to.deep.equal(before);
    });
    it('a failed re-save of an existing step keeps the old copy', async () => {
      const before = snapshot();
      await rejection(
        mk().save(
          10,
          {
            'model.safetensors': () => {
              throw new Error('boom');
            },
          },
          {},
        ),
      );
      expect(snapshot()).to.deep.equal(before);
      expect((await mk().verify(path.join(dir, checkpointName(10)))).ok).to.equal(true);
    });
  });

  describe('a process killed during a save (SIGKILL)', () => {
    for (const [mode, marker] of [
      ['mid-part', 'WRITING'],
      ['before-commit', 'COMMIT'],
    ] as const) {
      it(`killed ${mode === 'mid-part' ? 'while writing a large part' : 'between the file writes and the rename'}: only complete checkpoints are seen, the leftover is cleaned`, async () => {
        const latestBefore = fs.readFileSync(path.join(dir, 'latest.json'), 'utf8');
        const { pid, line, signal } = await killChildAt({ dir, step: 20, mode }, marker);
        expect(signal).to.equal('SIGKILL');
        const tmpName = `.tmp-${checkpointName(20)}-${pid}-`;
        const leftovers = entries(dir).filter((e) => e.startsWith(tmpName));
        expect(leftovers, 'the killed save left its temp folder').to.have.length(1);
        expect(line).to.contain(leftovers[0]);
        expect(fs.readFileSync(path.join(dir, 'latest.json'), 'utf8')).to.equal(latestBefore);
        // A reader that does not clean up already ignores the leftover.
        const ro = mk({ readOnly: true });
        expect((await ro.list()).map((c) => c.step)).to.deep.equal([10]);
        expect((await ro.resolve('latest'))!.path).to.equal(path.join(dir, checkpointName(10)));
        // A fresh writable manager removes it (its pid is dead).
        const m = mk();
        expect(log.infos()).to.deep.equal([
          `Removed leftover of an interrupted checkpoint write: ${path.join(dir, leftovers[0])}`,
        ]);
        expect(entries(dir)).to.deep.equal(['best.json', checkpointName(10), 'latest.json']);
        expect((await m.resolve('latest'))!.path).to.equal(path.join(dir, checkpointName(10)));
        expect((await m.resolve('best'))!.path).to.equal(path.join(dir, checkpointName(10)));
        // and the run continues normally
        expect((await m.save(20, sampleParts(20), { metrics: { weighted_auroc: 0.6 } })).isBest).to.equal(true);
        expect(entries(dir)).to.deep.equal(['best.json', checkpointName(20), 'latest.json']);
      });
    }
  });

  describe('leftover cleanup rules', () => {
    const touchOld = (p: string, ageMs: number) => {
      const t = (Date.now() - ageMs) / 1000;
      for (const e of fs.statSync(p).isDirectory() ? fs.readdirSync(p) : []) fs.utimesSync(path.join(p, e), t, t);
      fs.utimesSync(p, t, t);
    };
    const mkLeftover = (name: string, withFile = true) => {
      const p = path.join(dir, name);
      fs.mkdirSync(p);
      if (withFile) fs.writeFileSync(path.join(p, 'model.safetensors'), 'partial');
      return p;
    };

    it('removes leftovers of dead processes and of this process; keeps a fresh one of a live process until stale', async () => {
      const dead = deadPid();
      const live = process.ppid; // another process that is certainly alive
      const deadTmp = mkLeftover(`.tmp-${checkpointName(20)}-${dead}-aa`);
      const ownTmp = mkLeftover(`.tmp-${checkpointName(21)}-${process.pid}-bb`);
      const liveFresh = mkLeftover(`.tmp-${checkpointName(22)}-${live}-cc`);
      const liveStale = mkLeftover(`.tmp-${checkpointName(23)}-${live}-dd`);
      touchOld(liveStale, 2 * 3600 * 1000);
      const ptrTmp = path.join(dir, `.latest.json.tmp-${dead}-ee`);
      fs.writeFileSync(ptrTmp, '{"checkpoint": "ckpt-step00000020"');
      const del = mkLeftover(`.del-${checkpointName(5)}-${dead}-ff`);
      const unrelated = ['notes.txt', '.hidden', '.tmp-other-1-aa'];
      for (const u of unrelated) fs.writeFileSync(path.join(dir, u), 'keep me');

      const m = mk();
      for (const p of [deadTmp, ownTmp, liveStale, ptrTmp, del]) expect(fs.existsSync(p), p).to.equal(false);
      expect(fs.existsSync(liveFresh)).to.equal(true);
      for (const u of unrelated) expect(fs.readFileSync(path.join(dir, u), 'utf8')).to.equal('keep me');
      expect(log.infos()).to.have.length(4); // .del- removals are not announced
      // a save runs the same cleanup first; the live process's fresh folder still survives it
      await m.save(30, sampleParts(30), {});
      expect(fs.existsSync(liveFresh)).to.equal(true);
      // with a short staleness limit it goes
      mk({ staleAfterMs: 0 });
      expect(fs.existsSync(liveFresh)).to.equal(false);
    });

    it('a re-save interrupted between moving the old copy aside and renaming the new one in is recovered', async () => {
      const ck = path.join(dir, checkpointName(10));
      const aside = path.join(dir, `.old-${checkpointName(10)}-${deadPid()}-ab`);
      fs.renameSync(ck, aside);
      mkLeftover(`.tmp-${checkpointName(10)}-${deadPid()}-cd`);
      expect(await mk({ readOnly: true }).resolve('latest')).to.equal(null);
      const m = mk();
      expect(log.warnings().join('\n')).to.contain(`Restored ${ck}`);
      expect(entries(dir)).to.deep.equal(['best.json', checkpointName(10), 'latest.json']);
      expect((await m.resolve('latest'))!.path).to.equal(ck);
    });

    it('an .old- copy is removed when its step exists (the crash came after the new copy was renamed in)', async () => {
      const aside = path.join(dir, `.old-${checkpointName(10)}-${deadPid()}-ab`);
      fs.cpSync(path.join(dir, checkpointName(10)), aside, { recursive: true });
      mk();
      expect(fs.existsSync(aside)).to.equal(false);
      expect(entries(dir)).to.deep.equal(['best.json', checkpointName(10), 'latest.json']);
    });
  });
});
