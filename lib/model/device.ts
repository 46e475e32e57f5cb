/**
 * Which device the model and the training step run on (`training.device`), as a pure function of the request, the
 * number of CUDA devices libtorch sees (`buildInfo().cudaDeviceCount`) and the process's LOCAL_RANK:
 *
 *   'auto'    → `cuda:<localRank % count>` when libtorch sees a GPU, else 'cpu'
 *   'cpu'     → 'cpu'
 *   'cuda'    → `cuda:<localRank>` (one GPU per local rank; CONFIG_ERROR when localRank ≥ count)
 *   'cuda:N'  → 'cuda:N' (CONFIG_ERROR when N ≥ count)
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
}

function configError(message: string): CtclipError {
  return new CtclipError('CONFIG_ERROR', `training.device: ${message}`);
}

function noGpu(requested: string, count: number): string {
  return count === 0
    ? `'${requested}' needs a CUDA device, but libtorch reports none (a CPU-only libtorch, or no GPU visible); use 'cpu' or 'auto'`
    : `'${requested}' is not available: libtorch reports ${count} CUDA device${count === 1 ? '' : 's'} (cuda:0 … cuda:${count - 1})`;
}

/** The concrete device for `requested` (see the module comment); CONFIG_ERROR naming `training.device` otherwise. */
export function resolveDevice(requested: DeviceRequest | string, ctx: DeviceContext): Device {
  const { cudaDeviceCount: count, localRank } = ctx;
  if (!Number.isSafeInteger(count) || count < 0) throw new CtclipError('ARGUMENT_ERROR', `resolveDevice: cudaDeviceCount must be an integer >= 0, got ${count}`);
  if (!Number.isSafeInteger(localRank) || localRank < 0) throw new CtclipError('ARGUMENT_ERROR', `resolveDevice: localRank must be an integer >= 0, got ${localRank}`);
  if (typeof requested !== 'string' || !DEVICE_PATTERN.test(requested)) {
    throw configError(`expected 'auto', 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(requested)}`);
  }
  if (requested === 'cpu') return 'cpu';
  if (requested === 'auto') return count > 0 ? `cuda:${localRank % count}` : 'cpu';
  if (requested === 'cuda') {
    if (count === 0) throw configError(noGpu(requested, count));
    if (localRank >= count) {
      throw configError(`'cuda' maps local rank ${localRank} to cuda:${localRank}, but libtorch reports ${count} CUDA device${count === 1 ? '' : 's'}; start at most ${count} ranks per node or use 'auto'`);
    }
    return `cuda:${localRank}`;
  }
  const index = Number(requested.slice('cuda:'.length));
  if (index >= count) throw configError(noGpu(requested, count));
  return `cuda:${index}`;
}

/** Whether a resolved device is a CUDA device. */
export function isCudaDevice(device: string): boolean {
  return device.startsWith('cuda');
}

/** The parts of a run config that choose the device (`training.device`, and the older `device` section). */
export interface DeviceConfig {
  training: { device: string };
  device?: { use_cuda: boolean | 'auto'; cuda_device: number };
}

/**
 * The request and local rank a config makes: `training.device`; under 'auto' the older `device.use_cuda` switch is
 * honoured (false → 'cpu', true → 'cuda'); the local rank is LOCAL_RANK when launched, else `device.cuda_device`.
 */
export function configuredDevice(cfg: DeviceConfig, launchedLocalRank: number | null): { requested: string; localRank: number } {
  let requested = cfg.training.device;
  if (requested === 'auto' && cfg.device?.use_cuda === false) requested = 'cpu';
  else if (requested === 'auto' && cfg.device?.use_cuda === true) requested = 'cuda';
  return { requested, localRank: launchedLocalRank ?? cfg.device?.cuda_device ?? 0 };
}

/** `resolveDevice` for a run config against the loaded addon's libtorch (`buildInfo().cudaDeviceCount`). */
export function deviceForConfig(cfg: DeviceConfig, launchedLocalRank: number | null = null): Device {
  const { requested, localRank } = configuredDevice(cfg, launchedLocalRank);
  if (requested === 'cpu') return 'cpu';
  const info = loadAddon().buildInfo();
  return resolveDevice(requested, { cudaDeviceCount: info.cudaAvailable ? info.cudaDeviceCount : 0, localRank });
}

/** LOCAL_RANK of a launched process (torchrun / ctclip launch), or null for a plain single process. */
export function launchedLocalRank(env: NodeJS.ProcessEnv = process.env): number | null {
  const v = env.LOCAL_RANK;
  if (v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}
