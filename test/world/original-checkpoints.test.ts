/**
 * The original Python pipeline's training checkpoints, written by real torch.save from the torch 2.x venv, load in
 * ctclip: `infer` and `--init-from` give the same outputs as the same weights from safetensors, and `--resume
 * FILE.pt` restores the weights, AdamW's moments and step counts (checked value by value against what torch's
 * optimizer held) and the step, and prints what it cannot carry over.
 *
 * The checkpoint is the original's own: with CTCLIP_MODERN_REPO set (its git dir or work tree), its
 * src/checkpoint/checkpoint_manager.py, src/training/optimizer.py and scheduler.py are copied to a temporary folder
 * and imported, and `CheckpointManager.save_checkpoint` writes the file after a few real AdamW steps (optimizer
 * from the original's `get_optimizer`: two weight-decay groups). Without it, the snippet below torch.saves a dict
 * of the same structure the same way (numpy metrics, np.random.get_state(), torch.get_rng_state(), AdamW and
 * LambdaLR state dicts). The model is a torch module holding ctclip's tiny model's tensors (parameters, buffers and
 * inert tensors as ctclip reports them) in the original's own key layout — the BERT tower under
 * text_transformer.bert.*, plus a text projection head and a CTViT decoder tensor ctclip's model does not have — so
 * its state_dict and parameter order are the original model's; one variant uses the reference names instead.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import type { Config } from '../../lib/config/schema';
import type { CTClip } from '../../lib/model/ctclip';
import { buildModel } from '../../lib/model/factory';
import { planRun } from '../../lib/plan';
import { readTensor, type TensorHandle } from '../../lib/tensor';
import { restoreTorchCheckpoint } from '../../lib/train/resume-torch';
import { importTorchFile, readTorchArchive, saveWeights, TorchTensorRef, writeTorchSave } from '../../lib/weights';
import { PyDict } from '../../lib/weights/pickle';
import { ByteBudget } from '../../lib/weights/zip';
import { StorageCache } from '../../lib/weights/torch-file';
import { requirePython, runPython } from '../helpers/python';
import {
  checkpointDirs,
  describeRun,
  requireTrainer,
  runTrain,
  trainData,
  trainLosses,
  writeTrainConfig,
  type TrainData,
} from '../helpers/train-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');
const STEPS = 3;

/** The original's files a checkpoint needs, read from CTCLIP_MODERN_REPO (a git dir or a work tree). */
const ORIGINAL_FILES = {
  'checkpoint_manager.py': 'src/checkpoint/checkpoint_manager.py',
  'optimizer.py': 'src/training/optimizer.py',
  'scheduler.py': 'src/training/scheduler.py',
};

function copyOriginal(repo: string, into: string): void {
  fs.mkdirSync(into, { recursive: true });
  const gitDir = fs.existsSync(path.join(repo, 'HEAD')) && fs.existsSync(path.join(repo, 'objects'));
  for (const [name, rel] of Object.entries(ORIGINAL_FILES)) {
    let text: string;
    if (gitDir) {
      const r = spawnSync('git', [`--git-dir=${repo}`, 'show', `HEAD:${rel}`], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`git show HEAD:${rel} in ${repo} failed: ${r.stderr}`);
      text = r.stdout;
    } else text = fs.readFileSync(path.join(repo, rel), 'utf8');
    fs.writeFileSync(path.join(into, name), text);
  }
}

/**
 * argv: weights.pt (flat state dict, ours), kinds.json ([[name, kind]…]), out dir, folder with the original's
 * modules ('' = the same structure written by this snippet). Writes checkpoint.pt, reversed.pt (AdamW over the
 * parameters in reverse order: no recoverable order), named.pt (AdamW over named parameters in reverse order: torch
 * records their names), reference.pt (the reference key layout instead of the original's), trained.pt (the
 * checkpoint's weights, flat), expected*.pt (every parameter's exp_avg / exp_avg_sq / step by NAME) and info.json.
 */
const PY = String.raw`
import importlib.util, json, math, os, random, sys
import numpy as np, torch
src, kinds_file, out, original = sys.argv[1:5]
torch.manual_seed(0); np.random.seed(0); random.seed(0)
sd = torch.load(src, weights_only=True)
kinds = json.load(open(kinds_file))

class Node(torch.nn.Module):
    pass

def refactor_name(name):
    # The original's own model layout: the BERT tower under text_transformer.bert.
    return 'text_transformer.bert.' + name[len('text_transformer.'):] if name.startswith('text_transformer.') else name

# Tensors the original's model has and ctclip's does not (its text projection head, a CTViT decoder layer).
REFACTOR_EXTRAS = [('text_transformer.cls_projection_head.weight', (8, 64)), ('visual_transformer.dec_spatial_transformer.norm_out.gamma', (64,))]

def build(refactor=False):
    root = Node()
    entries = [(refactor_name(n) if refactor else n, kind, sd[n].clone()) for n, kind in kinds]
    if refactor:
        entries += [(n, 'parameter', torch.randn(*shape)) for n, shape in REFACTOR_EXTRAS]
    for name, kind, t in entries:
        *parents, leaf = name.split('.')
        m = root
        for p in parents:
            if p not in m._modules:
                m.add_module(p, Node())
            m = m._modules[p]
        if kind == 'buffer':
            m.register_buffer(leaf, t)
        else:
            m.register_parameter(leaf, torch.nn.Parameter(t, requires_grad=(kind == 'parameter')))
    return root

def warmup_cosine(warmup, total, floor=0.01):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return f

def train(model, opt, sched):
    for _ in range(${STEPS}):
        opt.zero_grad()
        loss = sum((p * torch.randn_like(p)).sum() + (p * p).sum() for p in model.parameters() if p.requires_grad)
        loss.backward()
        opt.step()
        sched.step()

metrics = {'auroc': np.float64(0.6125), 'macro_f1': np.float32(0.25), 'n_samples': np.int64(16)}
config = {'training': {'learning_rate': 1e-3, 'weight_decay': 1e-4}}

def load(name):
    spec = importlib.util.spec_from_file_location('original_' + name, os.path.join(original, name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

model = build(refactor=True)
if original:
    cm, om, sm = load('checkpoint_manager'), load('optimizer'), load('scheduler')
    opt = om.get_optimizer(list(model.parameters()), lr=1e-3, wd=1e-4)
    sched = sm.get_warmup_cosine_schedule(opt, warmup_steps=2, total_steps=10)
    train(model, opt, sched)
    manager = cm.CheckpointManager(save_dir=os.path.join(out, 'saves'), keep_last_n=3, save_best=True, best_metric='auroc')
    path = manager.save_checkpoint(epoch=1, global_step=${STEPS}, model=model, optimizer=opt, scheduler=sched,
                                   metrics=metrics, config=config, wandb_run_id=None)
    os.replace(path, os.path.join(out, 'checkpoint.pt'))
else:
    params = list(model.parameters())
    opt = torch.optim.AdamW([{'params': [p for p in params if p.ndim >= 2]},
                             {'params': [p for p in params if p.ndim < 2], 'weight_decay': 0}],
                            lr=1e-3, weight_decay=1e-4, betas=(0.9, 0.99), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(2, 10))
    train(model, opt, sched)
    torch.save({'epoch': 1, 'global_step': ${STEPS}, 'model_state_dict': model.state_dict(),
                'optimizer_state_dict': opt.state_dict(), 'metrics': metrics, 'config': config, 'extra_state': {},
                'wandb_run_id': None, 'scheduler_state_dict': sched.state_dict(),
                'random_states': {'python': random.getstate(), 'numpy': np.random.get_state(),
                                  'torch': torch.get_rng_state()}}, os.path.join(out, 'checkpoint.pt'))
torch.save(model.state_dict(), os.path.join(out, 'trained.pt'))
def expected_of(model, opt, file):
    expected = {}
    for name, p in model.named_parameters():
        if p in opt.state:
            st = opt.state[p]
            expected[name + '/exp_avg'] = st['exp_avg']
            expected[name + '/exp_avg_sq'] = st['exp_avg_sq']
            expected[name + '/step'] = torch.as_tensor(st['step'], dtype=torch.float64).reshape(())
    torch.save(expected, os.path.join(out, file))

expected_of(model, opt, 'expected.pt')

rev = build()
ropt = torch.optim.AdamW(list(rev.parameters())[::-1], lr=1e-3)
rsched = torch.optim.lr_scheduler.LambdaLR(ropt, warmup_cosine(2, 10))
train(rev, ropt, rsched)
torch.save({'epoch': 1, 'global_step': ${STEPS}, 'model_state_dict': rev.state_dict(),
            'optimizer_state_dict': ropt.state_dict(), 'metrics': metrics}, os.path.join(out, 'reversed.pt'))

named = build()
nopt = torch.optim.AdamW(list(named.named_parameters())[::-1], lr=1e-3)
nsched = torch.optim.lr_scheduler.LambdaLR(nopt, warmup_cosine(2, 10))
train(named, nopt, nsched)
torch.save({'epoch': 1, 'global_step': ${STEPS}, 'model_state_dict': named.state_dict(),
            'optimizer_state_dict': nopt.state_dict()}, os.path.join(out, 'named.pt'))
expected_of(named, nopt, 'expected_named.pt')

ref = build()
rparams = list(ref.parameters())
fopt = torch.optim.AdamW([{'params': [p for p in rparams if p.ndim >= 2]},
                          {'params': [p for p in rparams if p.ndim < 2], 'weight_decay': 0}], lr=1e-3)
fsched = torch.optim.lr_scheduler.LambdaLR(fopt, warmup_cosine(2, 10))
train(ref, fopt, fsched)
torch.save({'epoch': 1, 'global_step': ${STEPS}, 'model_state_dict': ref.state_dict(),
            'optimizer_state_dict': fopt.state_dict()}, os.path.join(out, 'reference.pt'))
expected_of(ref, fopt, 'expected_reference.pt')
json.dump({'writer': 'original CheckpointManager' if original else 'snippet', 'numpy': np.__version__,
           'torch': torch.__version__, 'groups': [len(g['params']) for g in opt.param_groups]},
          open(os.path.join(out, 'info.json'), 'w'))
`;

function tensorBytes(t: TensorHandle): Buffer {
  const d = readTensor(t).data;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** expected.pt: name → {exp_avg, exp_avg_sq, step}. */
async function readExpected(file: string): Promise<Map<string, { expAvg: Buffer; expAvgSq: Buffer; step: number }>> {
  const a = readTorchArchive(file);
  const cache = new StorageCache(a, new ByteBudget(1 << 30, 'test'));
  const out = new Map<string, { expAvg: Buffer; expAvgSq: Buffer; step: number }>();
  try {
    for (const [k, v] of (a.value as PyDict).map) {
      const [name, part] = String(k).split('/');
      const t = await cache.tensor(v as TorchTensorRef, String(k));
      const e = out.get(name) ?? { expAvg: Buffer.alloc(0), expAvgSq: Buffer.alloc(0), step: -1 };
      if (part === 'exp_avg') e.expAvg = tensorBytes(t);
      else if (part === 'exp_avg_sq') e.expAvgSq = tensorBytes(t);
      else e.step = (readTensor(t).data as Float64Array)[0];
      t.dispose();
      out.set(name, e);
    }
  } finally {
    cache.release();
    a.zip.close();
  }
  return out;
}

/** The model's AdamW state holds exactly the moments and step counts torch held (expected.pt), bit for bit. */
async function expectMoments(
  model: { optimizerState(): ReturnType<CTClip['optimizerState']> },
  file: string,
  rename: (name: string) => string | null = (n) => n,
): Promise<void> {
  const expected = new Map<string, { expAvg: Buffer; expAvgSq: Buffer; step: number }>();
  for (const [n, e] of await readExpected(file)) {
    const to = rename(n);
    if (to !== null) expected.set(to, e);
  }
  const o = model.optimizerState();
  try {
    expect(expected.size).to.be.greaterThan(10);
    expect([...o.names].sort()).to.deep.equal([...expected.keys()].sort());
    o.names.forEach((n, i) => {
      const e = expected.get(n)!;
      expect(tensorBytes(o.exp_avg[i]).equals(e.expAvg), `${n} exp_avg`).to.equal(true);
      expect(tensorBytes(o.exp_avg_sq[i]).equals(e.expAvgSq), `${n} exp_avg_sq`).to.equal(true);
      expect(o.step[i], `${n} step`).to.equal(e.step);
    });
  } finally {
    [...o.exp_avg, ...o.exp_avg_sq].forEach((t) => t.dispose());
  }
}

/** The original's parameter names → ours (null: a tensor ctclip's model does not have). */
function fromOriginalNames(name: string): string | null {
  if (/^text_transformer\.cls_projection_head\.|^visual_transformer\.dec_spatial_transformer\./.test(name)) return null;
  return name.replace(/^text_transformer\.bert\./, 'text_transformer.');
}

function ctclip(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'lib', 'cli.js'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("world: the original pipeline's torch.save training checkpoints", function () {
  this.timeout(600_000);
  let data: TrainData;
  let dir: string;
  let out: string;
  let cfg: Config;
  let ckpt: string;
  let trainedSafetensors: string;
  let info: { writer: string; groups: number[] };

  const config = (name: string, training: Record<string, unknown> = {}): string =>
    writeTrainConfig(dir, data, path.join(dir, name), {
      training: { max_steps: STEPS + 2, max_epochs: null, warmup_steps: 2, threads: 1, ...training },
      validation: { eval_every_n_steps: 1000, eval_samples: 8 },
      logging: { log_every_n_steps: 1, use_tensorboard: false },
    });

  before(async function () {
    requireTrainer(this);
    const py = requirePython(this, ['torch', 'numpy']);
    data = await trainData({ train: 64, val: 16 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-world-original-ckpt-'));
    out = path.join(dir, 'py');
    fs.mkdirSync(out);
    cfg = loadConfig(config('base')).config;
    const { model } = buildModel(cfg);
    const sd = model.stateDict();
    // The tensors reach Python through a torch.save file of ours (torch.load(weights_only=True) reads it).
    writeTorchSave(
      path.join(dir, 'init.pt'),
      sd.names.map((name, i) => {
        const d = readTensor(sd.tensors[i]);
        return {
          name,
          dtype: d.dtype,
          shape: sd.shapes[i],
          data: new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength),
        };
      }),
    );
    fs.writeFileSync(path.join(dir, 'kinds.json'), JSON.stringify(sd.names.map((n, i) => [n, sd.kinds[i]])));
    sd.tensors.forEach((t) => t.dispose());
    model.dispose();
    let original = '';
    if (process.env.CTCLIP_MODERN_REPO) {
      original = path.join(dir, 'original');
      copyOriginal(process.env.CTCLIP_MODERN_REPO, original);
    }
    runPython(py, PY, [path.join(dir, 'init.pt'), path.join(dir, 'kinds.json'), out, original]);
    info = JSON.parse(fs.readFileSync(path.join(out, 'info.json'), 'utf8'));
    expect(info.writer).to.equal(original ? 'original CheckpointManager' : 'snippet');
    expect(info.groups.length, 'two weight-decay groups').to.equal(2);
    ckpt = path.join(out, 'checkpoint.pt');
    // The same (trained) weights as safetensors, by another route: the flat state dict imported and re-saved.
    const flat = await importTorchFile(path.join(out, 'trained.pt'));
    trainedSafetensors = path.join(dir, 'trained.safetensors');
    await saveWeights(trainedSafetensors, flat.names, flat.tensors);
    flat.tensors.forEach((t) => t.dispose());
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('infer loads it (numpy metrics and RNG states parsed, not executed) and predicts exactly as from safetensors', () => {
    const cfgFile = config('infer');
    const run = (weights: string, name: string): { stdout: string; csv: string } => {
      const o = path.join(dir, name);
      const r = ctclip([
        'infer',
        '--checkpoint',
        weights,
        '--config',
        cfgFile,
        '--output',
        o,
        '--limit',
        '8',
        '--quiet',
      ]);
      expect(r.status, `${r.stdout}\n${r.stderr}`).to.equal(0);
      return { stdout: r.stdout, csv: fs.readFileSync(path.join(o, 'predictions.csv'), 'utf8') };
    };
    const a = run(ckpt, 'out-pt');
    const b = run(trainedSafetensors, 'out-st');
    expect(a.csv).to.equal(b.csv);
    expect(a.stdout).to.include("wrapped in 'model_state_dict'");
    expect(a.stdout).to.match(
      /other entries of 'model_state_dict' wrapper \(not loaded\):.*optimizer_state_dict.*random_states/,
    );
  });

  it('--init-from trains exactly as --init-from the same weights in safetensors', async () => {
    const one = { max_steps: 2 };
    const a = await runTrain(['--config', config('init-pt', one), '--init-from', ckpt]);
    expect(a.code, describeRun(a)).to.equal(0);
    const b = await runTrain(['--config', config('init-st', one), '--init-from', trainedSafetensors]);
    expect(b.code, describeRun(b)).to.equal(0);
    expect([...trainLosses(path.join(dir, 'init-pt'))]).to.deep.equal([...trainLosses(path.join(dir, 'init-st'))]);
  });

  it('--resume restores the weights, every AdamW moment and step count torch held, and the step', async () => {
    const { model } = buildModel(cfg);
    try {
      const plan = planRun(cfg, { samples: 64 });
      const r = await restoreTorchCheckpoint(model, ckpt, { cfg, plan, loadOptimizer: true });
      expect(r.progress.step).to.equal(STEPS);
      const st = await importTorchFile(path.join(out, 'trained.pt'));
      const sd = model.stateDict();
      const mine = new Map(sd.names.map((n, i) => [n, tensorBytes(sd.tensors[i])]));
      st.names.forEach((n, i) => expect(mine.get(n)?.equals(tensorBytes(st.tensors[i])), n).to.equal(true));
      st.tensors.forEach((t) => t.dispose());
      sd.tensors.forEach((t) => t.dispose());
      await expectMoments(model, path.join(out, 'expected.pt'), fromOriginalNames);
      const text = r.notCarried.join('\n');
      for (const what of ['data position', 'LR scheduler', 'RNG streams: the file', 'numpy', 'auroc=0.6125'])
        expect(text).to.include(what);
      const restored = r.restored.join('\n');
      expect(restored).to.include("refactor (CTCLIP_MODERN) layout, wrapped in 'model_state_dict'");
      expect(restored).to.match(
        /AdamW: moments and step counts of \d+ parameters, mapped by position, as two weight-decay groups/,
      );
      expect(restored).to.include(
        '(2 saved for tensors this model does not train: text_transformer.cls_projection_head.weight, visual_transformer.dec_spatial_transformer.norm_out.gamma)',
      );
    } finally {
      model.dispose();
    }
  });

  it('--resume on the command line continues from the step and says what it cannot carry over', async () => {
    const runDir = path.join(dir, 'resume');
    const r = await runTrain(['--config', config('resume'), '--resume', ckpt]);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stdout).to.include(`Resumed from ${ckpt} (a torch.save training checkpoint): step ${STEPS}`);
    expect(r.stdout).to.match(/restored: AdamW: moments and step counts of \d+ parameters/);
    for (const what of ['data position', 'LR scheduler', 'RNG streams'])
      expect(r.stdout).to.match(new RegExp(`not carried over: ${what}`));
    expect([...trainLosses(runDir).keys()]).to.deep.equal([STEPS + 1, STEPS + 2]);
    expect(path.basename(checkpointDirs(runDir).pop() as string)).to.equal(
      `ckpt-step${String(STEPS + 2).padStart(8, '0')}`,
    );
  });

  it('an optimizer whose parameter order cannot be recovered is not restored, and the log says why', async () => {
    const { model } = buildModel(cfg);
    try {
      const r = await restoreTorchCheckpoint(model, path.join(out, 'reversed.pt'), {
        cfg,
        plan: planRun(cfg, { samples: 64 }),
        loadOptimizer: true,
      });
      expect(r.notCarried.join('\n')).to.match(
        /AdamW moments: no parameter order fits the saved moments.*AdamW starts fresh/,
      );
      expect(model.optimizerState().names).to.deep.equal([]);
      expect(r.progress.step).to.equal(STEPS);
    } finally {
      model.dispose();
    }
  });

  it('an optimizer built from named parameters is mapped by the names torch recorded, whatever its order', async () => {
    const { model } = buildModel(cfg);
    try {
      const plan = planRun(cfg, { samples: 64 });
      const r = await restoreTorchCheckpoint(model, path.join(out, 'named.pt'), { cfg, plan, loadOptimizer: true });
      expect(r.restored.join('\n')).to.include('mapped by the parameter names the optimizer recorded');
      await expectMoments(model, path.join(out, 'expected_named.pt'));
    } finally {
      model.dispose();
    }
  });

  it('the reference key layout (no text_transformer.bert.*, nothing extra) maps the same way', async () => {
    const { model } = buildModel(cfg);
    try {
      const plan = planRun(cfg, { samples: 64 });
      const r = await restoreTorchCheckpoint(model, path.join(out, 'reference.pt'), { cfg, plan, loadOptimizer: true });
      const restored = r.restored.join('\n');
      expect(restored).to.include("reference (flat state_dict) layout, wrapped in 'model_state_dict'");
      expect(restored).not.to.include('saved for tensors this model does not train');
      await expectMoments(model, path.join(out, 'expected_reference.pt'));
    } finally {
      model.dispose();
    }
  });

  it('--no-load-optimizer: weights and step only, and the log says so', async () => {
    const { model } = buildModel(cfg);
    try {
      const plan = planRun(cfg, { samples: 64 });
      const r = await restoreTorchCheckpoint(model, ckpt, { cfg, plan, loadOptimizer: false });
      expect(r.progress.step).to.equal(STEPS);
      expect(model.optimizerState().names).to.deep.equal([]);
      expect(r.notCarried.join('\n')).to.include('AdamW moments: not loaded (--no-load-optimizer)');
    } finally {
      model.dispose();
    }
  });

  it('--resume of a weights-only torch.save file says it is not a training checkpoint and points to --init-from', async () => {
    const r = await runTrain(['--config', config('resume-bare'), '--resume', path.join(out, 'trained.pt')]);
    expect(r.code, describeRun(r)).to.equal(2);
    expect(r.stderr).to.include('a torch.save file but not a training checkpoint');
    expect(r.stderr).to.include("no 'model_state_dict' or 'optimizer_state_dict'");
    expect(r.stderr).to.include('--init-from');
  });
});
