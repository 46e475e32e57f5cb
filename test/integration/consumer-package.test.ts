/**
 * The npm package as a library: `npm pack` this repository, install the tarball into a fresh TypeScript project
 * (dependencies from the npm cache/registry, no install scripts: the addon is not in the tarball), compile a small
 * consumer program against the package's own .d.ts files with the repo's TypeScript in strict mode (`module
 * node16`, so the `exports` map is what resolves `ctclip`), and run it with `CTCLIP_ADDON` pointing at the
 * already-built addon. The program loads a config (with `_base_` from the installed package), plans a run,
 * tokenizes, builds a tiny CTClip, runs one encodeText / encodeImage, computes an AUROC, and prints JSON that is
 * checked here against hand-computed values.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addonCandidates } from '../../lib/native';
import { requireAddon } from '../helpers/native';
import { BERT_SPECIAL_TOKENS } from '../helpers/expected-names';

const REPO = path.resolve(__dirname, '../..');
const TSC = path.join(REPO, 'node_modules/typescript/bin/tsc');
const NPM_ENV = { ...process.env, npm_config_update_notifier: 'false', npm_config_loglevel: 'error' };

const CONSUMER_TS = `
import * as fs from 'fs';
import * as path from 'path';
import {
  loadConfig, planRun, planSchedule, formatPlan, lrAt, Tokenizer, createModel, textTensors, tensorFromBuffer,
  readTensor, metrics, CtclipError, hasCode, ERROR_CODES, addonAvailable, launch,
  type Config, type LaunchOptions, type RunPlan, type StepEvent, type TrainerEvents, type ErrorCode,
} from 'ctclip';

async function main(): Promise<void> {
  const here = process.argv[2];
  const { config, files } = loadConfig(path.join(here, 'tiny.yaml'), { overrides: ['training.warmup_steps=10'] });
  const cfg: Config = config;

  // Types are real, not any: each @ts-expect-error line must be a compile error (never called at run time).
  const typeChecks = (): void => {
    // @ts-expect-error samples must be a number
    planRun(cfg, { samples: 'many' });
    // @ts-expect-error not an error code
    const badCode: ErrorCode = 'NOT_A_CODE';
    void badCode;
  };
  void typeChecks;
  const onStep = (e: TrainerEvents['step']): number => e.loss;
  const stepEvent: StepEvent | null = null;
  void onStep; void stepEvent;
  const launchOptions: LaunchOptions = { nprocPerNode: 2, script: 'lib/train.js', args: ['--config', 'my.yaml'] };
  void launchOptions;

  const plan: RunPlan = planSchedule(cfg, { samples: 1000, worldSize: 2 });
  const samePlan = planRun(cfg, { samples: 1000, worldSize: 2 });
  const lr10 = lrAt(10, cfg.training.learning_rate, plan.schedule);
  const lrLast = lrAt(plan.maxSteps, cfg.training.learning_rate, plan.schedule);

  const tokenizer = Tokenizer.fromVocabFile(cfg.model.text_encoder.vocab as string);
  const enc = tokenizer.encode('Lung opacity is present.', 10);

  let configError: string | null = null;
  try {
    loadConfig(path.join(here, 'tiny.yaml'), { overrides: ['training.learnig_rate=1'] });
  } catch (e) {
    if (e instanceof CtclipError && hasCode(e, 'CONFIG_ERROR')) configError = e.message;
  }

  const { model } = createModel(cfg, { tokenizer });
  const batch = tokenizer.encodeBatch(['lung opacity is present.', 'no pleural effusion.'], cfg.model.text_encoder.max_length);
  const { inputIds, attentionMask } = textTensors(batch);
  const textLatents = readTensor(await model.encodeText(inputIds, attentionMask));
  const ie = cfg.model.image_encoder;
  const vol = new Float32Array(2 * ie.image_size * ie.image_size * ie.frames).map((_, i) => Math.sin(i * 0.01));
  const imageLatents = readTensor(await model.encodeImage(tensorFromBuffer(vol, 'float32', [2, ie.image_size, ie.image_size, ie.frames])));
  model.dispose();

  const auroc: number = metrics.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);
  const auprc: number = metrics.auprc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);

  const out = {
    files: files.map((f) => path.relative(here, f)),
    plan: { stepsPerEpoch: plan.stepsPerEpoch, maxSteps: plan.maxSteps, warmupSteps: plan.warmupSteps, evalEvery: plan.evalEvery, lines: formatPlan(plan) },
    samePlan: JSON.stringify(samePlan) === JSON.stringify(plan),
    lr10, lrLast,
    tokens: Array.from(enc.inputIds),
    vocabSize: tokenizer.vocabSize,
    configError,
    addon: addonAvailable(),
    errorCodes: ERROR_CODES.length,
    launch: typeof launch,
    text: { shape: textLatents.shape, data: Array.from(textLatents.data as Float32Array) },
    image: { shape: imageLatents.shape, data: Array.from(imageLatents.data as Float32Array) },
    auroc, auprc,
  };
  fs.writeFileSync(path.join(here, 'out.json'), JSON.stringify(out));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
`;

const VOCAB = [...BERT_SPECIAL_TOKENS, 'lung', 'opacity', 'is', 'present', 'no', 'pleural', 'effusion', '.'];

const TINY_YAML = `_base_: node_modules/ctclip/configs/base_config.yaml
experiment:
  name: consumer
  seed: 5
model:
  dim_latent: 8
  image_encoder: {dim: 16, codebook_size: 16, image_size: 16, frames: 4, patch_size: 8, temporal_patch_size: 2, spatial_depth: 1, temporal_depth: 1, heads: 2, dim_head: 8}
  text_encoder: {path: null, vocab: "\${CONSUMER_DIR}/vocab.txt", vocab_size: null, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 16, max_length: 10}
training:
  max_epochs: 2
  learning_rate: 1.0e-4
validation:
  eval_every_n_epochs: 0.5
`;

describe('the npm package as a library (npm pack → install → strict tsc → run)', function () {
  this.timeout(180_000);
  let tmp: string;

  before(function () {
    requireAddon(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-consumer-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('packs the compiled library without sources or the addon, installs it, and a strict consumer program runs', () => {
    // 1. npm pack (no scripts: the build already ran; `prepare` would recompile the whole tree).
    const packJson = execFileSync('npm', ['pack', REPO, '--ignore-scripts', '--json', '--pack-destination', tmp], {
      cwd: tmp,
      env: NPM_ENV,
      encoding: 'utf8',
    });
    const packed = JSON.parse(packJson)[0] as { filename: string; files: { path: string }[] };
    const names = packed.files.map((f) => f.path);
    for (const required of [
      'package.json',
      'README.md',
      'lib/index.js',
      'lib/index.d.ts',
      'lib/cli.js',
      'lib/train.js',
      'lib/api.d.ts',
      'scripts/build-native.js',
      'scripts/libtorch.js',
      'CMakeLists.txt',
      'configs/base_config.yaml',
      'docs/configuration.md',
    ]) {
      expect(names, `the tarball lacks ${required}`).to.include(required);
    }
    expect(
      names.filter((n) => n.endsWith('.node')),
      'no compiled addon in the tarball',
    ).to.deep.equal([]);
    expect(
      names.filter((n) => n.startsWith('test/') || (n.endsWith('.ts') && !n.endsWith('.d.ts'))),
      'no tests or TS sources',
    ).to.deep.equal([]);
    expect(
      names.filter((n) => n.startsWith('native/')).length,
      'native sources (for install-time builds)',
    ).to.be.greaterThan(0);

    // 2. A fresh TypeScript project that installs the tarball.
    const proj = path.join(tmp, 'consumer');
    fs.mkdirSync(proj);
    fs.writeFileSync(
      path.join(proj, 'package.json'),
      JSON.stringify({ name: 'ctclip-consumer', version: '1.0.0', private: true }),
    );
    execFileSync(
      'npm',
      ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', path.join(tmp, packed.filename)],
      { cwd: proj, env: NPM_ENV, stdio: 'pipe' },
    );
    expect(fs.existsSync(path.join(proj, 'node_modules/ctclip/lib/index.d.ts'))).to.equal(true);
    expect(fs.existsSync(path.join(proj, 'node_modules/ctclip/build')), 'no build folder installed').to.equal(false);

    fs.writeFileSync(path.join(proj, 'vocab.txt'), `${VOCAB.join('\n')}\n`);
    fs.writeFileSync(path.join(proj, 'tiny.yaml'), TINY_YAML);
    fs.writeFileSync(path.join(proj, 'main.ts'), CONSUMER_TS);

    // 3. Strict compile against the installed .d.ts, resolved through the package's exports map.
    const tsc = spawnSync(
      process.execPath,
      [
        TSC,
        '--strict',
        '--noEmitOnError',
        '--target',
        'es2022',
        '--module',
        'node16',
        '--moduleResolution',
        'node16',
        '--typeRoots',
        path.join(REPO, 'node_modules/@types'),
        '--types',
        'node',
        '--outDir',
        'dist',
        'main.ts',
      ],
      { cwd: proj, encoding: 'utf8' },
    );
    expect(tsc.status, `tsc failed:\n${tsc.stdout}${tsc.stderr}`).to.equal(0);

    // 4. Run it against the already-built addon.
    const addon = addonCandidates().find((p) => fs.existsSync(p))!;
    const run = spawnSync(process.execPath, ['dist/main.js', proj], {
      cwd: proj,
      encoding: 'utf8',
      env: { ...process.env, CTCLIP_ADDON: addon, CONSUMER_DIR: proj, CTCLIP_THREADS: '2' },
    });
    expect(run.status, `consumer program failed:\n${run.stdout}${run.stderr}`).to.equal(0);
    const out = JSON.parse(fs.readFileSync(path.join(proj, 'out.json'), 'utf8'));

    // The config came from the installed package's base config plus the consumer's file.
    expect(out.files).to.deep.equal([path.join('node_modules', 'ctclip', 'configs', 'base_config.yaml'), 'tiny.yaml']);
    // N = 1000, B = 4 (base default), W = 2, A = 1 → S = ⌊1000 / 8⌋ = 125; 2 epochs = 250 steps; eval every 62.
    expect(out.plan).to.deep.include({ stepsPerEpoch: 125, maxSteps: 250, warmupSteps: 10, evalEvery: 62 });
    expect(out.plan.lines[0]).to.equal('Using epoch-based training: 2 epochs = 250 steps');
    expect(out.samePlan).to.equal(true);
    // Warmup ends at step 10 (factor 1); the last step is exactly at the floor min_lr_ratio (0.01 default).
    expect(out.lr10).to.be.closeTo(1e-4, 1e-15);
    expect(out.lrLast).to.be.closeTo(1e-6, 1e-15);
    // [CLS] lung opacity is present . [SEP] then padding to 10.
    expect(out.tokens).to.deep.equal([2, 5, 6, 7, 8, 12, 3, 0, 0, 0]);
    expect(out.vocabSize).to.equal(VOCAB.length);
    expect(out.configError).to.match(/unknown key training\.learnig_rate \(did you mean training\.learning_rate\?\)/);
    expect(out.addon).to.equal(true);
    expect(out.errorCodes).to.equal(15);
    expect(out.launch).to.equal('function');

    // One forward: (2, dim_latent) unit latents, all finite.
    for (const which of ['text', 'image'] as const) {
      expect(out[which].shape, which).to.deep.equal([2, 8]);
      const d: number[] = out[which].data;
      expect(d.every(Number.isFinite), `${which} latents finite`).to.equal(true);
      for (let r = 0; r < 2; r++)
        expect(Math.hypot(...d.slice(r * 8, r * 8 + 8)), `${which} row ${r} norm`).to.be.closeTo(1, 1e-5);
    }
    // Positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ranked correctly → AUROC 0.75.
    // AP: thresholds 0.8 (P 1, R 0.5), 0.4 (P 2/3, R 0.5), 0.35 (P 2/3, R 1) → 0.5·1 + 0.5·2/3 = 5/6.
    expect(out.auroc).to.equal(0.75);
    expect(out.auprc).to.be.closeTo(5 / 6, 1e-12);
  });
});
