import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MetricsJsonlWriter, readMetricsJsonl } from '../../lib/logging/jsonl';

describe('logging/metrics.jsonl', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-jsonl-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const clock = (): number => 1700000000.5;

  it('writes strict JSON lines (NaN → null) with type, step, epoch, time first, one line per event, immediately', () => {
    const w = MetricsJsonlWriter.open(dir, { clock });
    w.write({ loss: NaN, type: 'train', lr: 1e-6, step: 10, epoch: 0.25, grad_norm: Infinity });
    // written before flush/close
    const text = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8');
    expect(text).to.equal(
      '{"type":"train","step":10,"epoch":0.25,"time":1700000000.5,"loss":null,"lr":0.000001,"grad_norm":null}\n',
    );
    w.write({ type: 'val', step: 20, time: 5, per_class: { A: { auroc: NaN } } });
    w.close();
    const events = readMetricsJsonl(path.join(dir, 'metrics.jsonl'));
    expect(events).to.have.length(2);
    expect(events[1]).to.deep.equal({ type: 'val', step: 20, time: 5, per_class: { A: { auroc: null } } });
    expect(() => w.write({ type: 'train', step: 1 })).to.throw(/after close/);
  });

  it('a fresh run truncates; a resume from step k keeps only step <= k and appends a resume event', () => {
    let w = MetricsJsonlWriter.open(dir, { clock });
    for (let s = 10; s <= 50; s += 10) w.write({ type: 'train', step: s, loss: s });
    w.write({ type: 'val', step: 30, macro_auroc: 0.6 });
    w.write({ type: 'checkpoint', step: 30 });
    w.close();
    w = MetricsJsonlWriter.open(dir, { resumeStep: 30, clock });
    w.write({ type: 'train', step: 40, loss: 41 });
    w.close();
    const events = readMetricsJsonl(path.join(dir, 'metrics.jsonl'));
    expect(events.map((e) => `${e.type}@${e.step}`)).to.deep.equal([
      'train@10',
      'train@20',
      'train@30',
      'val@30',
      'checkpoint@30',
      'resume@30',
      'train@40',
    ]);
    expect(events[events.length - 1].loss).to.equal(41);
    // no temp file left behind
    expect(fs.readdirSync(dir)).to.deep.equal(['metrics.jsonl']);
    // fresh run: truncated
    MetricsJsonlWriter.open(dir, { clock }).close();
    expect(fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')).to.equal('');
  });

  it('resume when no file exists yet starts one with the resume event', () => {
    const w = MetricsJsonlWriter.open(path.join(dir, 'new'), { resumeStep: 7, clock });
    w.close();
    expect(readMetricsJsonl(path.join(dir, 'new', 'metrics.jsonl'))).to.deep.equal([
      { type: 'resume', step: 7, time: 1700000000.5 },
    ]);
  });

  it('ignores a torn last line (crash mid-write), including on resume; other bad lines are DATA_ERRORs', () => {
    const file = path.join(dir, 'metrics.jsonl');
    fs.writeFileSync(file, '{"type":"train","step":1}\n{"type":"train","step":2}\n{"type":"tra');
    expect(readMetricsJsonl(file).map((e) => e.step)).to.deep.equal([1, 2]);
    MetricsJsonlWriter.open(dir, { resumeStep: 2, clock }).close();
    expect(fs.readFileSync(file, 'utf8')).to.equal(
      '{"type":"train","step":1}\n{"type":"train","step":2}\n{"type":"resume","step":2,"time":1700000000.5}\n',
    );
    fs.writeFileSync(file, '{"type":"train","step":1}\nnot json\n{"type":"train","step":2}\n');
    expect(() => readMetricsJsonl(file)).to.throw(/metrics\.jsonl:2: not valid JSON/);
    fs.writeFileSync(file, '{"step":1}\n');
    expect(() => readMetricsJsonl(file)).to.throw(/:1: expected an object/);
  });

  it('rejects bad steps', () => {
    const w = MetricsJsonlWriter.open(dir, { clock });
    expect(() => w.write({ type: 'train', step: 1.5 })).to.throw(/integer/);
    w.close();
    expect(() => MetricsJsonlWriter.open(dir, { resumeStep: -1 })).to.throw(/resumeStep/);
  });
});
