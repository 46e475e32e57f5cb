/** lib/model/device.ts (training.device → a concrete device) and the `training.device` schema key. */
import { expect } from 'chai';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { TrainingSchema } from '../../lib/config/schema';
import { configuredDevice, launchedLocalRank, resolveDevice } from '../../lib/model/device';

const repoRoot = path.resolve(__dirname, '..', '..');

function configError(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect((e as { code?: string }).code, (e as Error).message).to.equal('CONFIG_ERROR');
    expect((e as Error).message).to.match(/training\.device/);
    expect((e as Error).message).to.match(pattern);
    return;
  }
  expect.fail('expected a CONFIG_ERROR');
}

describe('resolveDevice (training.device)', function () {
  it("'auto' is cuda:<localRank mod count> with GPUs, cpu without", function () {
    expect(resolveDevice('auto', { cudaDeviceCount: 0, localRank: 0 })).to.equal('cpu');
    expect(resolveDevice('auto', { cudaDeviceCount: 0, localRank: 3 })).to.equal('cpu');
    expect(resolveDevice('auto', { cudaDeviceCount: 1, localRank: 0 })).to.equal('cuda:0');
    expect(resolveDevice('auto', { cudaDeviceCount: 4, localRank: 2 })).to.equal('cuda:2');
    expect(resolveDevice('auto', { cudaDeviceCount: 4, localRank: 5 })).to.equal('cuda:1');
  });

  it("'cpu' is always the CPU", function () {
    expect(resolveDevice('cpu', { cudaDeviceCount: 0, localRank: 0 })).to.equal('cpu');
    expect(resolveDevice('cpu', { cudaDeviceCount: 8, localRank: 7 })).to.equal('cpu');
  });

  it("'cuda' is cuda:<localRank>, and an error when that GPU is not there", function () {
    expect(resolveDevice('cuda', { cudaDeviceCount: 2, localRank: 0 })).to.equal('cuda:0');
    expect(resolveDevice('cuda', { cudaDeviceCount: 2, localRank: 1 })).to.equal('cuda:1');
    configError(() => resolveDevice('cuda', { cudaDeviceCount: 0, localRank: 0 }), /needs a CUDA device, but libtorch reports none/);
    configError(() => resolveDevice('cuda', { cudaDeviceCount: 2, localRank: 2 }), /local rank 2 to cuda:2, but libtorch reports 2 CUDA devices/);
  });

  it("'cuda:N' is checked against the device count", function () {
    expect(resolveDevice('cuda:0', { cudaDeviceCount: 1, localRank: 0 })).to.equal('cuda:0');
    expect(resolveDevice('cuda:3', { cudaDeviceCount: 4, localRank: 0 })).to.equal('cuda:3');
    // an explicit index ignores the local rank
    expect(resolveDevice('cuda:1', { cudaDeviceCount: 2, localRank: 0 })).to.equal('cuda:1');
    configError(() => resolveDevice('cuda:1', { cudaDeviceCount: 1, localRank: 0 }), /'cuda:1' is not available: libtorch reports 1 CUDA device \(cuda:0 … cuda:0\)/);
    configError(() => resolveDevice('cuda:0', { cudaDeviceCount: 0, localRank: 0 }), /'cuda:0' needs a CUDA device/);
  });

  it('rejects strings that are not devices, naming the value', function () {
    for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:-1', 'cuda:1.5', 'cpu:0', 'mps', '', ' cpu']) {
      expect(() => resolveDevice(bad, { cudaDeviceCount: 2, localRank: 0 })).to.throw(`training.device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(bad)}`);
      configError(() => resolveDevice(bad, { cudaDeviceCount: 2, localRank: 0 }), /expected 'auto'/);
    }
  });

  it('rejects a bad device count or local rank (ARGUMENT_ERROR)', function () {
    expect(() => resolveDevice('auto', { cudaDeviceCount: -1, localRank: 0 })).to.throw(/cudaDeviceCount/);
    expect(() => resolveDevice('auto', { cudaDeviceCount: 1, localRank: 0.5 })).to.throw(/localRank/);
  });
});

describe('configuredDevice / launchedLocalRank', function () {
  it('training.device wins; under auto the older device.use_cuda switch is honoured', function () {
    const dev = { use_cuda: 'auto' as const, cuda_device: 0 };
    expect(configuredDevice({ training: { device: 'cuda:1' }, device: { ...dev, use_cuda: false } }, null)).to.deep.equal({ requested: 'cuda:1', localRank: 0 });
    expect(configuredDevice({ training: { device: 'auto' }, device: { ...dev, use_cuda: false } }, null).requested).to.equal('cpu');
    expect(configuredDevice({ training: { device: 'auto' }, device: { ...dev, use_cuda: true } }, null).requested).to.equal('cuda');
    expect(configuredDevice({ training: { device: 'auto' }, device: dev }, null).requested).to.equal('auto');
  });

  it('the local rank is LOCAL_RANK when launched, else device.cuda_device', function () {
    const cfg = { training: { device: 'auto' }, device: { use_cuda: 'auto' as const, cuda_device: 3 } };
    expect(configuredDevice(cfg, null).localRank).to.equal(3);
    expect(configuredDevice(cfg, 1).localRank).to.equal(1);
    expect(launchedLocalRank({})).to.equal(null);
    expect(launchedLocalRank({ LOCAL_RANK: '2' })).to.equal(2);
    expect(launchedLocalRank({ LOCAL_RANK: 'x' })).to.equal(null);
  });
});

describe('config: training.device', function () {
  it("defaults to 'auto' (base config and an empty training section)", function () {
    const { config } = loadConfig(path.join(repoRoot, 'configs', 'base_config.yaml'), { env: {} });
    expect(config.training.device).to.equal('auto');
    expect(TrainingSchema.parse({}).device).to.equal('auto');
  });

  it('accepts auto, cpu, cuda and cuda:N', function () {
    for (const ok of ['auto', 'cpu', 'cuda', 'cuda:0', 'cuda:12']) expect(TrainingSchema.parse({ device: ok }).device).to.equal(ok);
  });

  it('rejects anything else', function () {
    for (const bad of ['gpu', 'cuda:', 'cuda:x', 'CPU', 'cpu:0', 'cuda:-1', '']) {
      expect(TrainingSchema.safeParse({ device: bad }).success, bad).to.equal(false);
    }
    expect(TrainingSchema.safeParse({ device: 0 }).success).to.equal(false);
  });

  it('can be set with an override', function () {
    const { config } = loadConfig(path.join(repoRoot, 'configs', 'base_config.yaml'), { env: {}, overrides: ['training.device=cpu'] });
    expect(config.training.device).to.equal('cpu');
  });
});
