/**
 * The model factory's config resolution (pure TypeScript, no addon): the vocabulary file and the class names
 * that training, infer/embed/predict and the library API all use.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../lib/config/load';
import type { ShardIndex } from '../../lib/data/shard-index';
import { resolveClassNames, tokenizerFromConfig, vocabFile } from '../../lib/model/factory';

describe('model factory: vocabulary and class names', () => {
  it('vocabFile: model.text_encoder.vocab, else <path>/vocab.txt, else CONFIG_ERROR naming both keys', () => {
    expect(
      vocabFile(parseConfig({ experiment: { name: 'f' }, model: { text_encoder: { vocab: 'v.txt', path: 'hf' } } })),
    ).to.equal('v.txt');
    expect(vocabFile(parseConfig({ experiment: { name: 'f' }, model: { text_encoder: { path: 'hf' } } }))).to.equal(
      path.join('hf', 'vocab.txt'),
    );
    const cfg = parseConfig({ experiment: { name: 'f' }, model: { text_encoder: { vocab: null, path: null } } });
    expect(() => vocabFile(cfg)).to.throw(/model\.text_encoder\.vocab .* or model\.text_encoder\.path/);
  });

  it('tokenizerFromConfig reads the vocabulary the config names', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-factory-'));
    try {
      const vocab = path.join(dir, 'vocab.txt');
      fs.writeFileSync(vocab, ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'lung'].join('\n') + '\n');
      expect(
        tokenizerFromConfig(parseConfig({ experiment: { name: 'f' }, model: { text_encoder: { vocab } } })).vocabSize,
      ).to.equal(6);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('resolveClassNames: data.class_names, else the index, else CONFIG_ERROR naming the index', () => {
    const named = parseConfig({ experiment: { name: 'f' }, data: { class_names: ['a', 'b'], labels_valid: null } });
    expect(resolveClassNames(named, null)).to.deep.equal(['a', 'b']);
    const bare = parseConfig({ experiment: { name: 'f' }, data: { class_names: null, labels_valid: null } });
    expect(resolveClassNames(bare, { classNames: ['x'] } as unknown as ShardIndex)).to.deep.equal(['x']);
    expect(() => resolveClassNames(bare, null)).to.throw(/index the shards with --labels-csv/);
    expect(() => resolveClassNames(bare, null, 'validation shards')).to.throw(
      /index the validation shards with --labels-csv/,
    );
  });
});
