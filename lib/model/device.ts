/**
 * Which device the model and the training step run on, as pure functions of a request (or the config's `device`
 * section), the number of CUDA devices libtorch sees (`buildInfo().cudaDeviceCount`) and the process's LOCAL_RANK.
 *
 * A request (`resolveDevice`; what `createModelOn`, `loadModel`, `loadInferenceModel` and `CTClip.to` take):
 *
 *   'auto'    → `cuda:<localRank % count>` when libtorch sees a GPU, else 'cpu'
 *   'cpu'     → 'cpu'
 *   'cuda'    → `cuda:<localRank>` (one GPU per local rank; CONFIG_ERROR when localRank ≥ count)
 *   'cuda:N'  → 'cuda:N' (CONFIG_ERROR when N ≥ count)
 *
 * The config's `device` section (`configuredDevice`):
 *
 *   use_cuda 'auto' (default) → a GPU when libtorch sees one, else 'cpu'
 *   use_cuda true             → a GPU; CONFIG_ERROR naming `device.use_cuda` when libtorch sees none
 *   use_cuda false            → 'cpu'
 *
 * and the GPU is `cuda:<device.cuda_device>` for a single process (CONFIG_ERROR naming `device.cuda_device` when
 * libtorch does not see it), `cuda:<LOCAL_RANK>` when launched (LOCAL_RANK wins over `device.cuda_device`).
 *
 * The native side checks again when the model moves (`CTClip.to`, DEVICE_UNAVAILABLE).
 */
import { CtclipError } from '../errors';
import { loadAddon } from '../native';

export type DeviceRequest = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;
/** A concrete device: 'cpu' or 'cuda:N'. */
export type Device = 'cpu' | `cuda:${number}`;

export const DEVICE_PATTERN = /^(auto|cpu|cuda(:\d+)?)$/;

export interface DeviceContext {
  /** CUDA devices libtorch sees (0 with a CPU-only libtorch or without a GPU). */
  cudaDeviceCount: number;
  /** This process's local rank (LOCAL_RANK; 0 for a single process). */
  localRank: number;
  /** What the error messages name as the source of the request (default 'device'; e.g. 'device.cuda_device'). */
  key?: string;
}

function configError(key: string, message: string): CtclipError {
  return new CtclipError('CONFIG_ERROR', `${key}: ${message}`);
}

function devices(count: number): string {
  return `${count} CUDA device${count === 1 ? '' : 's'}`;
}

function noGpu(requested: string, count: number): string {
  return count === 0
    ? `'${requested}' needs a CUDA device, but libtorch reports none (a CPU-only libtorch, or no GPU visible); use 'cpu' or 'auto'`
    : `'${requested}' is not available: libtorch reports ${devices(count)} (cuda:0 … cuda:${count - 1})`;
}

function checkContext(count: number, localRank: number): void {
  if (!Number.isSafeInteger(count) || count < 0)
    throw new CtclipError('ARGUMENT_ERROR', `resolveDevice: cudaDeviceCount must be an integer >= 0, got ${count}`);
  if (!Number.isSafeInteger(localRank) || localRank < 0)
    throw new CtclipError('ARGUMENT_ERROR', `resolveDevice: localRank must be an integer >= 0, got ${localRank}`);
}

/** The concrete device for `requested` (see the module comment); CONFIG_ERROR naming `ctx.key` otherwise. */
export function resolveDevice(requested: DeviceRequest | string, ctx: DeviceContext): Device {
  const { cudaDeviceCount: count, localRank } = ctx;
  const key = ctx.key ?? 'device';
  checkContext(count, localRank);
  if (typeof requested !== 'string' || !DEVICE_PATTERN.test(requested)) {
    throw configError(key, `expected 'auto', 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(requested)}`);
  }
  if (requested === 'cpu') return 'cpu';
  if (requested === 'auto') return count > 0 ? `cuda:${localRank % count}` : 'cpu';
  if (requested === 'cuda') {
    if (count === 0) throw configError(key, noGpu(requested, count));
    if (localRank >= count) {
      throw configError(
        key,
        `'cuda' maps local rank ${localRank} to cuda:${localRank}, but libtorch reports ${devices(count)}; start at most ${count} ranks per node or use 'auto'`,
      );
    }
    return `cuda:${localRank}`;
  }
  const index = Number(requested.slice('cuda:'.length));
  if (index >= count) throw configError(key, noGpu(requested, count));
  return `cuda:${index}`;
}

/** Whether a resolved device is a CUDA device. */
export function isCudaDevice(device: string): boolean {
  return device.startsWith('cuda');
}

/** The config's `device` section (lib/config/schema.ts `DeviceSchema`). */
export interface DeviceSection {
  use_cuda: boolean | 'auto';
  cuda_device: number;
}

/** The part of a run config that chooses the device. */
export interface DeviceConfig {
  device: DeviceSection;
}

/**
 * The concrete device the config's `device` section chooses (see the module comment). `launchedLocalRank` is the
 * process's LOCAL_RANK when it was launched (torchrun / ctclip launch / a process group), else null.
 */
export function configuredDevice(
  section: DeviceSection,
  ctx: { cudaDeviceCount: number; launchedLocalRank: number | null },
): Device {
  const { use_cuda, cuda_device } = section;
  const count = ctx.cudaDeviceCount;
  const launched = ctx.launchedLocalRank;
  checkContext(count, launched ?? 0);
  if (use_cuda !== true && use_cuda !== false && use_cuda !== 'auto') {
    throw configError('device.use_cuda', `expected true, false or 'auto', got ${JSON.stringify(use_cuda)}`);
  }
  if (!Number.isSafeInteger(cuda_device) || cuda_device < 0) {
    throw configError('device.cuda_device', `expected an integer >= 0, got ${JSON.stringify(cuda_device)}`);
  }
  if (use_cuda === false) return 'cpu';
  if (count === 0) {
    if (use_cuda === 'auto') return 'cpu';
    throw configError(
      'device.use_cuda',
      `true needs a CUDA device, but libtorch reports none (a CPU-only libtorch, or no GPU visible); set device.use_cuda to 'auto' or false to run on the CPU`,
    );
  }
  // Launched: one GPU per local rank (LOCAL_RANK wins over device.cuda_device). 'auto' wraps around the GPUs there
  // are; true insists on cuda:<LOCAL_RANK>.
  if (launched !== null)
    return resolveDevice(use_cuda === true ? 'cuda' : 'auto', {
      cudaDeviceCount: count,
      localRank: launched,
      key: 'device.use_cuda',
    });
  return resolveDevice(`cuda:${cuda_device}`, { cudaDeviceCount: count, localRank: 0, key: 'device.cuda_device' });
}

/** CUDA devices the loaded addon's libtorch sees (0 when CUDA is not available). */
export function cudaDeviceCount(): number {
  const info = loadAddon().buildInfo();
  return info.cudaAvailable ? info.cudaDeviceCount : 0;
}

/** The config's `device` section resolved against the loaded addon's libtorch (`buildInfo().cudaDeviceCount`). */
export function deviceForConfig(cfg: DeviceConfig, launchedLocalRank: number | null = null): Device {
  if (cfg.device.use_cuda === false) return 'cpu';
  return configuredDevice(cfg.device, { cudaDeviceCount: cudaDeviceCount(), launchedLocalRank });
}

/**
 * The device for an explicit request (a `{device}` option of the public API) when there is one, else the config's
 * `device` section: an explicit request goes straight to `resolveDevice` (local rank = LOCAL_RANK, else 0), and its
 * errors name `key`.
 */
export function deviceFor(
  cfg: DeviceConfig,
  request: DeviceRequest | string | undefined,
  launchedLocalRank: number | null = null,
  key = 'device',
): Device {
  if (request === undefined) return deviceForConfig(cfg, launchedLocalRank);
  if (request === 'cpu') return 'cpu';
  return resolveDevice(request, { cudaDeviceCount: cudaDeviceCount(), localRank: launchedLocalRank ?? 0, key });
}

/** How the config's `device` section reads, for log lines ("device.use_cuda auto, device.cuda_device 0"). */
export function describeDeviceConfig(section: DeviceSection, launchedLocalRank: number | null = null): string {
  const where =
    launchedLocalRank !== null ? `LOCAL_RANK ${launchedLocalRank}` : `device.cuda_device ${section.cuda_device}`;
  return `device.use_cuda ${String(section.use_cuda)}, ${where}`;
}

/** LOCAL_RANK of a launched process (torchrun / ctclip launch), or null for a plain single process. */
export function launchedLocalRank(env: NodeJS.ProcessEnv = process.env): number | null {
  const v = env.LOCAL_RANK;
  if (v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}
