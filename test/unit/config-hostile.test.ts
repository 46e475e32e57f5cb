/**
 * Hostile config files (docs/limits.md, "Configuration files"): `__proto__` / `constructor` / `prototype` keys
 * anywhere (a file, a `--set` path or value, an expanded `${VAR}`) are "unknown key" errors naming the path and
 * the source, and never reach an object prototype; config files over 1 MiB are refused before parsing. (FIFOs
 * and devices as config files: test/integration/config-files-cli.test.ts, in child processes.)
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { applyOverride, loadConfig, MAX_CONFIG_BYTES, type LoadConfigOptions } from '../../lib/config/load';

function loadError(file: string, opts: LoadConfigOptions = {}): Error & { code?: string } {
  try {
    loadConfig(file, { warn: () => undefined, ...opts });
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error(`expected ${file} to be refused`);
}

describe('config: hostile keys and files', () => {
  let dir: string;
  const write = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-config-hostile-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    // Nothing may have reached Object.prototype.
    for (const k of ['polluted', 'x', 'batch_size', 'a']) expect(Object.prototype).not.to.have.own.property(k);
  });

  describe('__proto__, constructor and prototype keys are unknown keys', () => {
    const cases: [string, string, string][] = [
      ['top-level __proto__', 'experiment: {name: t}\n__proto__:\n  polluted: 1\n', '__proto__'],
      // This one used to set data.batch_size to 3 through the prototype of the data mapping.
      [
        'nested __proto__ (a value that leaked through the prototype)',
        'experiment: {name: t}\ndata:\n  __proto__: {batch_size: 3}\n',
        'data.__proto__',
      ],
      ['flow-mapping __proto__', 'experiment: {name: t, __proto__: {polluted: 1}}\n', 'experiment.__proto__'],
      [
        'constructor',
        'experiment: {name: t}\ntraining:\n  constructor: {prototype: {polluted: 1}}\n',
        'training.constructor',
      ],
      ['prototype', 'experiment: {name: t}\nprototype: 1\n', 'prototype'],
      ['inside a list', 'experiment: {name: t, tags: [{__proto__: {polluted: 1}}]}\n', 'experiment.tags[0].__proto__'],
    ];
    for (const [name, text, key] of cases) {
      it(`${name}: "<file>: unknown key ${key}"`, () => {
        const f = write(`${name.replace(/\W+/g, '_')}.yaml`, text);
        const e = loadError(f);
        expect(e.code).to.equal('CONFIG_ERROR');
        expect(e.message).to.equal(`${f}: unknown key ${key} (a reserved JavaScript name, never a config key)`);
      });
    }

    it('in a _base_ file: the base file is blamed', () => {
      const base = write('proto-base.yaml', 'data:\n  __proto__: {batch_size: 3}\n');
      const top = write('proto-top.yaml', `_base_: ${base}\nexperiment: {name: t}\n`);
      expect(loadError(top).message).to.equal(
        `${base}: unknown key data.__proto__ (a reserved JavaScript name, never a config key)`,
      );
    });

    it('--set blames --set: in the key path and in a flow-mapping value', () => {
      const f = write('ok.yaml', 'experiment: {name: t}\n');
      for (const [spec, msg] of [
        ['__proto__.x=1', '--set __proto__.x: unknown key __proto__'],
        ['data.__proto__.batch_size=3', '--set data.__proto__.batch_size: unknown key data.__proto__'],
        ['constructor.prototype.x=1', '--set constructor.prototype.x: unknown key constructor'],
        ['training.prototype=1', '--set training.prototype: unknown key training.prototype'],
        ['data={__proto__: {batch_size: 3}}', '--set data: unknown key data.__proto__'],
      ]) {
        const e = loadError(f, { overrides: [spec] });
        expect(e.code, spec).to.equal('CONFIG_ERROR');
        expect(e.message, spec).to.equal(`${msg} (a reserved JavaScript name, never a config key)`);
      }
      expect(() => applyOverride({}, '__proto__.polluted=1')).to.throw(
        '--set __proto__.polluted: unknown key __proto__',
      );
      // Ordinary overrides still work, flow values included.
      const { config } = loadConfig(f, { overrides: ['data.batch_size=3', 'experiment.tags=[a, b]'] });
      expect(config.data.batch_size).to.equal(3);
      expect(config.experiment.tags).to.deep.equal(['a', 'b']);
    });

    it('a ${VAR} that expands to a mapping with __proto__ is refused, naming the file and key', () => {
      const f = write('env.yaml', 'experiment: {name: t}\ndata:\n  batch_size: ${HOSTILE}\n');
      const e = loadError(f, { env: { HOSTILE: '{__proto__: {a: 1}}' } });
      expect(e.message).to.equal(
        `${f}: unknown key data.batch_size.__proto__ (a reserved JavaScript name, never a config key)`,
      );
    });
  });

  describe('size cap', () => {
    it(`refuses a config over ${MAX_CONFIG_BYTES} bytes (1 MiB) before parsing it, main file or _base_`, () => {
      const big = write('big.yaml', `experiment: {name: t}\n#${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
      const e = loadError(big);
      expect(e.code).to.equal('CONFIG_ERROR');
      expect(e.message).to.contain(
        `config '${big}' is ${fs.statSync(big).size} bytes, over the 1 MiB limit for config files`,
      );
      const top = write('big-top.yaml', `_base_: big.yaml\nexperiment: {name: t}\n`);
      expect(loadError(top).message).to.contain(`over the 1 MiB limit for config files (the _base_ of ${top})`);
      // Just under the cap still loads.
      const ok = write('under.yaml', `experiment: {name: t}\n#${'x'.repeat(MAX_CONFIG_BYTES - 40)}\n`);
      expect(loadConfig(ok).config.experiment.name).to.equal('t');
    });

    it('a directory is not a config', () => {
      expect(loadError(dir).message).to.contain(`config '${dir}' is a directory, not a regular file`);
    });
  });
});
