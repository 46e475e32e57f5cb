/**
 * Where a train step's CPU time goes: a `perf` profile of the timed steps only (bench/perf-control.ts), grouped
 * into categories (GEMM, our fused kernels, ATen element-wise ops, copies, allocator, thread pool, kernel, …),
 * with the GEMMs' achieved GFLOP/s per core against the same process's N×N matmul ceiling.
 *
 *   node bench/profile.js [--preset mid|large] [--iters K] [--threads T] [--freq HZ] [--reference] [--top N]
 *                         [--json]
 *
 * Ours runs bench/ctclip.js on the addon `loadAddon` picks ($CTCLIP_ADDON to choose one). With --reference the
 * reference Python step (scripts/reference-step.py, needs $CTCLIP_REFERENCE_DIR as for `bench/run.js
 * --reference`) is profiled over the same window and shapes, and the two columns are printed side by side, so a
 * difference in step time can be traced to a category. CPU ms per step = share × the process CPU time per step
 * (all threads); the GEMM FLOPs are the analytic matmul count of bench/ctclip.ts (the same for both sides).
 * Needs Linux `perf` with user-space sampling allowed (kernel.perf_event_paranoid ≤ 2); without it, it says so.
 * A stripped libtorch (Debian's 1.13) shows its ATen kernels as addresses, which land in the dispatcher category;
 * the torch wheels keep their symbols.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { worldPython } from '../test/helpers/python';
import { PRESETS, type CtclipBenchResult, type CtclipPreset } from './ctclip';
import { loadAddon } from '../lib/native';
import { cliFlags, runBenchMain } from './common';
import { referenceArgv, referenceSpec, referenceUnavailable, type ReferenceRun } from './reference';

/** The categories, in the order they are matched: the first whose test accepts a sample's (dso, symbol) wins. */
export const CATEGORIES: { name: string; test: (dso: string, sym: string) => boolean }[] = [
  { name: 'kernel: page faults, scheduling, syscalls', test: (dso) => dso === '[kernel.kallsyms]' },
  // Our kernels before the thread pools: their OpenMP-outlined bodies (`…_omp_fn.0`) are the kernels' own work.
  {
    name: 'ours: PEG conv',
    test: (dso, sym) => dso === 'ctclip.node' && /Fused(Forward|GradInput|GradWeight)/.test(sym),
  },
  { name: 'ours: GEGLU', test: (dso, sym) => dso === 'ctclip.node' && /Geglu/i.test(sym) },
  { name: 'ours: AdamW', test: (dso, sym) => dso === 'ctclip.node' && /AdamW/.test(sym) },
  { name: 'ours: batched matmul', test: (dso, sym) => dso === 'ctclip.node' && /RunBatched|Batched/.test(sym) },
  { name: 'ours: other', test: (dso) => dso === 'ctclip.node' },
  {
    name: 'thread pools (OpenMP / BLAS workers)',
    // OpenBLAS's pthread workers spin in sched_yield between GEMMs; libpthreadpool is the Debian libtorch's pool.
    test: (dso, sym) =>
      /libgomp|libiomp|libomp|libpthreadpool/.test(dso) || /blas_thread|exec_blas|GOMP_|sched_yield/.test(sym),
  },
  {
    name: 'GEMM (BLAS)',
    test: (dso, sym) => /openblas|libblas|libmkl/.test(dso) || /gemm|mkl_blas|_bdz|gemv/i.test(sym),
  },
  // The reference's PEG is a depthwise conv3d, which torch runs through oneDNN (ours: the fused kernel above).
  { name: 'ATen: convolution (oneDNN)', test: (_d, sym) => /dnnl|mkldnn|convolution|conv_depthwise/i.test(sym) },
  { name: 'ATen: layer norm', test: (_d, sym) => /LayerNorm|RowwiseMoments/.test(sym) },
  { name: 'ATen: softmax', test: (_d, sym) => /softmax/i.test(sym) },
  { name: 'copies and fills', test: (_d, sym) => /copy_kernel|copy_|memmove|memcpy|memset|fill_kernel/.test(sym) },
  {
    name: 'allocator (malloc / free)',
    test: (dso, sym) => /^libc[.-]/.test(dso) && /malloc|free|_int_|unlink_chunk|consolidate|realloc|systrim/.test(sym),
  },
  {
    name: 'ATen: element-wise and reductions',
    test: (dso, sym) =>
      /libtorch|libc10/.test(dso) &&
      /_kernel|Vectorized|vectorized|cpu_kernel|serial_for_each|reduce|Sleef|mkl_vml|loop_2d|gelu/.test(sym),
  },
  { name: 'ATen: dispatcher, autograd, tensor bookkeeping', test: (dso) => /libtorch|libc10/.test(dso) },
  { name: 'Python interpreter', test: (dso) => /python|\.cpython-/.test(dso) },
  { name: 'Node / V8 / loader', test: (dso) => /^node$|libnode|ld-linux|libuv/.test(dso) },
  { name: 'other', test: () => true },
];

export interface PerfSymbol {
  share: number;
  dso: string;
  symbol: string;
}

/** Parses `perf report --stdio --no-children --sort dso,sym -g none` lines: "  12.34%  dso  [.] symbol". */
export function parsePerfReport(text: string): PerfSymbol[] {
  const out: PerfSymbol[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*?)\s*$/.exec(line);
    if (m) out.push({ share: Number(m[1]) / 100, dso: m[2], symbol: m[3] });
  }
  return out;
}

export interface CategoryShare {
  name: string;
  share: number;
  top: PerfSymbol[];
}

/** Sums the symbols' shares per category (CATEGORIES order), each with its three largest symbols. */
export function categorize(symbols: PerfSymbol[]): CategoryShare[] {
  const byName = new Map<string, CategoryShare>(CATEGORIES.map((c) => [c.name, { name: c.name, share: 0, top: [] }]));
  for (const s of symbols) {
    const c = CATEGORIES.find((cat) => cat.test(s.dso, s.symbol))!;
    const entry = byName.get(c.name)!;
    entry.share += s.share;
    if (entry.top.length < 3) entry.top.push(s);
  }
  return [...byName.values()];
}

export interface ProfileSide {
  label: string;
  stepMs: number;
  cpuMsPerStep: number;
  samples: number;
  categories: CategoryShare[];
}

function perfMissing(): string | null {
  const r = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'the `perf` tool is not installed (Debian: linux-perf)';
  return null;
}

/** Runs `argv` under `perf record` with the control FIFOs, returns its stdout and the perf report. */
function profileChild(argv: string[], freq: number): { stdout: string; report: string; samples: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-profile-'));
  try {
    const ctl = path.join(dir, 'ctl');
    const ack = path.join(dir, 'ack');
    const data = path.join(dir, 'perf.data');
    const mk = spawnSync('mkfifo', [ctl, ack]);
    if (mk.status !== 0) throw new Error(`mkfifo failed in ${dir}`);
    const rec = spawnSync(
      'perf',
      ['record', '-q', '-D', '-1', '--control', `fifo:${ctl},${ack}`, '-F', String(freq), '-o', data, '--', ...argv],
      {
        encoding: 'utf8',
        env: { ...process.env, CTCLIP_PERF_CTL: ctl, CTCLIP_PERF_ACK: ack },
        maxBuffer: 64 << 20,
      },
    );
    if (rec.status !== 0) {
      throw new Error(
        `perf record of '${argv.join(' ')}' failed (exit ${rec.status}): ${String(rec.stderr).slice(-2000)}` +
          ' (if perf cannot sample: sysctl kernel.perf_event_paranoid=2 or lower)',
      );
    }
    const rep = spawnSync(
      'perf',
      ['report', '-i', data, '--stdio', '--no-children', '--sort', 'dso,sym', '-g', 'none', '--percent-limit', '0'],
      { encoding: 'utf8', maxBuffer: 256 << 20 },
    );
    if (rep.status !== 0) throw new Error(`perf report failed: ${String(rep.stderr).slice(-2000)}`);
    const m = /^# Samples: (\d+)([KM]?) /m.exec(rep.stdout);
    const samples = m ? Number(m[1]) * (m[2] === 'K' ? 1e3 : m[2] === 'M' ? 1e6 : 1) : NaN;
    return {
      stdout: rec.stdout,
      report: rep.stdout,
      samples,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The JSON a bench printed last (one line, or pretty-printed from a line that starts with "{" to the end). */
function lastJson<T>(stdout: string, what: string): T {
  const text = stdout.trim();
  const at = text.startsWith('{') ? 0 : text.lastIndexOf('\n{') + 1;
  if (at === 0 && !text.startsWith('{')) throw new Error(`${what} printed no JSON result`);
  return JSON.parse(text.slice(at)) as T;
}

/**
 * The GEMM ceiling per core: a 1024² float32 matmul's FLOPs over the CPU time (all threads) it takes, in this
 * process on the same addon and threads. CPU time, not wall time, so that other processes' load does not lower it.
 */
async function matmulGflopsPerCpuSecond(threads: number): Promise<number> {
  const addon = loadAddon();
  addon.setNumThreads(threads);
  const n = 1024;
  const iters = 10;
  await addon.matmulGflops(n, 3);
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const c0 = process.cpuUsage();
    await addon.matmulGflops(n, iters);
    const c = process.cpuUsage(c0);
    best = Math.max(best, (2 * n ** 3 * iters) / 1e9 / ((c.user + c.system) / 1e6));
  }
  return best; // the best of three: contention only ever lowers it
}

export interface ProfileResult {
  preset: CtclipPreset;
  threads: number;
  iters: number;
  gflopPerStep: number;
  /** GFLOP per CPU-second of a 1024² matmul (the GEMM ceiling per core). */
  matmulGflopsPerCore: number;
  ours: ProfileSide;
  reference: ProfileSide | null;
  referenceMissing: string | null;
}

export async function runProfile(opts: {
  preset: CtclipPreset;
  iters: number;
  threads: number;
  freq: number;
  reference: boolean;
}): Promise<ProfileResult> {
  const missing = perfMissing();
  if (missing) throw new Error(`bench/profile.js needs perf: ${missing}`);
  const flags = { preset: opts.preset, json: true, threads: opts.threads, iters: opts.iters, warmup: 3 };
  const our = profileChild([process.execPath, path.join(__dirname, 'ctclip.js'), ...cliFlags(flags)], opts.freq);
  const r = lastJson<CtclipBenchResult>(our.stdout, 'bench/ctclip.js');
  const ours: ProfileSide = {
    label: `ctclip (torch ${r.torchVersion}, ${r.blas})`,
    stepMs: r.stepMs,
    cpuMsPerStep: r.cpuMsPerStep,
    samples: our.samples,
    categories: categorize(parsePerfReport(our.report)),
  };
  let reference: ProfileSide | null = null;
  let referenceMissing: string | null = null;
  if (opts.reference) {
    const python = worldPython();
    referenceMissing = referenceUnavailable(python);
    if (!referenceMissing) {
      const spec = referenceSpec(opts.preset, {
        batch: r.batch,
        threads: opts.threads,
        warmup: 3,
        iters: opts.iters,
        device: 'cpu',
        precision: 'fp32',
      });
      const ref = profileChild(referenceArgv(python!, spec), opts.freq);
      const rr = lastJson<ReferenceRun>(ref.stdout, 'scripts/reference-step.py');
      reference = {
        label: `reference (torch ${rr.torch})`,
        stepMs: rr.stepMs,
        cpuMsPerStep: rr.cpuMsPerStep,
        samples: ref.samples,
        categories: categorize(parsePerfReport(ref.report)),
      };
    }
  }
  return {
    preset: opts.preset,
    threads: opts.threads,
    iters: opts.iters,
    gflopPerStep: r.gflop,
    matmulGflopsPerCore: await matmulGflopsPerCpuSecond(opts.threads),
    ours,
    reference,
    referenceMissing,
  };
}

/** GEMM GFLOP/s per core: the step's matmul FLOPs over the CPU time the profile puts in GEMM. */
/** One category's share of a side's samples and its CPU ms per step. */
function categoryOf(side: ProfileSide, name: string): { share: number; cpuMs: number } {
  const share = side.categories.find((c) => c.name === name)!.share;
  return { share, cpuMs: share * side.cpuMsPerStep };
}

export function gemmGflopsPerCore(side: ProfileSide, gflopPerStep: number): number {
  return gflopPerStep / (categoryOf(side, 'GEMM (BLAS)').cpuMs / 1e3);
}

export function formatProfile(p: ProfileResult, top: number): string {
  const sides = [p.ours, ...(p.reference ? [p.reference] : [])];
  const f = (x: number, d = 1) => x.toFixed(d);
  const lines: string[] = [];
  lines.push(
    `CPU profile of the ${p.preset} train step (${p.threads} threads, ${p.iters} timed steps after 3 warm-up; perf samples of those steps only)`,
  );
  for (const s of sides) {
    lines.push(
      `  ${s.label}: step ${f(s.stepMs)} ms wall, ${f(s.cpuMsPerStep)} ms CPU (all threads), ${s.samples} samples`,
    );
  }
  if (p.referenceMissing) lines.push(`  reference: not run — ${p.referenceMissing}`);
  const head = ['category'.padEnd(48), ...sides.map((s) => `${s.label.split(' ')[0]} % / CPU ms`.padStart(24))];
  lines.push('  ' + head.join(''));
  for (const { name } of CATEGORIES) {
    const row = sides.map((s) => categoryOf(s, name));
    if (row.every((c) => c.share < 0.0005)) continue;
    lines.push('  ' + name.padEnd(48) + row.map((c) => `${f(100 * c.share)} % / ${f(c.cpuMs)}`.padStart(24)).join(''));
  }
  const peakPerCore = p.matmulGflopsPerCore;
  for (const s of sides) {
    const g = gemmGflopsPerCore(s, p.gflopPerStep);
    lines.push(
      `  GEMM, ${s.label.split(' ')[0]}: ${f(p.gflopPerStep, 2)} GFLOP per step in ${f(categoryOf(s, 'GEMM (BLAS)').cpuMs)} CPU ms → ${f(g)} GFLOP/s per core; ceiling ${f(peakPerCore)} GFLOP/s per core (1024² matmul, ${p.threads} threads, per CPU-second) = ${f(
        (100 * g) / peakPerCore,
      )} %`,
    );
  }
  if (top > 0) {
    lines.push(`  largest symbols (ours):`);
    const all = p.ours.categories.flatMap((c) => c.top.map((s) => ({ ...s, cat: c.name })));
    all.sort((a, b) => b.share - a.share);
    for (const s of all.slice(0, top))
      lines.push(`    ${f(100 * s.share).padStart(5)} %  ${s.dso}  ${s.symbol.slice(0, 110)}  [${s.cat}]`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'mid' },
      iters: { type: 'string', default: '30' },
      threads: { type: 'string', default: '2' },
      freq: { type: 'string', default: '999' },
      top: { type: 'string', default: '12' },
      reference: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const preset = values.preset as CtclipPreset;
  if (!(preset in PRESETS)) throw new Error(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const p = await runProfile({
    preset,
    iters: Number(values.iters),
    threads: Number(values.threads),
    freq: Number(values.freq),
    reference: values.reference,
  });
  console.log(formatProfile(p, Number(values.top)));
  if (values.json) console.log(JSON.stringify(p));
}

runBenchMain(module, main);
