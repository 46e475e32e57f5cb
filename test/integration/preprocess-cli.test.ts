/**
 * `ctclip preprocess` as a real process: CT-RATE layout → shards → index → loaders; skipped volumes listed;
 * resume; plan changes. And the real head CT (../shared/data/real-ct, HU NIfTI) through the whole chain with
 * its geometry asserted against the NIfTI itself (orientation: H, W, D = i, j, k as stored).
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { float16ArrayToFloat32 } from '../../lib/data/float16';
import { openIndex } from '../../lib/data/shard-index';
import { scanTar } from '../../lib/data/tar-index';
import { EvalLoader, TrainLoader } from '../../lib/data/loader';
import { CT_RATE_CLASSES } from '../../lib/data/classes';
import { readNifti, writeNifti } from '../../lib/preprocess/nifti';
import { preprocessVolumeFile } from '../../lib/preprocess/pipeline';
import type { PreprocessReport } from '../../lib/preprocess/dataset';
import { requireAddon } from '../helpers/native';
import { preprocessArgs } from '../helpers/data-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');
const cli = (...args: string[]): ReturnType<typeof spawnSync> =>
  spawnSync(process.execPath, [path.join(repoRoot, 'lib', 'cli.js'), 'preprocess', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });

function csv(rows: (string | number)[][]): string {
  return (
    rows
      .map((r) => r.map((c) => (/[",\n]/.test(String(c)) ? `"${String(c).replace(/"/g, '""')}"` : String(c))).join(','))
      .join('\n') + '\n'
  );
}

/** A small ball of HU 60 in air at a position that depends on `seed`. */
function ballVolume(seed: number): Buffer {
  const [ni, nj, nk] = [20, 18, 10];
  const data = new Float32Array(ni * nj * nk).fill(-1000);
  for (let k = 0; k < nk; k++)
    for (let j = 0; j < nj; j++)
      for (let i = 0; i < ni; i++)
        if ((i - 8 - seed) ** 2 + (j - 9) ** 2 + ((k - 5) * 2) ** 2 <= 25) data[i + ni * (j + nj * k)] = 60;
  return writeNifti({ data, shape: [ni, nj, nk], datatype: 'int16', spacing: [1, 1, 2], gzip: true });
}

describe('preprocess: ctclip preprocess (CT-RATE layout, synthetic balls)', function () {
  let dir: string;
  let out: string;
  const args = (): string[] => [
    ...preprocessArgs(dir, out, { metadata: true }),
    '--split',
    'train',
    '--samples-per-shard',
    '2',
    '--shape',
    '12,10,6',
    '--spacing',
    '2,2,4',
    '--workers',
    '2',
  ];

  before(function () {
    requireAddon(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-pre-cli-'));
    out = path.join(dir, 'out');
    const ids = ['train_1_a_1', 'train_1_a_2', 'train_2_a_1', 'train_3_a_1', 'train_4_a_1', 'valid_1_a_1'];
    ids.forEach((id, n) => {
      const [split, pid, letter] = id.split('_');
      const d = path.join(dir, 'vol', `${split}_${pid}`, `${split}_${pid}_${letter}`);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, `${id}.nii.gz`), ballVolume(n));
    });
    const reports = [['VolumeName', 'Findings_EN', 'Impressions_EN']];
    reports.push(['train_1_a_1.nii.gz', 'Lungs clear, no "nodule".\nHeart normal.', 'No acute findings.']);
    reports.push(['train_1_a_2.nii.gz', 'Same scan, second kernel.', '']);
    reports.push(['train_2_a_1.nii.gz', 'Effusion (small).', "Patient's effusion."]);
    reports.push(['train_4_a_1.nii.gz', 'No labels row for me.', 'x']);
    reports.push(['train_9_a_1.nii.gz', 'No volume for me.', 'x']);
    fs.writeFileSync(path.join(dir, 'reports.csv'), csv(reports));
    fs.writeFileSync(
      path.join(dir, 'labels.csv'),
      csv([
        ['VolumeName', 'Cardiomegaly', 'Pleural effusion', 'Lung nodule'],
        ['train_1_a_1.nii.gz', 0, 0, 1],
        ['train_1_a_2.nii.gz', 0, 1, 1],
        ['train_2_a_1.nii.gz', 1, 1, 0],
        ['train_3_a_1.nii.gz', 1, 0, 0],
      ]),
    );
    fs.writeFileSync(
      path.join(dir, 'metadata.csv'),
      csv([
        ['VolumeName', 'RescaleSlope', 'RescaleIntercept', 'XYSpacing', 'ZSpacing'],
        ...['train_1_a_1', 'train_1_a_2', 'train_2_a_1'].map((id) => [`${id}.nii.gz`, 1, -1024, '[1.0, 1.0]', 2]),
      ]),
    );
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('writes canonical shards, the index and the report; lists volumes without a report or labels row', async () => {
    const r = cli(...args());
    expect(r.status, String(r.stderr)).to.equal(0);
    expect(String(r.stderr)).to.match(/preprocess: 3\/3 volumes, [\d.]+ volumes\/s, ETA/);
    expect(
      fs
        .readdirSync(out)
        .filter((f) => f.endsWith('.tar'))
        .sort(),
    ).to.deep.equal(['shard-000000.tar', 'shard-000001.tar']);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'preprocess_report.json'), 'utf8')) as PreprocessReport;
    expect(report.counts).to.include({
      found: 5,
      planned: 3,
      written: 3,
      failed: 0,
      skipped: 2,
      shards: 2,
      shardsReused: 0,
    });
    expect(report.skipped.map((s) => [s.studyId, s.reason])).to.deep.equal([
      ['train_3_a_1', 'no report row'],
      ['train_4_a_1', 'no labels row'],
    ]);
    expect(report.rowsWithoutVolume).to.deep.equal({ count: 1, first: ['train_9_a_1'] });
    const v0 = report.volumes[0];
    expect(v0).to.include({ studyId: 'train_1_a_1', key: '000000_000000', shard: 0, status: 'ok' });
    expect(v0.meta!.rescale).to.include({ mode: 'auto', applied: false, intercept: -1024 });
    expect(v0.meta!.spacingSource).to.equal('metadata-csv');
    expect(v0.meta!.resampledSize).to.deep.equal([10, 9, 5]);
    expect(report.volumes[2]).to.include({ studyId: 'train_2_a_1', key: '000001_000000' });

    // Members, keys and bytes as the canonical format says.
    const scan = await scanTar(path.join(out, 'shard-000000.tar'));
    expect(scan.members.map((m) => m.name)).to.deep.equal(
      ['000000_000000', '000000_000001'].flatMap((k) => ['bin', 'json', 'labels', 'txt'].map((e) => `${k}.${e}`)),
    );
    const buf = fs.readFileSync(path.join(out, 'shard-000000.tar'));
    const member = (name: string): Buffer => {
      const m = scan.members.find((x) => x.name === name)!;
      return buf.subarray(m.offset, m.offset + m.size);
    };
    expect(member('000000_000000.json').toString()).to.equal(
      '{"study_id": "train_1_a_1", "volume_shape": [12, 10, 6], "volume_dtype": "float16"}',
    );
    expect(member('000000_000000.txt').toString()).to.equal(
      'Lungs clear, no "nodule".\nHeart normal.\nNo acute findings.',
    );
    expect(member('000000_000001.txt').toString()).to.equal('Same scan, second kernel.\nnan');
    const lab = member('000000_000001.labels');
    expect(
      Array.from(new Float32Array(lab.buffer.slice(lab.byteOffset, lab.byteOffset + lab.byteLength))),
    ).to.deep.equal([0, 1, 1]);
    expect(member('000000_000000.bin').byteLength).to.equal(12 * 10 * 6 * 2);

    // The index and the loaders.
    const index = openIndex(report.pattern);
    expect(index.totalSamples).to.equal(3);
    expect(index.classNames).to.deep.equal(['Cardiomegaly', 'Pleural effusion', 'Lung nodule']);
    expect(index.volumeShape).to.deep.equal([12, 10, 6]);
    const ev = new EvalLoader(index, { batchSize: 3, seed: 0 });
    for await (const b of ev.batches()) {
      expect(b.studyIds).to.deep.equal(['train_1_a_1', 'train_1_a_2', 'train_2_a_1']);
      expect(b.reports[1]).to.equal('Same scan, second kernel.\n'); // cleaned: the "nan" part is emptied
      expect(Array.from(b.labels)).to.deep.equal([0, 0, 1, 0, 1, 1, 1, 1, 0]);
      b.release();
    }
    await ev.close();
  });

  it('a re-run keeps complete shards and redoes a missing one', () => {
    const s0 = fs.statSync(path.join(out, 'shard-000000.tar')).mtimeMs;
    let r = cli(...args());
    expect(r.status, String(r.stderr)).to.equal(0);
    expect(String(r.stdout)).to.contain('2 complete shard(s) kept');
    fs.rmSync(path.join(out, 'shard-000001.tar'));
    r = cli(...args());
    expect(r.status, String(r.stderr)).to.equal(0);
    expect(String(r.stdout)).to.contain('1 complete shard(s) kept');
    expect(fs.statSync(path.join(out, 'shard-000000.tar')).mtimeMs).to.equal(s0);
    expect(fs.existsSync(path.join(out, 'shard-000001.tar'))).to.equal(true);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'preprocess_report.json'), 'utf8')) as PreprocessReport;
    expect(report.counts).to.include({ written: 3, shardsReused: 1 });
    expect(report.throughput.volumesProcessed).to.equal(1);
  });

  it('refuses a different plan in the same --out (exit 2) unless --force', () => {
    const changed = args().map((a) => (a === '12,10,6' ? '8,8,4' : a));
    let r = cli(...changed);
    expect(r.status).to.equal(2);
    expect(String(r.stderr)).to.match(/holds shards from a different plan .* --force/);
    r = cli(...changed, '--force');
    expect(r.status, String(r.stderr)).to.equal(0);
    expect(openIndex(path.join(out, 'shard-{000000..000001}.tar')).volumeShape).to.deep.equal([8, 8, 4]);
  });

  it('bad arguments exit 2 with the usage', () => {
    const r = cli('--volumes', dir, '--reports', 'x', '--labels', 'y', '--out', out, '--rescale', 'sometimes');
    expect(r.status).to.equal(2);
    expect(String(r.stderr)).to.match(/--rescale must be auto, always or never/);
    expect(cli('--volumes', dir).status).to.equal(2);
  });
});

const REAL_CT = path.resolve(repoRoot, '..', 'shared', 'data', 'real-ct', 'head_ct_promed0051_hu.nii.gz');

describe('preprocess: real head CT → ctclip preprocess → shards → index → loaders', function () {
  let dir: string;
  before(function () {
    requireAddon(this);
    if (!fs.existsSync(REAL_CT)) this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-pre-real-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('gives a (64, 64, 32) volume with air −1, soft tissue ≈ 0, and i, j, k as stored', async () => {
    // CT-RATE layout, with a CSV intercept of −1024 that must NOT be applied (the file is already HU).
    const vd = path.join(dir, 'vol', 'valid_1', 'valid_1_a');
    fs.mkdirSync(vd, { recursive: true });
    fs.symlinkSync(REAL_CT, path.join(vd, 'valid_1_a_1.nii.gz'));
    fs.writeFileSync(
      path.join(dir, 'reports.csv'),
      csv([
        ['VolumeName', 'Findings_EN', 'Impressions_EN'],
        ['valid_1_a_1.nii.gz', 'Head CT.', 'Not given.'],
      ]),
    );
    fs.writeFileSync(
      path.join(dir, 'labels.csv'),
      csv([
        ['VolumeName', ...CT_RATE_CLASSES],
        ['valid_1_a_1.nii.gz', ...CT_RATE_CLASSES.map(() => 0)],
      ]),
    );
    fs.writeFileSync(
      path.join(dir, 'metadata.csv'),
      csv([
        ['VolumeName', 'RescaleSlope', 'RescaleIntercept', 'XYSpacing', 'ZSpacing'],
        ['valid_1_a_1.nii.gz', 1, -1024, '[0.9570312, 0.9570312]', 1.5],
      ]),
    );
    const out = path.join(dir, 'out');
    const r = cli(
      ...preprocessArgs(dir, out, { metadata: true }),
      '--split',
      'valid',
      '--shape',
      '64,64,32',
      '--spacing',
      '4,4,4',
    );
    expect(r.status, String(r.stderr)).to.equal(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'preprocess_report.json'), 'utf8')) as PreprocessReport;
    const meta = report.volumes[0].meta!;
    expect(meta.storedShape).to.deep.equal([256, 256, 108]);
    expect(meta.resampledSize).to.deep.equal([61, 61, 40]); // int(256 · 0.9570312 / 4), int(108 · 1.5 / 4)
    expect(meta.rescale.applied).to.equal(false);
    expect(meta.airModeHu).to.be.within(-1100, -900);
    expect(meta.orientation).to.include({ reorient: 'none', inputCodes: 'LAS' });
    expect(meta.warnings).to.deep.equal([]);

    const index = openIndex(report.pattern);
    expect(index.classNames).to.deep.equal([...CT_RATE_CLASSES]);
    const train = new TrainLoader(index, { batchSize: 1, seed: 1 });
    let batches = 0;
    let vol: Float32Array | undefined;
    for await (const b of train.batches()) {
      batches++;
      expect(b.volumeShape).to.deep.equal([64, 64, 32]);
      expect(b.studyIds).to.deep.equal(['valid_1_a_1']);
      expect(b.reports).to.deep.equal(['Head CT.\n']);
      vol = float16ArrayToFloat32(new Uint16Array(b.volumes.buffer, b.volumes.byteOffset, 64 * 64 * 32));
      // Same bytes as the in-memory path predict will use.
      const mem = await preprocessVolumeFile(REAL_CT, {
        spacing: [4, 4, 4],
        shape: [64, 64, 32],
        sourceSpacing: { xy: 0.9570312, z: 1.5 },
        slope: 1,
        intercept: -1024,
      });
      expect(Buffer.compare(mem.volume, b.volumes.subarray(0, 64 * 64 * 32 * 2))).to.equal(0);
      b.release();
    }
    expect(batches).to.equal(1);
    await train.close();
    const ev = new EvalLoader(index, { batchSize: 2, seed: 0 });
    for await (const b of ev.batches()) {
      expect(b.keys).to.deep.equal(['000000_000000']);
      b.release();
    }
    await ev.close();

    // Values: in [−1, 1]; padding and air exactly −1; the head's soft tissue near 0.
    const S = [64, 64, 32];
    const at = (h: number, w: number, d: number): number => vol![(h * S[1] + w) * S[2] + d];
    let min = Infinity,
      max = -Infinity,
      air = 0;
    const tissue: number[] = [];
    for (const x of vol!) {
      min = Math.min(min, x);
      max = Math.max(max, x);
      if (x === -1) air++;
      else if (x > -0.2 && x < 0.2) tissue.push(x);
    }
    expect(min).to.equal(-1);
    expect(max).to.be.at.most(1);
    expect(max).to.be.greaterThan(0.5); // bone
    expect(air / vol!.length).to.be.greaterThan(0.2);
    tissue.sort((a, b) => a - b);
    expect(tissue[tissue.length >> 1]).to.be.within(0, 0.06); // brain ≈ 24 HU
    expect(at(0, 0, 0)).to.equal(-1); // pad before H and W (61 → 64: 1 before)

    // Orientation: the head's centroid per axis, computed from the NIfTI itself in mm, lands where
    // i → H, j → W, k → D (as stored) put it: c/4 − 0.5 + 1 (pad) for H, W; c/4 − 0.5 − 4 (crop) for D.
    const nifti = await readNifti(REAL_CT);
    const [ni, nj, nk] = nifti.shape;
    const sp = [0.9570312, 0.9570312, 1.5];
    const c = [0, 0, 0];
    let m = 0;
    for (let k = 0; k < nk; k++) {
      const z = (k + 0.5) * sp[2];
      if (z < 16 || z >= 144) continue; // the physical D range kept by the crop (slices 4..35 of 40 at 4 mm)
      for (let j = 0; j < nj; j++)
        for (let i = 0; i < ni; i++)
          if (nifti.data[i + ni * (j + nj * k)] > -500) {
            c[0] += (i + 0.5) * sp[0];
            c[1] += (j + 0.5) * sp[1];
            c[2] += z;
            m++;
          }
    }
    const expected = [c[0] / m / 4 - 0.5 + 1, c[1] / m / 4 - 0.5 + 1, c[2] / m / 4 - 0.5 - 4];
    const got = [0, 0, 0];
    let mo = 0;
    for (let h = 0; h < 64; h++)
      for (let w = 0; w < 64; w++)
        for (let d = 0; d < 32; d++)
          if (at(h, w, d) > -0.5) {
            got[0] += h;
            got[1] += w;
            got[2] += d;
            mo++;
          }
    got.forEach((g, a) => expect(g / mo, `axis ${'HWD'[a]}`).to.be.closeTo(expected[a], 0.5));
    // +k is superior (README): the head narrows toward the vertex, so the top slices hold less tissue than the middle.
    const area = (d: number): number => {
      let n = 0;
      for (let h = 0; h < 64; h++) for (let w = 0; w < 64; w++) if (at(h, w, d) > -0.5) n++;
      return n;
    };
    expect(area(31)).to.be.lessThan(area(16));
  });
});
