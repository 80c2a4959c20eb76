import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';

import { AgentflowError } from '#lib/domain/errors/index.ts';
import {
  Graph,
  GraphError,
  IR_VERSION,
  attr,
  bakeInitializers,
  binaryCrossEntropyWithLogits,
  broadcastShapes,
  decodeModel,
  gradients,
  mse,
  modelMetadata,
  type Value,
} from '#lib/domain/graph/index.ts';

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const result = (await session.run(feeds)) as Record<string, ort.Tensor>;
  await session.release();
  return result;
}

const f32 = (values: number[], dims: number[]) => new ort.Tensor('float32', Float32Array.from(values), dims);

describe('broadcastShapes', () => {
  it.each([
    [[2, 3], [3], [2, 3]],
    [
      [2, 1, 3],
      [4, 1],
      [2, 4, 3],
    ],
    [
      ['batch', 1],
      [1, 5],
      ['batch', 5],
    ],
    [
      ['batch', 384],
      ['batch', 384],
      ['batch', 384],
    ],
    [[], [2, 2], [2, 2]],
  ])('broadcasts %j with %j to %j', (a, b, expected) => {
    expect(broadcastShapes(a, b)).toEqual({ shape: expected });
  });

  it.each([
    [[2, 3], [4]],
    [
      ['batch', 3],
      [4, 3],
    ],
    [['batch'], ['rows']],
  ])('refuses %j with %j', (a, b) => {
    expect(broadcastShapes(a, b)).toHaveProperty('reason');
  });
});

describe('Graph shape and dtype checks', () => {
  it('names the node, both shapes and the fix when matmul inner dims differ', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 384]);
    const w = g.input('w', 'float32', [256, 1]);

    const build = () => g.matmul(x, w, { name: 'bottom.0' });

    expect(build).toThrow(GraphError);
    expect(build).toThrow('matmul "bottom.0": inner dims 384 and 256 differ (a [batch,384], b [256,1])');
  });

  it.each<[string, (g: Graph, x: Value) => unknown, RegExp]>([
    ['adding shapes that do not broadcast', (g, x) => g.add(x, g.input('y', 'float32', [4])), /add "Add_1": shapes \[batch,3\] and \[4\] do not broadcast/],
    ['mixing dtypes', (g, x) => g.mul(x, g.input('y', 'float64', [3])), /mul "Mul_1": dtypes differ: x float32\[batch,3\] vs y float64\[3\]; g.cast/],
    ['a softmax axis out of range', (g, x) => g.softmax(x, { axis: 2 }), /softmax "Softmax_1": axis 2 is out of range for \[batch,3\]/],
    ['split sizes that do not add up', (g, x) => g.split(x, { axis: 1, sizes: [1, 1] }), /split "Split_1": sizes \[1,1\] sum to 2 but axis 1/],
    ['reshaping to a different element count', (g) => g.reshape(g.input('y', 'float32', [2, 3]), [4, 2]), /cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/],
    ['a bool-less where condition', (g, x) => g.where(x, x, x), /where "Where_1": condition x float32\[batch,3\] must be bool/],
    ['log of an int tensor', (g) => g.log(g.input('i', 'int64', [2])), /log "Log_1": input i int64\[2\] must be float32 or float64/],
    [
      'concat inputs that disagree off-axis',
      (g, x) => g.concat([x, g.input('y', 'float32', ['batch', 3, 1])], { axis: 1 }),
      /concat "Concat_1": input \[batch,3,1\] does not match/,
    ],
    ['squeezing a dim that is not 1', (g, x) => g.squeeze(x, { axes: [1] }), /axis 1 of \[batch,3\] is 3, not 1/],
    ['a value from another graph', (g, x) => g.add(x, new Graph().input('z', 'float32', [3])), /belongs to another graph/],
    ['a duplicate input name', (g) => g.input('x', 'float32', [1]), /input "x": the name is already used/],
  ])('rejects %s at build time', (_name, build, message) => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 3]);

    let error: unknown;
    try {
      build(g, x);
    } catch (e) {
      error = e;
    }

    expect(error).toBeInstanceOf(GraphError);
    expect(error).toBeInstanceOf(AgentflowError);
    expect((error as GraphError).message).toMatch(message);
    expect((error as GraphError).name).toBe('GraphError');
  });

  it('infers shapes through the ops the heads use', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 384]);
    const w = g.input('w', 'float32', [384, 256]);

    const h = g.relu(g.add(g.matmul(x, w), g.input('b', 'float32', [256])));
    const heads = g.reshape(h, ['batch', 4, 64]);
    const gate = g.softmax(g.reduceMean(heads, { axes: [2] }), { axis: -1 });
    const [left, right] = g.split(h, { axis: 1, sizes: [56, 200] });
    const picked = g.gather(g.transpose(h), g.constant([0, 5, 9], { dtype: 'int64' }));

    expect(h.shape).toEqual(['batch', 256]);
    expect(heads.shape).toEqual(['batch', 4, 64]);
    expect(gate.shape).toEqual(['batch', 4]);
    expect([left.shape, right.shape]).toEqual([
      ['batch', 56],
      ['batch', 200],
    ]);
    expect(picked.shape).toEqual([3, 'batch']);
    expect(g.concat([left, right], { axis: 1 }).shape).toEqual(['batch', 256]);
    expect(g.unsqueeze(x, { axes: [1] }).shape).toEqual(['batch', 1, 384]);
    expect(g.reshape(heads, [-1, 64]).shape).toEqual(['(batch*4)', 64]);
    expect(g.reshape(heads, [-1, 256]).shape).toEqual(['batch', 256]);
  });
});

describe('Graph serialization', () => {
  it('writes a model ORT runs, with metadata, opset imports and the IR version', async () => {
    const g = new Graph({ name: 'demo' });
    const x = g.input('x', 'float32', ['batch', 2]);
    const w = g.initializer('w', { data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [2, 3] });
    g.output(g.softmax(g.matmul(x, w)), 'probabilities');
    g.output(g.reduceSum(x, { axes: [1], keepdims: true }), 'rowSum');

    const model = g.toModel({ name: 'demo', metadata: { tasks: '["a"]', version: '3' } });
    const result = await run(model, { x: f32([1, 0, 0, 1], [2, 2]) });
    const proto = decodeModel(model);

    const p = result.probabilities.data as Float32Array;
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    expect(p[0]).toBeCloseTo(e[0] / (e[0] + e[1] + e[2]), 6);
    expect(Array.from(result.rowSum.data as Float32Array)).toEqual([1, 1]);
    expect(result.rowSum.dims).toEqual([2, 1]);
    expect(modelMetadata(model)).toEqual({ tasks: '["a"]', version: '3' });
    expect(Number(proto.irVersion)).toBe(IR_VERSION);
    expect(proto.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 18]]);
    expect(proto.graph?.input?.[0].type?.tensorType?.shape?.dim?.[0].dimParam).toBe('batch');
  });

  it('declares extra domains for ops without a typed method', () => {
    const g = new Graph();
    const text = g.input('text', 'string', ['batch']);
    const [tokens] = g.op('Tokenizer', [text], {
      domain: 'com.microsoft',
      attributes: { mark: attr.int(0), mincharnum: attr.int(1), pad_value: attr.string('#'), separators: attr.strings([' ']) },
      outputs: [{ dtype: 'string', shape: ['batch', 'tokens'] }],
    });
    g.output(tokens, 'tokens');
    g.useDomain('ai.onnx.ml');

    const proto = decodeModel(g.toModel({ name: 'text' }));

    expect(proto.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([
      ['', 18],
      ['com.microsoft', 1],
      ['ai.onnx.ml', 3],
    ]);
    expect(proto.graph?.node?.[0].domain).toBe('com.microsoft');
  });

  it('writes ReduceMean axes as an attribute below opset 18 and refuses opsets it cannot write', async () => {
    const g = new Graph({ opset: 17 });
    const x = g.input('x', 'float32', [2, 2]);
    g.output(g.reduceMean(x, { axes: [1] }), 'mean');

    const model = g.toModel({ name: 'opset17' });
    const result = await run(model, { x: f32([1, 3, 5, 9], [2, 2]) });

    expect(Array.from(result.mean.data as Float32Array)).toEqual([2, 7]);
    expect(decodeModel(model).opsetImport.map((o) => Number(o.version))).toEqual([17]);
    expect(() => new Graph({ opset: 12 })).toThrow(/opset 12 is not supported; use 13 to 18/);
  });

  it('renames an output through Identity and refuses a taken output name', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const y = g.exp(x);

    const named = g.output(y, 'score');

    expect(named.name).toBe('score');
    expect(() => g.output(y, 'x')).toThrow(/output "x": the name is already used/);
    expect(() => new Graph().toModel({ name: 'empty' })).toThrow(/has no outputs/);
  });

  it('bakes trained weights into initializers so the model needs only the features', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 2]);
    const w = g.input('w', 'float32', [2, 1]);
    const b = g.input('b', 'float32', [1]);
    g.output(g.add(g.matmul(x, w), b), 'y');
    const model = g.toModel({ name: 'linear' });

    const baked = bakeInitializers(model, { w: Float32Array.from([2, -1]), b: Float32Array.from([0.5]) });
    const result = await run(baked, { x: f32([1, 1, 3, 0], [2, 2]) });

    expect(Array.from(result.y.data as Float32Array)).toEqual([1.5, 6.5]);
    expect(decodeModel(baked).graph?.input?.map((i) => i.name)).toEqual(['x']);
  });

  it.each([
    ['an unknown input', { nope: new Float32Array(2) }, /"nope" is not a graph input; inputs are "x", "w"/],
    ['a wrong element count', { w: new Float32Array(3) }, /"w" has shape \[2,1\] \(2 values\) but 3 values were given/],
    ['a wrong dtype', { w: new Float64Array(2) }, /"w" is float32 but the data is float64/],
    ['a symbolic input', { x: new Float32Array(2) }, /"x" has symbolic dim "batch"/],
  ])('refuses to bake %s', (_name, tensors, message) => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 2]);
    g.output(g.matmul(x, g.input('w', 'float32', [2, 1])), 'y');

    expect(() => bakeInitializers(g.toModel({ name: 'm' }), tensors)).toThrow(message);
  });
});

describe('Graph.embeddingBag', () => {
  it('gives what a dense MatMul gives, padded slots adding nothing', async () => {
    const g = new Graph();
    const weight = g.input('w', 'float32', [4, 2]);
    g.output(g.embeddingBag(weight, g.input('idx', 'int64', ['batch', 'nnz']), g.input('val', 'float32', ['batch', 'nnz'])), 'y');
    const w = [1, 2, 3, 4, 5, 6, 7, 8];
    // Row 0: 0.5·w[1] + 2·w[3]; row 1: 1·w[2], then two padded slots (index 0, value 0).
    const idx = new ort.Tensor('int64', BigInt64Array.from([1n, 3n, 0n, 2n, 0n, 0n]), [2, 3]);
    const sparse = await run(g.toModel({ name: 'bag' }), { w: f32(w, [4, 2]), idx, val: f32([0.5, 2, 0, 1, 0, 0], [2, 3]) });

    const dense = new Graph();
    dense.output(dense.matmul(dense.input('x', 'float32', ['batch', 4]), dense.input('w', 'float32', [4, 2])), 'y');
    const expected = await run(dense.toModel({ name: 'dense' }), { w: f32(w, [4, 2]), x: f32([0, 0.5, 0, 2, 0, 0, 1, 0], [2, 4]) });

    expect(Array.from(sparse.y.data as Float32Array)).toEqual(Array.from(expected.y.data as Float32Array));
    expect(Array.from(sparse.y.data as Float32Array)).toEqual([15.5, 18, 5, 6]);
  });

  it('refuses indices that are not [batch, nnz], naming the fix', () => {
    const g = new Graph();
    const w = g.input('w', 'float32', [4, 2]);

    expect(() => g.embeddingBag(w, g.input('idx', 'int64', ['batch']), g.input('val', 'float32', ['batch']))).toThrow(/must both be \[batch, nnz\]; pad rows/);
  });
});

describe('Graph.inlineModel', () => {
  /** A frozen "base model": ai.onnx.ml Scaler, then a fixed projection to a 2-d embedding. */
  function baseModel(options: { opset?: number } = {}): Uint8Array {
    const g = new Graph({ name: 'base', opset: options.opset });
    const raw = g.input('raw', 'float32', ['batch', 3]);
    const [scaled] = g.op('Scaler', [raw], {
      domain: 'ai.onnx.ml',
      attributes: { offset: attr.floats([1, 0, 0]), scale: attr.floats([2, 1, 0.5]) },
      outputs: [{ dtype: 'float32', shape: ['batch', 3] }],
    });
    const projection = g.initializer('projection', { data: Float32Array.from([1, 0, 0, 1, 1, 1]), shape: [3, 2] });
    g.output(g.matmul(scaled, projection), 'embedding');
    return g.toModel({ name: 'base' });
  }

  it('puts a base model and a head into one model that runs from raw input to the task output', async () => {
    const g = new Graph();
    const features = g.input('features', 'float32', ['batch', 3]);
    const { embedding } = g.inlineModel(baseModel(), { inputs: { raw: features }, prefix: 'base' });
    const head = g.initializer('head', { data: Float32Array.from([0.5, -1]), shape: [2, 1] });
    g.output(g.matmul(embedding, head), 'score');

    const model = g.toModel({ name: 'exported' });
    const result = await run(model, { features: f32([2, 3, 4], [1, 3]) });

    // Scaler: (x - offset) * scale = [2, 3, 2]; projection: [2 + 2, 3 + 2] = [4, 5]; head: 2 - 5.
    expect(embedding.shape).toEqual(['batch', 2]);
    expect(Array.from(result.score.data as Float32Array)).toEqual([-3]);
    expect(
      decodeModel(model)
        .opsetImport.map((o) => o.domain)
        .sort(),
    ).toEqual(['', 'ai.onnx.ml']);
    expect(
      decodeModel(model)
        .graph?.initializer?.map((t) => t.name)
        .sort(),
    ).toEqual(['base/projection', 'head']);
  });

  it('lets gradients reach the head but never flow into the frozen base model', () => {
    const g = new Graph();
    const features = g.input('features', 'float32', ['batch', 3]);
    const { embedding } = g.inlineModel(baseModel(), { inputs: { raw: features }, prefix: 'base' });
    const head = g.input('head', 'float32', [2, 1]);
    const loss = g.reduceSum(g.matmul(embedding, head));

    expect(gradients(g, loss, [head])[0].shape).toEqual([2, 1]);
    expect(() => gradients(g, loss, [features])).toThrow(/no gradient rule for agentflow.inline.InlinedModel \(node "base"\)/);
  });

  it.each([
    [
      'a different opset',
      { opset: 17 },
      { raw: true },
      /uses the default domain at opset 17 but this graph uses 18; build the graph with new Graph\(\{ opset: 17 \}\)/,
    ],
    ['an unconnected input', {}, {}, /model input "raw" is not connected/],
    ['an input that is not the model', {}, { raw: true, extra: true }, /"extra" is not an input of the model/],
  ])('refuses %s', (_name, base, inputs, message) => {
    const g = new Graph();
    const features = g.input('features', 'float32', ['batch', 3]);
    const given = Object.fromEntries(Object.keys(inputs).map((k) => [k, features]));

    expect(() => g.inlineModel(baseModel(base), { inputs: given, prefix: 'base' })).toThrow(message);
  });
});

describe('gradients', () => {
  it('sums the gradients of a value used on several paths', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    // y = Σ (x·x + 3x + exp(x)) → dy/dx = 2x + 3 + exp(x)
    const y = g.reduceSum(g.add(g.add(g.mul(x, x), g.mul(x, 3)), g.exp(x)));
    const [dx] = gradients(g, y, [x]);
    g.output(dx, 'dx');

    const result = await run(g.toModel({ name: 'fanout' }), { x: f32([0, 1, -2], [3]) });

    const expected = [0, 1, -2].map((v) => 2 * v + 3 + Math.exp(v));
    Array.from(result.dx.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
  });

  it('treats stopGradient as a constant', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const y = g.reduceSum(g.mul(x, g.stopGradient(x)));
    const [dx] = gradients(g, y, [x]);
    g.output(dx, 'dx');

    const result = await run(g.toModel({ name: 'stop' }), { x: f32([2, -3], [2]) });

    expect(Array.from(result.dx.data as Float32Array)).toEqual([2, -3]);
  });

  it('names the op and node when a rule is missing', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3]);
    const y = g.reduceSum(g.reduceMax(x, { axes: [1], name: 'pool' }));

    expect(() => gradients(g, y, [x])).toThrow(/no gradient rule for ReduceMax \(node "pool"\)/);
  });

  it('refuses a parameter the loss does not depend on unless allowUnused', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const unused = g.input('u', 'float32', [3]);
    const y = g.reduceSum(g.square(x));

    expect(() => gradients(g, y, [x, unused])).toThrow(/does not depend on u float32\[3\]; remove it from wrt or pass allowUnused/);
    const [, du] = gradients(g, y, [x, unused], { allowUnused: true });
    g.output(du, 'du');
    const result = await run(g.toModel({ name: 'unused' }), { x: f32([1, 2], [2]), u: f32([1, 2, 3], [3]) });
    expect(Array.from(result.du.data as Float32Array)).toEqual([0, 0, 0]);
  });

  it('refuses a loss with more than one element', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);

    expect(() => gradients(g, g.exp(x), [x])).toThrow(/must hold exactly one element/);
  });
});

describe('masked losses', () => {
  it('average over labelled rows only and ignore NaN placeholders in unlabelled ones', async () => {
    const g = new Graph();
    const logits = g.input('logits', 'float32', ['batch', 1]);
    const labels = g.input('labels', 'float32', ['batch', 1]);
    const mask = g.input('mask', 'float32', ['batch']);
    g.output(binaryCrossEntropyWithLogits(g, logits, labels, mask), 'bce');
    g.output(mse(g, logits, labels, mask), 'mse');

    const result = await run(g.toModel({ name: 'losses' }), {
      logits: f32([2, -1, 30], [3, 1]),
      labels: f32([1, 0, Number.NaN], [3, 1]),
      mask: f32([1, 1, 0], [3]),
    });

    const bce = (x: number, y: number) => Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
    expect(result.bce.data[0]).toBeCloseTo((bce(2, 1) + bce(-1, 0)) / 2, 6);
    expect(result.mse.data[0]).toBeCloseTo((1 + 1) / 2, 6);
  });

  it('give 0 rather than NaN for a batch without labels', async () => {
    const g = new Graph();
    const pred = g.input('pred', 'float32', ['batch']);
    g.output(mse(g, pred, g.input('y', 'float32', ['batch']), g.input('mask', 'float32', ['batch'])), 'loss');

    const result = await run(g.toModel({ name: 'empty' }), { pred: f32([1, 2], [2]), y: f32([0, 0], [2]), mask: f32([0, 0], [2]) });

    expect(result.loss.data[0]).toBe(0);
  });

  it('refuse labels shaped [batch] against logits [batch,1] instead of broadcasting to [batch,batch]', () => {
    const g = new Graph();
    const logits = g.input('logits', 'float32', ['batch', 1]);

    expect(() => binaryCrossEntropyWithLogits(g, logits, g.input('y', 'float32', ['batch']), g.input('mask', 'float32', ['batch']))).toThrow(
      /labels \[batch\] do not match predictions \[batch,1\]/,
    );
  });
});
