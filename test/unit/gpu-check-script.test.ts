/** scripts/gpu-check.sh (the offline CUDA-machine check) must at least parse: `bash -n`. */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
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
});
