/**
 * `node lib/inference.js` (ctclip infer) and `ctclip embed` as real processes on synthetic shards with a tiny
 * CT-CLIP: the four evaluation files (results.json = evaluateMultiLabel on the written predictions; the SVG
 * checked structurally), the scores equal the model API's zero-shot scores computed here, `--limit`, a torch
 * .pt checkpoint (import report printed), a checkpoint folder and a run directory from a 2-step training, exit
 * codes; `embed` latents equal `encodeImage` / `encodeText` on the same inputs, and the pre-projection image
 * embedding projects onto the image latent through `to_visual_latent`.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import type { Config } from '../../lib/config/schema';
import { EvalLoader } from '../../lib/data/loader';
import { openIndex } from '../../lib/data/shard-index';
import { encodePrompts, scoreVolumes } from '../../lib/zeroshot/zero-shot';
import { readEmbeddings } from '../../lib/results';
import { evaluateMultiLabel } from '../../lib/metrics/aggregate';
import { toStrictJsonValue } from '../../lib/io/strict-json';
import { modelConfigFromConfig } from '../../lib/model/config';
import { CTClip, textTensors } from '../../lib/model/ctclip';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { Tokenizer } from '../../lib/text/tokenizer';
import { saveWeights, writeTorchSave, type TorchSaveEntry } from '../../lib/weights';
import { requireAddon } from '../helpers/native';
import {
  checkpointDirs,
  DEMO_CLASSES,
  describeRun,
  runTrain,
  trainData,
  writeTrainConfig,
  type TrainData,
} from '../helpers/train-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

function node(script: string, args: string[]): Run {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(repoRoot, script), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (Date.now() - t0) / 1000 };
}
const infer = (...args: string[]): Run => node('lib/inference.js', args);
const ctclip = (...args: string[]): Run => node('lib/cli.js', args);
const show = (r: Run): string =>
  `exit ${r.status}\n--- stdout ---\n${r.stdout.slice(-3000)}\n--- stderr ---\n${r.stderr.slice(-3000)}`;

/** A small independent RFC 4180 reader (quoted fields with "" escapes, CRLF or LF records). */
function parseCsvText(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function readPredictions(
  file: string,
  classNames: string[],
): { ids: string[]; scores: number[][]; labels: number[][] } {
  const rows = parseCsvText(fs.readFileSync(file, 'utf8'));
  expect(rows[0]).to.deep.equal(['study_id', ...classNames, ...classNames.map((c) => `label:${c}`)]);
  const body = rows.slice(1).filter((r) => r.length > 1);
  const C = classNames.length;
  return {
    ids: body.map((r) => r[0]),
    scores: body.map((r) => r.slice(1, 1 + C).map(Number)),
    labels: body.map((r) => r.slice(1 + C, 1 + 2 * C).map(Number)),
  };
}

function count(text: string, re: RegExp): number {
  return (text.match(re) ?? []).length;
}

describe('infer: node lib/inference.js / ctclip infer / ctclip embed on synthetic shards (tiny CT-CLIP)', function () {
  this.timeout(120_000);
  let dir: string;
  let data: TrainData;
  let cfgFile: string;
  let cfg: Config;
  let weights: string;
  let ptFile: string;
  let model: CTClip;
  let tokenizer: Tokenizer;
  /** The model API's P(present) per study id, computed in this process. */
  const apiScores = new Map<string, Float32Array>();

  before(async function () {
    requireAddon(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-infer-'));
    data = await trainData({ train: 8, val: 24, classes: DEMO_CLASSES });
    cfgFile = writeTrainConfig(dir, data, path.join(dir, 'run'), {
      training: { max_steps: 2, warmup_steps: 1, threads: 2 },
      data: { batch_size: 4, val_batch_size: 4 },
    });
    cfg = loadConfig(cfgFile).config;
    tokenizer = Tokenizer.fromVocabFile(cfg.model.text_encoder.vocab!, {
      doLowerCase: cfg.model.text_encoder.do_lower_case,
    });
    model = CTClip.create(modelConfigFromConfig(cfg, tokenizer.vocabSize));
    const sd = model.stateDict();
    weights = path.join(dir, 'tiny.safetensors');
    await saveWeights(weights, sd.names, sd.tensors);
    // The same weights as a torch.save file wrapped like a training script's, with a stale position_ids buffer.
    const entries: TorchSaveEntry[] = sd.names.map((name, i) => {
      const t = readTensor(sd.tensors[i]);
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      return { name, dtype: 'float32', shape: sd.shapes[i], data: new Uint8Array(bytes) };
    });
    const L = cfg.model.text_encoder.max_position_embeddings;
    const pos = new BigInt64Array(L).map((_, i) => BigInt(i));
    entries.push({
      name: 'text_transformer.embeddings.position_ids',
      dtype: 'int64',
      shape: [1, L],
      data: new Uint8Array(pos.buffer),
    });
    ptFile = path.join(dir, 'tiny.pt');
    writeTorchSave(ptFile, entries, { wrapper: 'model_state_dict', extra: { epoch: 3 } });
    sd.tensors.forEach((t) => t.dispose());

    // Independent zero-shot scores through the model API (prompt latents, encodeImage, zeroShot).
    model.eval();
    const prompts = await encodePrompts(model, tokenizer, DEMO_CLASSES, {
      prompts: cfg.validation.prompts,
      maxLength: cfg.model.text_encoder.max_length,
    });
    const loader = new EvalLoader(openIndex(data.valPattern), { batchSize: 3, seed: 0 });
    for await (const b of loader.batches()) {
      const n = b.studyIds.length;
      const v = tensorFromBuffer(b.volumes, 'float16', [n, ...b.volumeShape]);
      const p = await scoreVolumes(model, v, prompts, DEMO_CLASSES.length);
      v.dispose();
      b.studyIds.forEach((id, i) => apiScores.set(id, p.slice(i * DEMO_CLASSES.length, (i + 1) * DEMO_CLASSES.length)));
      b.release();
    }
    await loader.close();
    prompts.dispose();
  });
  after(() => {
    model?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes the four files; results.json equals evaluateMultiLabel on predictions.csv; scores equal the model API; the report SVG is well-formed', () => {
    const out = path.join(dir, 'out-full');
    const r = infer(
      '--checkpoint',
      weights,
      '--config',
      cfgFile,
      '--output',
      out,
      '--bootstrap',
      '--n_bootstrap',
      '50',
    );
    expect(r.status, show(r)).to.equal(0);
    for (const f of ['results.json', 'predictions.csv', 'per_class.csv', 'report.html'])
      expect(fs.existsSync(path.join(out, f)), f).to.equal(true);
    // Progress bar on stderr (non-TTY: at least the final line), summary with the CI level on stdout.
    expect(r.stderr).to.match(/infer: \[#{20}\] 24\/24 samples \| [\d.]+ samples\/s \| ETA 0s/);
    expect(r.stdout).to.match(/Macro AUROC: \d\.\d{4}\s+95% CI \[/);
    expect(r.stdout, r.stdout).to.match(
      new RegExp(
        `Zero-shot: 24 of 24 samples, ${DEMO_CLASSES.length} classes, prompts '\\{p\\} is present\\.' / '\\{p\\} is not present\\.'`,
      ),
    );

    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    const pred = readPredictions(path.join(out, 'predictions.csv'), DEMO_CLASSES);
    expect(pred.ids).to.have.length(24);
    expect(results.class_names).to.deep.equal(DEMO_CLASSES);
    expect(results.metrics).to.deep.equal(
      toStrictJsonValue(evaluateMultiLabel(pred.scores, pred.labels, DEMO_CLASSES, { threshold: 0.5 })),
    );
    expect(results.bootstrap.level).to.equal(0.95);
    expect(results.bootstrap.n_resamples).to.equal(50);
    expect(results.checkpoint.path).to.equal(weights);
    expect(results.checkpoint.sha256).to.match(/^[0-9a-f]{64}$/);
    expect(results.extra.prompts).to.deep.equal({ positive: '{p} is present.', negative: '{p} is not present.' });

    // Row order = index order; each row equals the in-process model API's P(present); labels = the shards'.
    const index = openIndex(data.valPattern);
    expect(pred.ids).to.deep.equal(index.samples.map((s) => s.studyId));
    for (let i = 0; i < pred.ids.length; i++) {
      const api = apiScores.get(pred.ids[i])!;
      pred.scores[i].forEach((x, c) => {
        expect(x).to.be.within(0, 1);
        expect(x).to.be.closeTo(api[c], 2e-6);
      });
    }

    // report.html: one ROC panel and one ROC path per valid class, axes and labels in each, none for excluded ones.
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    const valid = DEMO_CLASSES.filter((c) => results.metrics.per_class[c].auroc !== null);
    expect(results.metrics.n_valid_classes).to.equal(valid.length);
    expect(valid.length).to.be.greaterThan(0);
    expect(count(html, /<svg class="roc-panel"/g)).to.equal(valid.length);
    expect(count(html, /<path class="roc-curve"/g)).to.equal(valid.length);
    expect(count(html, /<g class="axis axis-x"/g)).to.be.at.least(valid.length);
    expect(count(html, /<g class="axis axis-y"/g)).to.be.at.least(valid.length);
    expect(count(html, /False positive rate/g)).to.be.at.least(valid.length);
    expect(count(html, /True positive rate/g)).to.be.at.least(valid.length);
    for (const c of valid)
      expect(count(html, new RegExp(`<path class="roc-curve" data-class="${c}"`, 'g')), c).to.equal(1);
    expect(count(html, /class="auroc-bar"/g)).to.equal(valid.length);
    expect(html).to.not.match(/NaN|Infinity|<script|https?:\/\//);
  });

  it('--limit n evaluates the fixed seeded subset; a torch .pt works and prints its import report', () => {
    const out = path.join(dir, 'out-pt');
    const r = ctclip('infer', '--checkpoint', ptFile, '--config', cfgFile, '--output', out, '--limit', '5', '--quiet');
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.match(/Imported .*tiny\.pt \(torch\): .*wrapped in 'model_state_dict'/);
    expect(r.stdout).to.match(/other entries of 'model_state_dict' wrapper \(not loaded\): epoch=3/);
    expect(r.stdout).to.match(/dropped: text_transformer\.embeddings\.position_ids \(/);
    expect(r.stdout).to.match(/missing: none/);
    expect(r.stdout).to.match(/unexpected: none/);
    expect(r.stdout).to.match(/Zero-shot: 5 of 24 samples \(--limit 5: fixed seeded subset/);
    expect(r.stderr).to.equal('');
    const pred = readPredictions(path.join(out, 'predictions.csv'), DEMO_CLASSES);
    const chosen = new EvalLoader(openIndex(data.valPattern), {
      batchSize: 1,
      evalSamples: 5,
      seed: cfg.experiment.seed,
    }).chosenStudyIds();
    expect(pred.ids).to.deep.equal(chosen);
    pred.ids.forEach((id, i) => pred.scores[i].forEach((x, c) => expect(x).to.be.closeTo(apiScores.get(id)![c], 2e-6)));
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.n_samples).to.equal(5);
    expect(results.bootstrap).to.equal(null);
    expect(results.extra.weights.layout).to.match(/wrapped/);
  });

  it('a checkpoint folder and a run directory (latest) of a 2-step training work', async () => {
    const tr = await runTrain(['--config', cfgFile]);
    expect(tr.code, describeRun(tr)).to.equal(0);
    const run = path.join(dir, 'run');
    const ckpt = checkpointDirs(run).pop()!;
    // The first six validation samples, from the checkpoint folder or from the run directory, into dir/<out>.
    const inferSix = (checkpoint: string, out: string) =>
      infer(
        '--checkpoint',
        checkpoint,
        '--config',
        cfgFile,
        '--output',
        path.join(dir, out),
        '--limit',
        '6',
        '--quiet',
      );
    const a = inferSix(ckpt, 'out-ckpt');
    expect(a.status, show(a)).to.equal(0);
    expect(a.stdout).to.match(/Loaded \d+ tensors from checkpoint .*ckpt-step00000002 \(step 2\)/);
    const b = inferSix(run, 'out-run');
    expect(b.status, show(b)).to.equal(0);
    const ra = JSON.parse(fs.readFileSync(path.join(dir, 'out-ckpt', 'results.json'), 'utf8'));
    const rb = JSON.parse(fs.readFileSync(path.join(dir, 'out-run', 'results.json'), 'utf8'));
    expect(ra.checkpoint).to.deep.equal(rb.checkpoint);
    expect(ra.checkpoint.step).to.equal(2);
    expect(ra.metrics).to.deep.equal(rb.metrics);
    expect(fs.readFileSync(path.join(dir, 'out-ckpt', 'predictions.csv'), 'utf8')).to.equal(
      fs.readFileSync(path.join(dir, 'out-run', 'predictions.csv'), 'utf8'),
    );
    // Trained weights differ from the initial ones.
    const init = readPredictions(path.join(dir, 'out-pt', 'predictions.csv'), DEMO_CLASSES);
    const trained = readPredictions(path.join(dir, 'out-ckpt', 'predictions.csv'), DEMO_CLASSES);
    const id = init.ids.find((x) => trained.ids.includes(x));
    if (id) expect(trained.scores[trained.ids.indexOf(id)]).to.not.deep.equal(init.scores[init.ids.indexOf(id)]);
  });

  it('exit codes: 2 for bad arguments/config, 1 for weights that do not fit the model', () => {
    const noCkpt = infer('--config', cfgFile);
    expect(noCkpt.status).to.equal(2);
    expect(noCkpt.stderr).to.match(/--checkpoint is required/);
    const missing = infer('--checkpoint', path.join(dir, 'nope.pt'), '--config', cfgFile);
    expect(missing.status).to.equal(2);
    expect(missing.stderr).to.match(/nope\.pt: no such file or folder/);
    const badLimit = infer('--checkpoint', weights, '--config', cfgFile, '--limit', '0');
    expect(badLimit.status).to.equal(2);
    const badKey = infer('--checkpoint', weights, '--config', cfgFile, '--set', 'validation.treshold=0.3');
    expect(badKey.status).to.equal(2);
    expect(badKey.stderr).to.match(/did you mean validation\.threshold/);
    const misfit = infer('--checkpoint', weights, '--config', cfgFile, '--set', 'model.dim_latent=16', '--quiet');
    expect(misfit.status, show(misfit)).to.equal(1);
    expect(misfit.stderr).to.match(
      /tiny\.safetensors: the weights do not fit the model configured by the config \(.*shape mismatches/,
    );
    // The error names the setting and the weights' value, not just "model.*".
    expect(misfit.stderr).to.include('set in the config: model.dim_latent: 64 in the weights, 16 configured');
    // The debug config trains SigLIP: its weights carry logit_bias, which a softmax model lacks.
    const softmax = infer('--checkpoint', weights, '--config', cfgFile, '--set', 'model.loss.type=softmax', '--quiet');
    expect(softmax.status, show(softmax)).to.equal(1);
    expect(softmax.stderr).to.match(/unexpected: logit_bias\b/);
    expect(softmax.stderr).to.include(
      'set in the config: model.loss.type: siglip (the weights have logit_bias, which only a SigLIP model has)',
    );
  });

  it('ctclip embed writes latents equal to encodeImage/encodeText on the same inputs (and image embeddings on request)', async () => {
    const out1 = path.join(dir, 'emb.safetensors');
    // The flags first, so that the call stays on one line: readme-commands.test.ts looks for `ctclip('embed'`.
    const args1 = ['--checkpoint', weights, '--config', cfgFile, '--shards', data.valPattern, '--out', out1];
    const r1 = ctclip('embed', ...args1, '--limit', '7');
    expect(r1.status, show(r1)).to.equal(0);
    expect(r1.stderr).to.match(/embed: \[#{20}\] 7\/7 samples/);
    const out2 = path.join(dir, 'emb2.safetensors');
    const args2 = ['--checkpoint', ptFile, '--config', cfgFile, '--shards', data.valPattern, '--out', out2];
    const r2 = ctclip('embed', ...args2, '--limit', '7', '--with-image-embeddings', '--quiet');
    expect(r2.status, show(r2)).to.equal(0);
    const e1 = await readEmbeddings(out1);
    const e2 = await readEmbeddings(out2);
    const d = cfg.model.dim_latent;
    const ie = cfg.model.image_encoder;
    const e = (ie.image_size / ie.patch_size) ** 2 * ie.dim;
    expect(e1.sidecar.study_ids).to.have.length(7);
    expect(e2.sidecar.study_ids).to.deep.equal(e1.sidecar.study_ids);
    expect(e1.shapes.image_latents).to.deep.equal([7, d]);
    expect(e1.imageEmbeddings).to.equal(null);
    expect(e2.shapes.image_embeddings).to.deep.equal([7, e]);

    // The same samples through the model API in this process.
    const index = openIndex(data.valPattern);
    const loader = new EvalLoader(index, { batchSize: 7, evalSamples: 7, seed: cfg.experiment.seed });
    let img: Float32Array | null = null;
    let txt: Float32Array | null = null;
    for await (const b of loader.batches()) {
      expect(b.studyIds).to.deep.equal(e1.sidecar.study_ids);
      const v = tensorFromBuffer(b.volumes, 'float16', [b.studyIds.length, ...b.volumeShape]);
      const { inputIds, attentionMask } = textTensors(
        tokenizer.encodeBatch(b.reports, cfg.model.text_encoder.max_length),
      );
      const i = await model.encodeImage(v);
      const t = await model.encodeText(inputIds, attentionMask);
      img = readTensor(i).data as Float32Array;
      txt = readTensor(t).data as Float32Array;
      [v, inputIds, attentionMask, i, t].forEach((h) => h.dispose());
      b.release();
    }
    await loader.close();
    const close = (a: Float32Array, b: Float32Array, tol: number, what: string): void => {
      expect(a.length, what).to.equal(b.length);
      let worst = 0;
      for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k] - b[k]));
      expect(worst, what).to.be.below(tol);
    };
    close(e1.imageLatents, img!, 2e-6, 'image latents');
    close(e1.textLatents, txt!, 2e-6, 'text latents');
    close(e2.imageLatents, img!, 2e-6, 'image latents (forward path)');
    close(e2.textLatents, txt!, 2e-6, 'text latents (forward path)');

    // The embedding is what to_visual_latent projects: normalize(W · e) = the image latent.
    const sd = model.stateDict();
    const wIdx = sd.names.indexOf('to_visual_latent.weight');
    const W = readTensor(sd.tensors[wIdx]).data as Float32Array; // (d, e)
    sd.tensors.forEach((t) => t.dispose());
    const emb = e2.imageEmbeddings!;
    for (let s = 0; s < 7; s++) {
      const proj = new Float64Array(d);
      for (let r = 0; r < d; r++) {
        let acc = 0;
        for (let k = 0; k < e; k++) acc += W[r * e + k] * emb[s * e + k];
        proj[r] = acc;
      }
      const norm = Math.hypot(...proj);
      for (let r = 0; r < d; r++) expect(proj[r] / norm).to.be.closeTo(img![s * d + r], 1e-5);
    }
  });
});
