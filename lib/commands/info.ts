/**
 * `ctclip info [--threads N] [--json]`: what the native addon was built against and what it actually loaded
 * (libtorch version and library file, CUDA devices, NCCL/Gloo, SDPA, threads, BLAS).
 */
import { addonCandidates, loadAddon } from '../native';
import { configureThreads } from '../runtime';
import { intOption, parseCommandArgs, runCommand } from './common';

const USAGE = `usage: ctclip info [--threads N] [--json]

  --threads N   set libtorch intra-op threads first (default: CPU count)
  --json        print JSON`;

export function run(argv: string[]): Promise<number> {
  return runCommand('info', USAGE, async () => {
    const { values } = parseCommandArgs(argv, {
      threads: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const addon = loadAddon();
    configureThreads(values.threads !== undefined ? intOption('threads', values.threads) : null);
    const info = addon.buildInfo();
    const pkg = require('../../package.json') as { version: string };
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ ctclip: pkg.version, node: process.version, addon: addonCandidates()[0], ...info }, null, 2)}\n`,
      );
      return 0;
    }
    const rows: Array<[string, string]> = [
      ['ctclip', pkg.version],
      ['node', `${process.version} (N-API ${info.napiVersion})`],
      ['libtorch (loaded)', `${info.runtimeTorchVersion || 'unknown'}  ${info.torchLibraryPath}`],
      ['libtorch (compiled)', `${info.compiledTorchVersion}  from ${info.torchSource}`],
      ['CUDA', info.cudaAvailable ? `available, ${info.cudaDeviceCount} device(s)` : 'not available'],
      ['collectives', `Gloo ${info.gloo ? 'yes' : 'no'}, NCCL ${info.nccl ? 'yes' : 'no'}`],
      ['SDPA', info.sdpa ? 'yes (libtorch >= 2.0)' : 'no (libtorch < 2.0: explicit attention)'],
      [
        'threads',
        `${info.threads} intra-op, ${info.interopThreads} inter-op (${info.hardwareConcurrency} hardware threads, ${info.parallelBackend})`,
      ],
      ['BLAS', info.blas],
      ['CPU capability', info.cpuCapability || 'unknown'],
      ['malloc', info.allocatorTuning],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
    return 0;
  });
}
