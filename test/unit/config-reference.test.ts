/**
 * docs/configuration.md is generated from the zod schema (lib/config/reference.ts, `npm run docs:config`). These
 * tests regenerate it in memory and fail when the committed file is stale, and check the generator against the
 * schema independently (every leaf key listed once, defaults equal to what the schema fills in).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  configKeyReference,
  missingDescriptions,
  NO_DESCRIPTION,
  renderConfigReference,
} from '../../lib/config/reference';
import { ConfigSchema } from '../../lib/config/schema';

const ROOT = path.resolve(__dirname, '../..');
const DOC = path.join(ROOT, 'docs/configuration.md');

/** Leaf paths of a parsed config (objects recursed; arrays and scalars are leaves). */
function leafPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>))
    out.push(...leafPaths(v, prefix ? `${prefix}.${k}` : k));
  return out;
}

function at(obj: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], obj);
}

describe('configuration reference (docs/configuration.md)', () => {
  it('docs/configuration.md is up to date with lib/config/schema.ts', () => {
    const expected = renderConfigReference();
    const current = fs.existsSync(DOC) ? fs.readFileSync(DOC, 'utf8') : '';
    if (current !== expected) {
      const a = current.split('\n');
      const b = expected.split('\n');
      let i = 0;
      while (i < Math.min(a.length, b.length) && a[i] === b[i]) i++;
      expect.fail(
        `docs/configuration.md is out of date with lib/config/schema.ts: run \`npm run docs:config\` and commit the result ` +
          `(first difference at line ${i + 1}: file has ${JSON.stringify(a[i] ?? '<end>')}, schema gives ${JSON.stringify(b[i] ?? '<end>')})`,
      );
    }
  });

  it('lists every leaf key of the schema exactly once, with the default the schema fills in', () => {
    const parsed = ConfigSchema.parse({ experiment: { name: 'x' } });
    const schemaLeaves = leafPaths(parsed).sort();
    const keys = configKeyReference();
    expect(keys.map((k) => k.path).sort()).to.deep.equal(schemaLeaves);
    const byPath = new Map(keys.map((k) => [k.path, k]));
    expect(byPath.get('experiment.name')!.defaultText).to.equal('(required)');
    expect(byPath.get('training.learning_rate')!.defaultText).to.equal('1.25e-6');
    expect(byPath.get('training.betas')!.defaultText).to.equal('[0.9, 0.99]');
    expect(byPath.get('checkpoint.save_dir')!.defaultText).to.equal('"runs/ctclip"');
    expect(byPath.get('training.max_steps')!.type).to.equal('integer ≥ 1 | null');
    expect(byPath.get('model.loss.type')!.type).to.equal('"softmax" | "siglip"');
    // Every default shown is the schema's own (numbers/strings/booleans/null compared as values).
    for (const k of keys) {
      if (k.path === 'experiment.name') continue;
      const v = at(parsed, k.path);
      if (v === null || ['string', 'boolean'].includes(typeof v))
        expect(k.defaultText, k.path).to.equal(
          v === null ? 'null' : typeof v === 'string' ? JSON.stringify(v) : String(v),
        );
      else if (typeof v === 'number') expect(Number(k.defaultText), k.path).to.equal(v);
    }
  });

  it('renders the describe() text of each key, and marks keys without one', () => {
    const text = renderConfigReference();
    expect(text).to.include('| `training.learning_rate` | number > 0 | `1.25e-6` | Peak learning rate |');
    expect(text).to.include('## `model.image_encoder`');
    const missing = missingDescriptions();
    for (const p of missing)
      expect(text).to.match(new RegExp(`\\| \`${p.replace(/\./g, '\\.')}\` \\|.*\\*\\(no description\\)\\* \\|`));
    expect(text.split(NO_DESCRIPTION).length - 1).to.equal(missing.length);
  });
});
