/**
 * Mapping torch's positional AdamW state onto parameter names (`mapOptimizerPositions`, lib/train/resume-torch.ts)
 * on hand-built checkpoints: the module order, the original's two weight-decay groups, buffers and tied tensors
 * left out of torch's parameter list, names recorded by the optimizer, and the refusals (counts or shapes that do
 * not fit). Pure TypeScript: no tensor is read.
 */
import { expect } from 'chai';
import { mapOptimizerPositions } from '../../lib/train/resume-torch';
import type { TorchParamGroup, TorchTrainingCheckpoint } from '../../lib/weights/torch-checkpoint';
import { TorchTensorRef, type TorchStorageRef } from '../../lib/weights/torch-file';

let storages = 0;
function ref(shape: number[], storage?: TorchStorageRef): TorchTensorRef {
  const numel = shape.reduce((a, b) => a * b, 1);
  const s = storage ?? {
    key: String(storages++),
    dtype: 'float32',
    storageType: 'torch.FloatStorage',
    location: 'cpu',
    numel,
  };
  const stride = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return new TorchTensorRef(s, 0, shape, stride, false, false);
}

function group(params: number[], paramNames: string[] | null = null): TorchParamGroup {
  return { params, paramNames, lr: 1e-3, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0 };
}

/** A checkpoint over `entries` (name, shape) whose optimizer has `groups` and state for `stateShapes` (index → shape). */
function checkpoint(
  entries: Array<[string, TorchTensorRef]>,
  groups: TorchParamGroup[],
  stateShapes: Record<number, number[]>,
): TorchTrainingCheckpoint {
  const state = new Map(
    Object.entries(stateShapes).map(([i, shape]) => [
      Number(i),
      { index: Number(i), step: 3, expAvg: ref(shape), expAvgSq: ref(shape) },
    ]),
  );
  return {
    file: 'x.pt',
    archive: null as never,
    globalStep: 3,
    epoch: 0,
    stateDict: entries,
    optimizer: { groups, state },
    scheduler: null,
    metrics: {},
    randomStates: [],
    topKeys: [],
  };
}

const KINDS = new Map<string, string>([
  ['a.weight', 'parameter'],
  ['a.bias', 'parameter'],
  ['norm.stat', 'buffer'],
  ['b.weight', 'parameter'],
  ['b.bias', 'parameter'],
  ['head.weight', 'inert'],
]);

function model(): Array<[string, TorchTensorRef]> {
  return [
    ['a.weight', ref([4, 3])],
    ['a.bias', ref([4])],
    ['norm.stat', ref([4])],
    ['b.weight', ref([2, 4])],
    ['b.bias', ref([2])],
    ['head.weight', ref([5, 2])],
  ];
}

/** Position → our name, for the positions that have saved state. */
function names(m: ReturnType<typeof mapOptimizerPositions>, c: TorchTrainingCheckpoint): Record<number, string | null> {
  if ('reason' in m) throw new Error(m.reason);
  return Object.fromEntries([...m.assignment].filter(([i]) => c.optimizer.state.has(i)).map(([i, s]) => [i, s.name]));
}

describe('resume from torch.save: AdamW positions → parameter names', () => {
  it('one group in module order (buffers are not parameters)', () => {
    const c = checkpoint(model(), [group([0, 1, 2, 3, 4])], { 0: [4, 3], 1: [4], 2: [2, 4], 3: [2] });
    const m = mapOptimizerPositions(c, KINDS, new Map());
    expect(names(m, c)).to.deep.equal({ 0: 'a.weight', 1: 'a.bias', 2: 'b.weight', 3: 'b.bias' });
    expect((m as { how: string }).how).to.include('in module order');
  });

  it("the original's two weight-decay groups: tensors with ndim >= 2, then the rest", () => {
    const c = checkpoint(model(), [group([0, 1, 2]), group([3, 4])], { 0: [4, 3], 1: [2, 4], 3: [4], 4: [2] });
    const m = mapOptimizerPositions(c, KINDS, new Map());
    expect(names(m, c)).to.deep.equal({ 0: 'a.weight', 1: 'b.weight', 3: 'a.bias', 4: 'b.bias' });
    expect((m as { how: string }).how).to.include('two weight-decay groups (ndim >= 2, then the rest)');
    // The inert head is position 2: in torch's list, with no state (no gradient), and not trained here.
    expect((m as { assignment: Map<number, { fileKey: string; trainable: boolean }> }).assignment.get(2)).to.include({
      fileKey: 'head.weight',
      trainable: false,
    });
  });

  it('a tied tensor (one storage under two names) is one parameter, listed under its first name', () => {
    const entries = model();
    entries.push(['decoder.weight', ref([4, 3], entries[0][1].storage)]);
    const c = checkpoint(entries, [group([0, 1, 2, 3, 4])], { 0: [4, 3], 4: [5, 2] });
    expect(names(mapOptimizerPositions(c, KINDS, new Map()), c)).to.deep.equal({ 0: 'a.weight', 4: 'head.weight' });
  });

  it('names the optimizer recorded win over positions, through the layout mapping', () => {
    const entries = model().map(([k, v]) => [k.replace(/^a\./, 'old.'), v] as [string, TorchTensorRef]);
    const renamed = new Map([
      ['old.weight', 'a.weight'],
      ['old.bias', 'a.bias'],
    ]);
    const c = checkpoint(entries, [group([0, 1], ['b.bias', 'old.weight'])], { 0: [2], 1: [4, 3] });
    const m = mapOptimizerPositions(c, KINDS, renamed);
    expect(names(m, c)).to.deep.equal({ 0: 'b.bias', 1: 'a.weight' });
    expect((m as { how: string }).how).to.equal('by the parameter names the optimizer recorded');
  });

  it('refuses when the counts differ or no order fits every moment, saying why', () => {
    const fewer = mapOptimizerPositions(checkpoint(model(), [group([0, 1, 2])], { 0: [4, 3] }), KINDS, new Map());
    expect((fewer as { reason: string }).reason).to.include(
      'the optimizer lists 3 parameters but the model_state_dict holds 5 parameter tensors',
    );
    // Reversed order, as from an optimizer over reversed(list(model.parameters())).
    const reversed = checkpoint(model(), [group([0, 1, 2, 3, 4])], { 1: [2], 2: [2, 4], 3: [4], 4: [4, 3] });
    const r = mapOptimizerPositions(reversed, KINDS, new Map());
    expect((r as { reason: string }).reason).to.match(
      /^no parameter order fits the saved moments \(in module order: optimizer parameter 1 has moments of shape \[2\] but 'a.bias' is \[4\]\)/,
    );
    expect((r as { reason: string }).reason).to.include('a Python set');
  });
});
