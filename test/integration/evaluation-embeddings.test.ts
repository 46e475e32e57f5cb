/**
 * The embeddings export and the pure-TS safetensors reader against Python-written files: every fixture
 * `../shared/fixtures/<case>/*.safetensors` (written by Python safetensors) is parsed, checked against known
 * values and invariants, and re-encoded byte-identically by our writer.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { embeddingsSidecarPath, readEmbeddings, writeEmbeddings } from '../../lib/results/embeddings';
import { SafetensorsTensor, encodeSafetensors, readSafetensors, readSafetensorsHeader } from '../../lib/io/safetensors';
import { fixturePath, fixturesAvailable, fixturesDir } from '../helpers/fixtures';

function f32(st: Awaited<ReturnType<typeof readSafetensors>>, name: string): Float32Array {
  const t = st.tensors.get(name);
  expect(t, name).to.not.equal(undefined);
  expect(t!.dtype, name).to.equal('F32');
  return t!.data as Float32Array;
}

describe('integration: embeddings export', function () {
  let dir: string;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-embed-'));
  });
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const n = 3;
  const d = 4;
  const e = 5;
  const imageLatents = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i) / 2);
  const textLatents = Float32Array.from({ length: n * d }, (_, i) => Math.cos(i) / 3);
  const imageEmbeddings = Float32Array.from({ length: n * e }, (_, i) => i - 7.25);
  const studyIds = ['valid_1_a_1', 'valid_2, "b"', 'välid_3'];

  it('writes a safetensors file plus sidecar that read back exactly', async function () {
    const out = path.join(dir, 'emb.safetensors');
    const created = new Date(Date.UTC(2025, 5, 1));
    const res = await writeEmbeddings(
      out,
      { studyIds, imageLatents, textLatents, imageEmbeddings },
      { checkpoint: 'w.safetensors', score: NaN },
      { created },
    );
    expect(res).to.deep.include({ nSamples: 3, dimLatent: 4, dimEmbedding: 5 });
    expect(res.files).to.deep.equal({ safetensors: out, sidecar: `${out}.json` });
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['emb.safetensors', 'emb.safetensors.json']);

    const header = await readSafetensorsHeader(out);
    expect(header.headerLength % 8).to.equal(0);
    expect(header.tensors.map((t) => [t.name, t.dtype, t.shape])).to.deep.equal([
      ['image_latents', 'F32', [3, 4]],
      ['text_latents', 'F32', [3, 4]],
      ['image_embeddings', 'F32', [3, 5]],
    ]);
    expect(header.metadata.format).to.equal('pt');
    expect(header.metadata.n_samples).to.equal('3');
    expect(header.metadata.sidecar).to.equal('emb.safetensors.json');
    expect(header.metadata.producer).to.match(/^ctclip \d+\.\d+\.\d+/);
    expect(JSON.parse(header.metadata.ctclip_meta)).to.deep.equal({ checkpoint: 'w.safetensors', score: null });

    // Independent check of the raw bytes: the first float of the data section is imageLatents[0] (LE).
    const raw = fs.readFileSync(out);
    expect(raw.readFloatLE(header.dataStart)).to.equal(imageLatents[0]);
    expect(raw.readFloatLE(header.dataStart + 4 * n * d)).to.equal(textLatents[0]);

    const back = await readEmbeddings(out);
    expect(back.imageLatents).to.deep.equal(imageLatents);
    expect(back.textLatents).to.deep.equal(textLatents);
    expect(back.imageEmbeddings).to.deep.equal(imageEmbeddings);
    expect(back.sidecar).to.deep.equal({
      format: 'ctclip-embeddings',
      format_version: 1,
      created: '2025-06-01T00:00:00.000Z',
      ctclip_version: require('../../package.json').version,
      safetensors: 'emb.safetensors',
      n_samples: 3,
      tensors: { image_latents: [3, 4], text_latents: [3, 4], image_embeddings: [3, 5] },
      study_ids: studyIds,
      meta: { checkpoint: 'w.safetensors', score: null },
    });
  });

  it('image embeddings are optional', async function () {
    const out = path.join(dir, 'no-emb.safetensors');
    const res = await writeEmbeddings(out, { studyIds, imageLatents, textLatents });
    expect(res.dimEmbedding).to.equal(null);
    const back = await readEmbeddings(out);
    expect(back.imageEmbeddings).to.equal(null);
    expect(Object.keys(back.shapes)).to.deep.equal(['image_latents', 'text_latents']);
  });

  it('refuses inconsistent input (ARGUMENT_ERROR) and mismatched pairs (DATA_ERROR)', async function () {
    const out = path.join(dir, 'bad.safetensors');
    const cases: Array<[Parameters<typeof writeEmbeddings>[1], RegExp]> = [
      [{ studyIds: [], imageLatents, textLatents }, /no study ids/],
      [{ studyIds, imageLatents: imageLatents.subarray(1), textLatents }, /imageLatents has 11 values/],
      [
        { studyIds, imageLatents, textLatents: new Float32Array(n * 2) },
        /textLatents are 3 × 2 but imageLatents are 3 × 4/,
      ],
      [
        { studyIds, imageLatents: Array.from(imageLatents) as unknown as Float32Array, textLatents },
        /imageLatents must be a Float32Array/,
      ],
    ];
    for (const [input, re] of cases) {
      let err: unknown;
      await writeEmbeddings(out, input).catch((x) => (err = x));
      expect(err, String(re)).to.have.property('code', 'ARGUMENT_ERROR');
      expect((err as Error).message).to.match(re);
    }
    expect(fs.existsSync(out)).to.equal(false);
    // A sidecar that lists a different number of study ids than the tensors have rows.
    const good = path.join(dir, 'pair.safetensors');
    await writeEmbeddings(good, { studyIds, imageLatents, textLatents });
    const side = JSON.parse(fs.readFileSync(embeddingsSidecarPath(good), 'utf8'));
    side.study_ids.pop();
    fs.writeFileSync(embeddingsSidecarPath(good), JSON.stringify(side));
    let err: unknown;
    await readEmbeddings(good).catch((x) => (err = x));
    expect(err).to.have.property('code', 'DATA_ERROR');
    expect((err as Error).message).to.match(/expected F32 \[2, d\]/);
  });
});

describe('integration: pure-TS safetensors reader on the Python-written fixtures', function () {
  before(function () {
    if (!fixturesAvailable()) this.skip();
  });

  function fixtureFiles(): string[] {
    const root = fixturesDir();
    return fs
      .readdirSync(root, { withFileTypes: true })
      .filter((x) => x.isDirectory())
      .flatMap((x) =>
        fs
          .readdirSync(path.join(root, x.name))
          .filter((f) => f.endsWith('.safetensors'))
          .map((f) => path.join(root, x.name, f)),
      );
  }

  it('parses every fixture file and re-encodes it byte-identically (same layout as the Python writer)', async function () {
    const files = fixtureFiles();
    expect(files.length).to.be.greaterThan(10);
    for (const file of files) {
      const st = await readSafetensors(file);
      expect(st.header.headerLength % 8, file).to.equal(0);
      const inDataOrder = st.header.tensors.slice().sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
      const entries = inDataOrder.map((t) => [t.name, st.tensors.get(t.name)!] as [string, SafetensorsTensor]);
      const meta = Object.keys(st.header.metadata).length > 0 ? st.header.metadata : undefined;
      const again = encodeSafetensors(entries, meta);
      const original = fs.readFileSync(file);
      if (meta === undefined) expect(Buffer.compare(again, original), file).to.equal(0);
      else
        expect(
          again
            .subarray(again.length - st.header.dataLength)
            .equals(original.subarray(original.length - st.header.dataLength)),
          file,
        ).to.equal(true);
    }
  });

  it("ctclip_tiny outputs: known values from the README and meta.json, and the latents' invariants", async function () {
    const st = await readSafetensors(fixturePath('ctclip_tiny', 'outputs.safetensors'));
    const meta = JSON.parse(fs.readFileSync(fixturePath('ctclip_tiny', 'meta.json'), 'utf8')) as {
      loss: number;
      grad_norm_preclip: number;
      temperature: number;
    };
    const loss = st.tensors.get('loss')!;
    expect(loss.shape).to.deep.equal([]);
    expect(loss.data[0] as number).to.be.closeTo(1.1360383, 1e-7);
    expect(loss.data[0]).to.equal(Math.fround(meta.loss));
    expect(f32(st, 'grad_norm_preclip')[0]).to.be.closeTo(15.8825064, 1e-6);
    const shapes = Object.fromEntries(st.header.tensors.map((t) => [t.name, [t.dtype, t.shape]]));
    expect(shapes.image_latents).to.deep.equal(['F32', [3, 16]]);
    expect(shapes.text_latents).to.deep.equal(['F32', [3, 16]]);
    expect(shapes.image_embedding).to.deep.equal(['F32', [3, 512]]);
    expect(shapes.logits).to.deep.equal(['F32', [3, 3]]);
    expect(shapes.vq_indices).to.deep.equal(['I64', [3, 48]]);
    expect(shapes.quantized).to.deep.equal(['F32', [3, 3, 4, 4, 32]]);
    const img = f32(st, 'image_latents');
    const txt = f32(st, 'text_latents');
    // Latents are l2-normalised rows; logits = exp(temperature) · T · Iᵀ (rows texts, columns images).
    for (let i = 0; i < 3; i++) {
      let a = 0;
      let b = 0;
      for (let k = 0; k < 16; k++) {
        a += img[i * 16 + k] ** 2;
        b += txt[i * 16 + k] ** 2;
      }
      expect(Math.sqrt(a)).to.be.closeTo(1, 1e-5);
      expect(Math.sqrt(b)).to.be.closeTo(1, 1e-5);
    }
    const logits = f32(st, 'logits');
    for (let t = 0; t < 3; t++) {
      for (let v = 0; v < 3; v++) {
        let dot = 0;
        for (let k = 0; k < 16; k++) dot += txt[t * 16 + k] * img[v * 16 + k];
        expect(logits[t * 3 + v]).to.be.closeTo(Math.exp(meta.temperature) * dot, 1e-5);
      }
    }
    const vq = st.tensors.get('vq_indices')!.data as BigInt64Array;
    expect(vq).to.be.instanceOf(BigInt64Array);
    for (const code of vq) expect(code >= 0n && code < 8192n).to.equal(true);
  });

  it('ctclip_tiny weights: the 105 state_dict keys with the shapes and dtypes of meta.json', async function () {
    const header = await readSafetensorsHeader(fixturePath('ctclip_tiny', 'weights.safetensors'));
    const meta = JSON.parse(fs.readFileSync(fixturePath('ctclip_tiny', 'meta.json'), 'utf8')) as {
      state_dict_keys: Array<{ key: string; shape: number[]; dtype: string }>;
    };
    expect(header.tensors).to.have.length(105);
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    for (const k of meta.state_dict_keys) {
      const t = byName.get(k.key);
      expect(t, k.key).to.not.equal(undefined);
      expect(t!.shape, k.key).to.deep.equal(k.shape);
      expect(t!.dtype, k.key).to.equal(k.dtype === 'float32' ? 'F32' : 'I64');
    }
    expect(byName.get('to_visual_latent.weight')!.shape).to.deep.equal([16, 512]);
  });

  it('zero_shot outputs: P(present) = softmax of each (present, absent) logit pair, element 0', async function () {
    const st = await readSafetensors(fixturePath('zero_shot', 'outputs.safetensors'));
    const logits = f32(st, 'logits'); // (2, 2, 3, 2)
    const p = f32(st, 'p_present'); // (2, 2, 3)
    expect(st.tensors.get('logits')!.shape).to.deep.equal([2, 2, 3, 2]);
    for (let i = 0; i < 12; i++) {
      const expected = 1 / (1 + Math.exp(logits[2 * i + 1] - logits[2 * i]));
      expect(p[i]).to.be.closeTo(expected, 1e-6);
    }
  });

  it('an embeddings export of the fixture latents reads back bit-identically', async function () {
    const st = await readSafetensors(fixturePath('ctclip_tiny', 'outputs.safetensors'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-embed-fx-'));
    try {
      const out = path.join(dir, 'e.safetensors');
      await writeEmbeddings(
        out,
        {
          studyIds: ['a', 'b', 'c'],
          imageLatents: f32(st, 'image_latents'),
          textLatents: f32(st, 'text_latents'),
          imageEmbeddings: f32(st, 'image_embedding'),
        },
        { source: 'fixture C' },
      );
      const back = await readEmbeddings(out);
      expect(back.imageLatents).to.deep.equal(f32(st, 'image_latents'));
      expect(back.textLatents).to.deep.equal(f32(st, 'text_latents'));
      expect(back.imageEmbeddings).to.deep.equal(f32(st, 'image_embedding'));
      expect(back.shapes.image_embeddings).to.deep.equal([3, 512]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
