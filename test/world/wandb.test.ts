/**
 * Live W&B logging through the real `wandb` package, offline (`WANDB_MODE=offline`): a real training run with
 * `logging.use_wandb`, then the offline run read back from its transaction log (`run-<id>.wandb`) and checked
 * against metrics.jsonl and config.yaml: every logged key at every step, the run's project / group / job type /
 * name / config, and the best metric in the summary. A resume continues the same W&B run id.
 *
 * wandb 0.30 ships no Python reader for its transaction log (`wandb.Api` needs a server), so READ_RUN below splits
 * the file's records itself (LevelDB log framing after the 7-byte `:W&B` header: 32 KiB blocks, records of
 * CRC-32 (zlib, seeded with the type byte), u16 length, type FULL/FIRST/MIDDLE/LAST) and decodes each with the
 * package's own protobuf, `wandb.proto.wandb_internal_pb2.Record`.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { readMetricsJsonl, WandbSidecar, type MetricsEvent, type WandbReady } from '../../lib/logging';
import { requirePython, runPython } from '../helpers/python';
import { describeRun, runTrain, trainSuite, writeTrainConfig } from '../helpers/train-fixtures';

const READ_RUN = `
import glob, json, struct, sys, zlib
from wandb.proto import wandb_internal_pb2 as pb

def records(file):
    buf = open(file, 'rb').read()
    ident, magic, version = struct.unpack('<4sHB', buf[:7])
    assert ident == b':W&B' and magic == 0xBEE1 and version == 0, (file, ident, magic, version)
    pos, pending = 7, b''
    while pos + 7 <= len(buf):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        crc, n, kind = struct.unpack('<IHB', buf[pos:pos + 7])
        data = buf[pos + 7:pos + 7 + n]
        if kind == 0 and n == 0:  # zero padding up to the next block
            pos += left
            continue
        assert zlib.crc32(data, zlib.crc32(bytes([kind]))) & 0xffffffff == crc, (file, 'CRC at', pos)
        pos += 7 + n
        if kind == 1:
            yield data
        elif kind == 2:
            pending = data
        elif kind == 3:
            pending += data
        elif kind == 4:
            yield pending + data
        else:
            raise ValueError(f'{file}: record type {kind} at {pos}')

def key(item):
    return item.key or '/'.join(item.nested_key)

out = []
for file in sys.argv[1:]:
    run, history, summary, config = None, [], {}, {}
    for data in records(file):
        r = pb.Record()
        r.ParseFromString(data)
        kind = r.WhichOneof('record_type')
        if kind == 'run':
            run = {'id': r.run.run_id, 'project': r.run.project, 'entity': r.run.entity, 'group': r.run.run_group,
                   'job_type': r.run.job_type, 'name': r.run.display_name}
            config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == 'config':
            config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == 'history':
            history.append({'step': r.history.step.num, 'items': {key(i): json.loads(i.value_json) for i in r.history.item}})
        elif kind == 'summary':
            summary.update({key(i): json.loads(i.value_json) for i in r.summary.update})
    out.append({'run': run, 'history': history, 'summary': summary, 'config': config})
print(json.dumps(out))
`;

interface OfflineRun {
  run: { id: string; project: string; entity: string; group: string; job_type: string; name: string };
  history: { step: number; items: Record<string, unknown> }[];
  summary: Record<string, unknown>;
  config: Record<string, unknown>;
}

/** The scalars the trainer logs at each step (as lib/logging/run-log.ts builds them), from metrics.jsonl. */
function expectedScalars(events: MetricsEvent[]): Map<number, Record<string, number>> {
  const out = new Map<number, Record<string, number>>();
  const at = (step: number): Record<string, number> => out.get(step) ?? (out.set(step, {}), out.get(step)!);
  for (const e of events) {
    if (e.type === 'train') {
      const row = at(e.step);
      row['train/epoch'] = e.epoch as number;
      for (const [k, v] of Object.entries(e))
        if (!['type', 'step', 'epoch', 'time', 'rss_gb'].includes(k) && typeof v === 'number') row[`train/${k}`] = v;
    } else if (e.type === 'val') {
      const row = at(e.step);
      for (const [k, v] of Object.entries(e))
        if (/^(macro|weighted)_/.test(k) && typeof v === 'number') row[`val/${k}`] = v;
      const perClass = e.per_class as Record<string, { auroc?: number | null }>;
      for (const [c, m] of Object.entries(perClass))
        if (typeof m.auroc === 'number') row[`val/per_class_auroc/${c}`] = m.auroc;
    }
  }
  return out;
}

describe('world: live W&B logging (wandb, offline)', function () {
  this.timeout(600_000);
  const suite = trainSuite('wandb');

  it('logs every train/val scalar at its step, the config and the best metric; a resume continues the run id', async function () {
    const py = requirePython(this, ['wandb']);
    const runDir = path.join(suite.dir, 'run');
    const home = path.join(suite.dir, 'wandb-home');
    const env = {
      CTCLIP_WANDB_PYTHON: py,
      WANDB_MODE: 'offline',
      WANDB_CONFIG_DIR: home,
      WANDB_CACHE_DIR: home,
      WANDB_DATA_DIR: home,
    };
    const cfg = writeTrainConfig(suite.dir, suite.data, runDir, {
      training: { max_steps: 8, max_epochs: null, save_every_n_steps: 4, warmup_steps: 2, threads: 1 },
      validation: { eval_every_n_steps: 3, eval_samples: 8 },
      logging: {
        log_every_n_steps: 1,
        use_tensorboard: false,
        use_wandb: true,
        wandb: { project: 'ctclip-world', group: 'world-tests', job_type: 'train', name: 'wandb-world' },
      },
    });
    // First run: killed inside the save of step 6 (validation at 3 and 6 ran; last checkpoint: step 4).
    const killed = await runTrain(['--config', cfg], { ...env, CTCLIP_TEST_FAULT: 'kill-before-commit=6' });
    expect(killed.signal, describeRun(killed)).to.equal('SIGKILL');
    expect(killed.stdout).to.match(
      /W&B: logging live with wandb \d+\.\d+\.\d+ .*project ctclip-world, run id \w+, mode offline/,
    );
    const id = (JSON.parse(fs.readFileSync(path.join(runDir, 'wandb_run.json'), 'utf8')) as { id: string }).id;

    const resumed = await runTrain(['--config', cfg, '--resume', 'latest'], env);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    expect(resumed.stdout).to.include(`run id ${id} (resumed)`);
    expect(resumed.stdout).to.include(`W&B: run ${id} (project ctclip-world, mode offline) was logged live`);

    // One offline run folder per process, both with the same W&B run id, in start order.
    const folders = fs
      .readdirSync(path.join(runDir, 'wandb'))
      .filter((n) => n.startsWith('offline-run-'))
      .sort();
    expect(folders).to.have.length(2);
    for (const f of folders) expect(f.endsWith(`-${id}`), f).to.equal(true);
    const files = folders.map((f) => path.join(runDir, 'wandb', f, `run-${id}.wandb`));
    const [first, second] = JSON.parse(runPython(py, READ_RUN, files)) as OfflineRun[];

    for (const r of [first, second]) {
      expect(r.run).to.deep.equal({
        id,
        project: 'ctclip-world',
        entity: '',
        group: 'world-tests',
        job_type: 'train',
        name: 'wandb-world',
      });
      // The whole resolved config (config.yaml is the latest start's).
      const { _wandb: _ignored, ...config } = r.config;
      expect(config).to.deep.equal(YAML.parse(fs.readFileSync(path.join(runDir, 'config.yaml'), 'utf8')));
    }

    // metrics.jsonl after the resume is the trajectory of the final weights: steps 1-4 of the first process, 5-8
    // of the resumed one. The first W&B run also holds the killed process's steps 5 and 6 (W&B keeps them).
    const expected = expectedScalars(readMetricsJsonl(path.join(runDir, 'metrics.jsonl')));
    expect([...expected.keys()]).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
    const rows = (r: OfflineRun): Map<number, Record<string, unknown>> =>
      new Map(
        r.history.map((h) => {
          const { _step, _runtime: _r, _timestamp: _t, ...items } = h.items;
          expect(_step, 'history _step').to.equal(h.step);
          return [h.step, items];
        }),
      );
    const firstRows = rows(first);
    const secondRows = rows(second);
    expect([...firstRows.keys()]).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect([...secondRows.keys()]).to.deep.equal([5, 6, 7, 8]);
    for (const [step, want] of expected) {
      const got = step <= 4 ? firstRows.get(step) : secondRows.get(step);
      expect(got, `W&B history at step ${step}`).to.deep.equal(want);
    }
    expect(Object.keys(firstRows.get(3)!).filter((k) => k.startsWith('val/'))).to.include('val/weighted_auroc');

    // Summary: the best metric of the run (the resumed process carries the restored best and any newer one).
    const bests = readMetricsJsonl(path.join(runDir, 'metrics.jsonl')).filter((e) => e.type === 'best');
    expect(bests.length).to.be.greaterThan(0);
    const best = bests[bests.length - 1];
    expect(second.summary[`best/${best.metric}`]).to.equal(best.value);
    expect(second.summary['best/step']).to.equal(best.step);
    expect(second.summary['train/loss']).to.equal(expected.get(8)!['train/loss']);
  });

  it('a client that dies mid-run is one warning with the sync hint; later records are dropped without error', async function () {
    const py = requirePython(this, ['wandb']);
    const env = { WANDB_MODE: 'offline', WANDB_SILENT: 'true', WANDB_CONFIG_DIR: path.join(suite.dir, 'wandb-home') };
    Object.assign(process.env, env); // the sidecar inherits the environment
    fs.mkdirSync(path.join(suite.dir, 'dies'), { recursive: true });
    const warnings: string[][] = [];
    let ready: WandbReady | null = null;
    const sidecar = WandbSidecar.start(
      py,
      {
        project: 'p',
        entity: null,
        group: null,
        job_type: null,
        name: 'dies',
        mode: 'offline',
        dir: path.join(suite.dir, 'dies'),
        id: 'dies0001',
        resume: null,
        config: {},
      },
      { warn: (...l) => warnings.push(l), fallback: ['hint'], onReady: (r) => (ready = r) },
    );
    try {
      const deadline = Date.now() + 120_000;
      while (!ready && !warnings.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(warnings).to.deep.equal([]);
      expect(ready).to.include({ id: 'dies0001' });
      sidecar.log(1, { 'train/loss': 1 });
      process.kill(-(sidecar.pid as number), 'SIGKILL'); // the sidecar and the wandb-core it started
      while (!warnings.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(warnings).to.deep.equal([['W&B: live logging stopped: it exited (signal SIGKILL).', 'hint']]);
      sidecar.log(2, { 'train/loss': 2 });
      sidecar.summary({ 'best/x': 1 });
      sidecar.finish(0);
      expect(warnings).to.have.length(1);
      expect(sidecar.stopped).to.equal(true);
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
  });
});
