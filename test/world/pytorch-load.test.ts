/**
 * The README's PyTorch snippet ("model.safetensors loads into the reference PyTorch CTCLIP"), run verbatim by the
 * real torch + safetensors on weights ctclip wrote (`saveModel`, what a checkpoint's model.safetensors holds), for
 * a softmax and a SigLIP model of fixture C's sizes. The reference model class itself is not available here, so
 * `model` is a torch module with exactly the reference's state_dict: the keys, shapes, dtypes and
 * parameter/buffer kinds the original CTCLIP reported (fixture C's meta.json). `load_state_dict` is strict, so
 * this checks the key-set equality the snippet relies on, and that the SigLIP `logit_bias` is what the snippet
 * has to drop.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { saveModel } from '../../lib/api';
import { CTClip } from '../../lib/model/ctclip';
import type { CTClipNativeConfig } from '../../lib/model/config';
import { fixturesAvailable, repoRoot } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import { requirePython, runPython } from '../helpers/python';
import { caseCMeta, tmpDir } from '../helpers/weights-fixtures';

/** The README's path in the snippet, replaced by the file under test. */
const README_PATH = 'runs/ct-rate-base/ckpt-step00003687/model.safetensors';

/** The python block that follows the README's "loads into the reference PyTorch `CTCLIP`" sentence. */
function readmeSnippet(): string {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const at = readme.indexOf('loads into the reference PyTorch `CTCLIP`');
  expect(at, 'README: the PyTorch load sentence').to.be.greaterThan(0);
  const m = /```python\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(m, 'README: the python block after it').to.not.equal(null);
  expect(m![1]).to.include(README_PATH);
  return m![1];
}

/**
 * argv: keys.json (the reference state_dict), weights file, snippet file. Builds the module, runs the snippet
 * with `model` bound, and prints what loaded; the plain `load_state_dict(load_file(f))` error, too.
 */
const RUN_SNIPPET = `
import json, sys, torch
from safetensors.torch import load_file
keys, weights, snippet = json.load(open(sys.argv[1])), sys.argv[2], open(sys.argv[3]).read()
DT = {'float32': torch.float32, 'int64': torch.int64}
model = torch.nn.Module()
for k in keys:
    *parents, leaf = k['key'].split('.')
    m = model
    for p in parents:
        if p not in m._modules:
            m.add_module(p, torch.nn.Module())
        m = m._modules[p]
    t = torch.full(k['shape'], 7, dtype=DT[k['dtype']])
    if k['kind'] == 'param':
        m.register_parameter(leaf, torch.nn.Parameter(t, requires_grad=t.is_floating_point()))
    else:
        m.register_buffer(leaf, t)
try:
    model.load_state_dict(load_file(weights))
    plain = None
except RuntimeError as e:
    plain = str(e)
exec(snippet.replace(${JSON.stringify(JSON.stringify(README_PATH))}, repr(weights)), {'model': model})
ref = load_file(weights)
same = all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
print(json.dumps({'plain_error': plain, 'all_equal': same, 'loaded': len(model.state_dict()), 'file_keys': sorted(ref)}))
`;

describe('world: the README PyTorch snippet on ctclip-written weights', function () {
  this.timeout(300_000);
  let dir: string;
  before(function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    dir = tmpDir('pytorch-load');
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  for (const loss of ['softmax', 'siglip'] as const) {
    it(`${loss}: the snippet loads every tensor strictly into a module with the reference state_dict`, async function () {
      const py = requirePython(this, ['torch', 'safetensors']);
      const meta = caseCMeta() as unknown as {
        ctvit_config: CTClipNativeConfig['image'];
        bert_config: Record<string, number>;
        dim_latent: number;
        state_dict_keys: Array<{ key: string; shape: number[]; dtype: string; kind: string }>;
      };
      const { vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size } = meta.bert_config;
      const model = CTClip.create({
        image: meta.ctvit_config,
        text: {
          vocab_size,
          hidden_size,
          num_hidden_layers,
          num_attention_heads,
          intermediate_size,
          max_position_embeddings: meta.bert_config.max_position_embeddings,
        },
        dim_latent: meta.dim_latent,
        loss,
        seed: 5,
      } as CTClipNativeConfig);
      const weights = path.join(dir, `${loss}.safetensors`);
      await saveModel(model, weights);
      model.dispose();
      const keysFile = path.join(dir, 'keys.json');
      fs.writeFileSync(keysFile, JSON.stringify(meta.state_dict_keys));
      const snippetFile = path.join(dir, 'snippet.py');
      fs.writeFileSync(snippetFile, readmeSnippet());

      const r = JSON.parse(runPython(py, RUN_SNIPPET, [keysFile, weights, snippetFile])) as {
        plain_error: string | null;
        all_equal: boolean;
        loaded: number;
        file_keys: string[];
      };
      const reference = meta.state_dict_keys.map((k) => k.key);
      expect(r.loaded).to.equal(reference.length);
      expect(r.all_equal, 'every reference tensor holds the value ctclip wrote').to.equal(true);
      if (loss === 'softmax') {
        expect(r.file_keys).to.deep.equal([...reference].sort());
        expect(r.plain_error).to.equal(null);
      } else {
        // The only difference to the reference key set, and what the plain load_state_dict(load_file(f)) says.
        expect(r.file_keys).to.deep.equal([...reference, 'logit_bias'].sort());
        expect(r.plain_error).to.match(/Unexpected key\(s\) in state_dict: "logit_bias"/);
      }
    });
  }
});
