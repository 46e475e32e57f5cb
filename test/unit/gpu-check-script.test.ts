/**
 * scripts/gpu-check.sh (the offline CUDA-machine check) must at least parse (`bash -n`), carry the CUDA steps, and
 * skip them, one SKIP line each, in a dry run (run here with a 1-second budget so that every step is skipped).
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const script = path.resolve(__dirname, '..', '..', 'scripts', 'gpu-check.sh');

describe('scripts/gpu-check.sh', function () {
  it('exists, is executable and passes bash -n', function () {
    expect(fs.existsSync(script)).to.equal(true);
    expect(fs.statSync(script).mode & 0o111).to.not.equal(0);
    const r = spawnSync('bash', ['-n', script], { encoding: 'utf8' });
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(0);
  });

  it('honours $OUT and the 8-minute budget, and has a CPU dry run', function () {
    const text = fs.readFileSync(script, 'utf8');
    expect(text).to.match(/OUT:-/);
    expect(text).to.match(/GPU_CHECK_DRY_RUN/);
    expect(text).to.match(/budget_s="\$\{GPU_CHECK_BUDGET_S:-480\}"/);
    expect(text).to.match(/timeout /);
  });

  it('has the CUDA steps: fixtures on cuda:0, full bf16 at batch 4, the largest-batch search with GPU memory samples, NCCL', function () {
    const text = fs.readFileSync(script, 'utf8');
    expect(text).to.match(/CTCLIP_TEST_DEVICE=cuda:0/);
    expect(text).to.match(/--preset full --device cuda:0 --precision bf16/);
    expect(text).to.match(/--batch 4/);
    expect(text).to.match(/for b in 6 8 11 16 24/);
    expect(text).to.match(/OUT_OF_MEMORY/);
    expect(text).to.match(/nvidia-smi --query-gpu=memory\.used --format=csv,noheader(,nounits)? -lms 200/);
    expect(text).to.match(/bench\/distributed\.js [^\n]*--device cuda/);
    expect(text).to.not.match(/NOT RUN/);
  });

  it('skips every CUDA step in a dry run', function () {
    if (!fs.existsSync(path.resolve(__dirname, '..', '..', 'lib', 'index.js'))) this.skip();
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gpu-check-'));
    try {
      const r = spawnSync('bash', [script], {
        encoding: 'utf8',
        env: {
          ...process.env,
          GPU_CHECK_DRY_RUN: '1',
          GPU_CHECK_BUDGET_S: '1',
          OUT: out,
          CTCLIP_ADDON: process.env.CTCLIP_ADDON || 'dry-run-placeholder.node',
        },
        timeout: 60_000,
      });
      expect(r.status, r.stdout + r.stderr).to.equal(0);
      const summary = fs.readFileSync(path.join(out, 'summary.txt'), 'utf8');
      for (const name of ['fixture-tests-cuda', 'bench-full-bf16-b4', 'bench-full-bf16-largest', 'bench-nccl']) {
        expect(summary, name).to.match(new RegExp(`SKIP ${name}: `));
      }
      expect(summary).to.match(/done in \d+s/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
