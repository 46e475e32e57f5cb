import { expect } from 'chai';
import { Writable } from 'stream';
import { EtaEstimator } from '../../lib/logging/eta';
import { ProgressReporter, formatProgressLine, formatResourceLine, processMemory } from '../../lib/logging/progress';

const GB = 1024 ** 3;

class FakeClock {
  t = 1000;
  now = (): number => this.t;
  advance(s: number): void {
    this.t += s;
  }
}

class Capture extends Writable {
  chunks: string[] = [];
  isTTY?: boolean;
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.chunks.push(chunk.toString());
    cb();
  }
  get text(): string {
    return this.chunks.join('');
  }
}

describe('logging/progress lines', () => {
  it('formats the documented progress line exactly', () => {
    const line = formatProgressLine({
      step: 5234,
      totalSteps: 147500,
      epoch: 5234 / 7375,
      loss: 0.12344,
      lr: 1.2e-6,
      stepTime: 0.5212,
      eta: 20 * 3600 + 34 * 60 + 5,
      elapsed: 45 * 60 + 12.7,
    });
    expect(line).to.equal(
      'Step 5234/147500 (Epoch 0.71) | Loss: 0.1234 | LR: 1.2e-06 | Time/Step: 0.52s | ETA: 20h 34m | Elapsed: 45m 12s',
    );
  });

  it('prints calculating... while the ETA is unknown', () => {
    const line = formatProgressLine({
      step: 1,
      totalSteps: 10,
      epoch: 0.1,
      loss: NaN,
      lr: 0,
      stepTime: 0,
      eta: null,
      elapsed: 0,
    });
    expect(line).to.equal(
      'Step 1/10 (Epoch 0.10) | Loss: nan | LR: 0.0e+00 | Time/Step: 0.00s | ETA: calculating... | Elapsed: 0s',
    );
  });

  it('formats the resource line for CPU and CUDA', () => {
    expect(
      formatResourceLine({ rssBytes: 1.23 * GB, peakRssBytes: 1.5 * GB, dataTime: 0.0104, stepTime: 0.52 }),
    ).to.equal('  Memory: RSS 1.23 GB (peak 1.50 GB) | Data: 0.01s/step (2%)');
    expect(formatResourceLine({ rssBytes: 1.23 * GB, dataTime: 0.6, stepTime: 0.5 })).to.equal(
      '  Memory: RSS 1.23 GB | Data: 0.60s/step (100%)',
    );
    expect(
      formatResourceLine({
        rssBytes: 1.23 * GB,
        cuda: { device: 0, allocatedBytes: 3.21 * GB, reservedBytes: 4 * GB, peakAllocatedBytes: 3.5 * GB },
        utilizationPct: 87.4,
        dataTime: 0.01,
        stepTime: 0.5,
      }),
    ).to.equal(
      '  Memory: GPU0 3.21 GB alloc / 4.00 GB reserved (peak 3.50 GB) | RSS 1.23 GB | Util: 87% | Data: 0.01s/step (2%)',
    );
    expect(formatResourceLine({ rssBytes: 0, utilizationPct: null, dataTime: 0, stepTime: 0 })).to.equal(
      '  Memory: RSS 0.00 GB | Data: 0.00s/step (0%)',
    );
  });

  it('processMemory reports a positive RSS and a peak >= RSS-ish', () => {
    const m = processMemory();
    expect(m.rssBytes).to.be.greaterThan(0);
    expect(m.peakRssBytes).to.be.greaterThan(0);
  });
});

describe('logging/EtaEstimator', () => {
  it('is null before the first step, then (total - step) x mean of the window', () => {
    const c = new FakeClock();
    const eta = new EtaEstimator({ totalSteps: 100, window: 3, now: c.now });
    eta.start();
    expect(eta.eta()).to.equal(null);
    for (const d of [1, 2, 3, 4]) {
      c.advance(d);
      eta.stepDone(eta.lastStep + 1);
    }
    // window 3 keeps 2, 3, 4 → mean 3; 96 steps left
    expect(eta.meanStepTime()).to.equal(3);
    expect(eta.eta()).to.equal(96 * 3);
    expect(eta.elapsed()).to.equal(10);
  });

  it('excludes paused time (validation, checkpoint): the ETA never rises because of a pause', () => {
    const c = new FakeClock();
    const eta = new EtaEstimator({ totalSteps: 50, window: 10, now: c.now });
    eta.start();
    let previous = Infinity;
    for (let step = 1; step <= 50; step++) {
      c.advance(0.25); // data + compute of a step, part before a possible pause...
      if (step % 10 === 0) {
        eta.pause();
        c.advance(120); // validation
        eta.pause(); // nested: checkpoint inside the validation bracket
        c.advance(30);
        eta.resume();
        eta.resume();
      }
      c.advance(0.25); // ... and after it
      eta.stepDone(step);
      const e = eta.eta() as number;
      expect(e).to.be.at.most(previous);
      expect(eta.meanStepTime()).to.be.closeTo(0.5, 1e-12);
      previous = e;
    }
    expect(eta.eta()).to.equal(0);
    // elapsed is wall time: the pauses are part of how long the run took
    expect(eta.elapsed()).to.be.closeTo(50 * 0.5 + 5 * 150, 1e-9);
  });

  it('accepts caller-measured durations, counts elapsed from start() (not construction) plus an offset', () => {
    const c = new FakeClock();
    const eta = new EtaEstimator({ totalSteps: 1000, startStep: 400, elapsedOffset: 3600, now: c.now });
    c.advance(500); // trainer init, checkpoint loading: not elapsed
    expect(eta.elapsed()).to.equal(3600);
    eta.start();
    c.advance(10);
    eta.stepDone(401, 2);
    expect(eta.eta()).to.equal(599 * 2);
    expect(eta.elapsed()).to.equal(3610);
  });

  it('rejects misuse with ARGUMENT_ERROR', () => {
    const c = new FakeClock();
    const eta = new EtaEstimator({ totalSteps: 10, now: c.now });
    expect(() => eta.stepDone(1)).to.throw(/before start/);
    eta.start();
    expect(() => eta.resume()).to.throw(/without a matching pause/);
    eta.pause();
    expect(() => eta.stepDone(1)).to.throw(/while paused/);
    expect(() => new EtaEstimator({ totalSteps: 10, window: 0 })).to.throw(/window/);
  });

  it('paused(fn) brackets an async span', async () => {
    const c = new FakeClock();
    const eta = new EtaEstimator({ totalSteps: 10, now: c.now });
    eta.start();
    c.advance(1);
    await eta.paused(async () => c.advance(100));
    eta.stepDone(1);
    expect(eta.meanStepTime()).to.equal(1);
  });
});

describe('logging/ProgressReporter', () => {
  it('prints plain lines and drops status updates off a TTY', () => {
    const out = new Capture();
    const r = new ProgressReporter({ stream: out });
    expect(r.interactive).to.equal(false);
    r.status('step 2...');
    r.progress(
      { step: 1, totalSteps: 10, epoch: 0.1, loss: 1, lr: 1e-5, stepTime: 1, eta: null, elapsed: 1 },
      { rssBytes: GB, peakRssBytes: GB, dataTime: 0.1, stepTime: 1 },
    );
    r.log('hello');
    r.stop();
    expect(out.text).to.equal(
      'Step 1/10 (Epoch 0.10) | Loss: 1.0000 | LR: 1.0e-05 | Time/Step: 1.00s | ETA: calculating... | Elapsed: 1s\n' +
        '  Memory: RSS 1.00 GB (peak 1.00 GB) | Data: 0.10s/step (10%)\n' +
        'hello\n',
    );
  });

  it('on a TTY keeps a spinner for the status and writes lines above it', () => {
    const out = new Capture() as Capture & {
      clearLine: () => boolean;
      cursorTo: () => boolean;
      moveCursor: () => boolean;
      columns: number;
    };
    out.isTTY = true;
    out.columns = 120;
    out.clearLine = () => true;
    out.cursorTo = () => true;
    out.moveCursor = () => true;
    const r = new ProgressReporter({ stream: out, tty: true });
    r.status('step 2/10');
    r.log('a persistent line');
    r.status('step 3/10');
    r.stop();
    expect(out.text).to.contain('step 2/10');
    expect(out.text).to.contain('a persistent line\n');
    expect(out.text).to.contain('step 3/10');
  });
});
