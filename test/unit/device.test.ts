/** lib/model/device.ts (a request or the config's `device` section → a concrete device) and the `device` schema section. */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig, parseConfig } from '../../lib/config/load';
import { DeviceSchema } from '../../lib/config/schema';
import {
  configuredDevice,
  describeDeviceConfig,
  launchedLocalRank,
  resolveDevice,
  type DeviceSection,
} from '../../lib/model/device';

const repoRoot = path.resolve(__dirname, '..', '..');

function configError(fn: () => unknown, pattern: RegExp, key = 'device'): void {
  try {
    fn();
  } catch (e) {
    expect((e as { code?: string }).code, (e as Error).message).to.equal('CONFIG_ERROR');
    expect((e as Error).message.startsWith(`${key}: `), (e as Error).message).to.equal(true);
    expect((e as Error).message).to.match(pattern);
    return;
  }
  expect.fail('expected a CONFIG_ERROR');
}

describe('resolveDevice (a device request)', function () {
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
    configError(
      () => resolveDevice('cuda', { cudaDeviceCount: 0, localRank: 0 }),
      /needs a CUDA device, but libtorch reports none/,
    );
    configError(
      () => resolveDevice('cuda', { cudaDeviceCount: 2, localRank: 2 }),
      /local rank 2 to cuda:2, but libtorch reports 2 CUDA devices/,
    );
  });

  it("'cuda:N' is checked against the device count", function () {
    expect(resolveDevice('cuda:0', { cudaDeviceCount: 1, localRank: 0 })).to.equal('cuda:0');
    expect(resolveDevice('cuda:3', { cudaDeviceCount: 4, localRank: 0 })).to.equal('cuda:3');
    // an explicit index ignores the local rank
    expect(resolveDevice('cuda:1', { cudaDeviceCount: 2, localRank: 0 })).to.equal('cuda:1');
    configError(
      () => resolveDevice('cuda:1', { cudaDeviceCount: 1, localRank: 0 }),
      /'cuda:1' is not available: libtorch reports 1 CUDA device \(cuda:0 … cuda:0\)/,
    );
    configError(() => resolveDevice('cuda:0', { cudaDeviceCount: 0, localRank: 0 }), /'cuda:0' needs a CUDA device/);
  });

  it('rejects strings that are not devices, naming the value', function () {
    for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:-1', 'cuda:1.5', 'cpu:0', 'mps', '', ' cpu']) {
      expect(() => resolveDevice(bad, { cudaDeviceCount: 2, localRank: 0 })).to.throw(
        `device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(bad)}`,
      );
      configError(() => resolveDevice(bad, { cudaDeviceCount: 2, localRank: 0 }), /expected 'auto'/);
    }
  });

  it('names the key it is given (default: device)', function () {
    configError(
      () => resolveDevice('cuda:2', { cudaDeviceCount: 1, localRank: 0, key: 'device.cuda_device' }),
      /'cuda:2' is not available/,
      'device.cuda_device',
    );
    configError(
      () => resolveDevice('gpu', { cudaDeviceCount: 1, localRank: 0, key: 'opts.device' }),
      /expected 'auto'/,
      'opts.device',
    );
    configError(() => resolveDevice('cuda', { cudaDeviceCount: 0, localRank: 0 }), /needs a CUDA device/, 'device');
  });

  it('rejects a bad device count or local rank (ARGUMENT_ERROR)', function () {
    expect(() => resolveDevice('auto', { cudaDeviceCount: -1, localRank: 0 })).to.throw(/cudaDeviceCount/);
    expect(() => resolveDevice('auto', { cudaDeviceCount: 1, localRank: 0.5 })).to.throw(/localRank/);
  });
});

describe("configuredDevice (the config's device section)", function () {
  const section = (use_cuda: boolean | 'auto', cuda_device = 0): DeviceSection => ({ use_cuda, cuda_device });
  const single = (cudaDeviceCount: number) => ({ cudaDeviceCount, launchedLocalRank: null });
  const launched = (cudaDeviceCount: number, rank: number) => ({ cudaDeviceCount, launchedLocalRank: rank });

  it("use_cuda 'auto': cuda:<cuda_device> with a GPU, cpu without", function () {
    expect(configuredDevice(section('auto'), single(0))).to.equal('cpu');
    expect(configuredDevice(section('auto'), single(1))).to.equal('cuda:0');
    expect(configuredDevice(section('auto', 2), single(4))).to.equal('cuda:2');
    // without a GPU the index is never looked at
    expect(configuredDevice(section('auto', 7), single(0))).to.equal('cpu');
  });

  it('use_cuda true: CUDA required (CONFIG_ERROR naming device.use_cuda without a GPU)', function () {
    expect(configuredDevice(section(true), single(1))).to.equal('cuda:0');
    expect(configuredDevice(section(true, 1), single(2))).to.equal('cuda:1');
    configError(
      () => configuredDevice(section(true), single(0)),
      /^device\.use_cuda: true needs a CUDA device, but libtorch reports none .*set device\.use_cuda to 'auto' or false/,
      'device.use_cuda',
    );
    configError(() => configuredDevice(section(true), launched(0, 1)), /libtorch reports none/, 'device.use_cuda');
  });

  it('use_cuda false: cpu, whatever the GPUs, cuda_device and LOCAL_RANK', function () {
    expect(configuredDevice(section(false), single(0))).to.equal('cpu');
    expect(configuredDevice(section(false, 5), single(8))).to.equal('cpu');
    expect(configuredDevice(section(false), launched(8, 3))).to.equal('cpu');
  });

  it('cuda_device is checked against the device count (CONFIG_ERROR naming device.cuda_device)', function () {
    const msg = /^device\.cuda_device: 'cuda:2' is not available: libtorch reports 2 CUDA devices \(cuda:0 … cuda:1\)$/;
    configError(() => configuredDevice(section('auto', 2), single(2)), msg, 'device.cuda_device');
    configError(() => configuredDevice(section(true, 2), single(2)), msg, 'device.cuda_device');
    configError(
      () => configuredDevice(section(true, 1), single(1)),
      /'cuda:1' is not available: libtorch reports 1 CUDA device \(cuda:0 … cuda:0\)/,
      'device.cuda_device',
    );
  });

  it('when launched, LOCAL_RANK wins over cuda_device', function () {
    expect(configuredDevice(section('auto', 3), launched(4, 1))).to.equal('cuda:1');
    expect(configuredDevice(section(true, 3), launched(4, 2))).to.equal('cuda:2');
    // an out-of-range cuda_device does not matter when launched
    expect(configuredDevice(section(true, 9), launched(2, 0))).to.equal('cuda:0');
    // auto wraps the local ranks around the GPUs there are; true insists on one GPU per local rank
    expect(configuredDevice(section('auto'), launched(2, 3))).to.equal('cuda:1');
    configError(
      () => configuredDevice(section(true), launched(2, 2)),
      /'cuda' maps local rank 2 to cuda:2, but libtorch reports 2 CUDA devices/,
      'device.use_cuda',
    );
    // without a GPU, auto is the CPU on every rank
    expect(configuredDevice(section('auto'), launched(0, 3))).to.equal('cpu');
  });

  it('rejects a section the schema would not have produced', function () {
    configError(
      () => configuredDevice({ use_cuda: 'yes' as unknown as boolean, cuda_device: 0 }, single(1)),
      /expected true, false or 'auto', got "yes"/,
      'device.use_cuda',
    );
    configError(
      () => configuredDevice(section('auto', -1), single(1)),
      /expected an integer >= 0, got -1/,
      'device.cuda_device',
    );
  });

  it('describeDeviceConfig names the keys that chose the device', function () {
    expect(describeDeviceConfig(section('auto', 1), null)).to.equal('device.use_cuda auto, device.cuda_device 1');
    expect(describeDeviceConfig(section(true, 1), 2)).to.equal('device.use_cuda true, LOCAL_RANK 2');
  });
});

describe('launchedLocalRank', function () {
  it('is LOCAL_RANK when set to a rank, else null', function () {
    expect(launchedLocalRank({})).to.equal(null);
    expect(launchedLocalRank({ LOCAL_RANK: '' })).to.equal(null);
    expect(launchedLocalRank({ LOCAL_RANK: '0' })).to.equal(0);
    expect(launchedLocalRank({ LOCAL_RANK: '2' })).to.equal(2);
    expect(launchedLocalRank({ LOCAL_RANK: 'x' })).to.equal(null);
    expect(launchedLocalRank({ LOCAL_RANK: '-1' })).to.equal(null);
  });
});

describe('config: the device section', function () {
  it("defaults to use_cuda 'auto', cuda_device 0 (base config and an empty section)", function () {
    const { config } = loadConfig(path.join(repoRoot, 'configs', 'base_config.yaml'), { env: {} });
    expect(config.device).to.deep.equal({ use_cuda: 'auto', cuda_device: 0 });
    expect(DeviceSchema.parse({})).to.deep.equal({ use_cuda: 'auto', cuda_device: 0 });
    expect(parseConfig({ experiment: { name: 'd' } }).device).to.deep.equal({ use_cuda: 'auto', cuda_device: 0 });
  });

  it('accepts use_cuda auto / true / false and a cuda_device index', function () {
    for (const ok of ['auto', true, false] as const) expect(DeviceSchema.parse({ use_cuda: ok }).use_cuda).to.equal(ok);
    expect(DeviceSchema.parse({ cuda_device: 3 }).cuda_device).to.equal(3);
  });

  it('rejects anything else', function () {
    for (const bad of ['yes', 'cuda', 'cpu', 1, null])
      expect(DeviceSchema.safeParse({ use_cuda: bad }).success, String(bad)).to.equal(false);
    for (const bad of [-1, 1.5, '0', 'cuda:0'])
      expect(DeviceSchema.safeParse({ cuda_device: bad }).success, String(bad)).to.equal(false);
    expect(() => parseConfig({ experiment: { name: 'd' }, device: { use_cuda: 'yes' } })).to.throw(/device\.use_cuda/);
  });

  it('can be set with overrides', function () {
    const { config } = loadConfig(path.join(repoRoot, 'configs', 'base_config.yaml'), {
      env: {},
      overrides: ['device.use_cuda=false', 'device.cuda_device=2'],
    });
    expect(config.device).to.deep.equal({ use_cuda: false, cuda_device: 2 });
  });

  it('training.device is gone: an old config or override setting it is an unknown key that says where the device is set now', function () {
    const expectRemoved = (fn: () => unknown): void => {
      try {
        fn();
      } catch (e) {
        expect((e as { code?: string }).code).to.equal('CONFIG_ERROR');
        expect((e as Error).message).to.match(
          /unknown key training\.device \(removed: the device is chosen by the device section, device\.use_cuda \(auto, true or false\) and device\.cuda_device/,
        );
        return;
      }
      expect.fail('expected a CONFIG_ERROR');
    };
    expectRemoved(() =>
      loadConfig(path.join(repoRoot, 'configs', 'base_config.yaml'), { env: {}, overrides: ['training.device=cpu'] }),
    );
    expectRemoved(() => parseConfig({ experiment: { name: 'd' }, training: { device: 'cuda:0' } }));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-device-cfg-'));
    try {
      const file = path.join(dir, 'old.yaml');
      fs.writeFileSync(file, 'experiment:\n  name: old\ntraining:\n  device: cuda\n');
      expectRemoved(() => loadConfig(file, { env: {} }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
