import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';

import {
  Graph,
  binaryCrossEntropyWithLogits,
  differentiableOps,
  gradients,
  huber,
  mse,
  softmaxCrossEntropy,
  type DType,
  type Value,
} from '#lib/domain/graph/index.ts';
import { embedCategories, embeddingParameter } from '#lib/domain/train/index.ts';
import { seededRandom } from './helpers/random.ts';

/**
 * Every gradient rule against central finite differences. The analytic gradient runs in
 * float32; the finite differences run the same forward graph in float64 (h = 1e-6), so the
 * reference is accurate to ~1e-9 and the comparison measures the rule, not rounding.
 */

type Init = 'normal' | 'positive' | 'awayFromZero' | 'unit';

interface InputSpec {
  readonly shape: readonly (number | string)[];
  /** Concrete dims fed at run time when `shape` has symbolic dims. */
  readonly dims?: readonly number[];
  readonly init?: Init;
}

interface GradientCase {
  readonly name: string;
  readonly inputs: readonly InputSpec[];
  /** Default-domain opset of the graph (default 18). */
  readonly opset?: number;
  readonly build: (g: Graph, xs: Value[], dtype: DType) => Value;
}

function sample(random: () => number, init: Init): number {
  const u = random() * 2 - 1;
  switch (init) {
    case 'normal':
      return u * 1.5;
    case 'positive':
      return 0.5 + random() * 1.5;
    case 'awayFromZero':
      return Math.sign(u || 1) * (0.2 + Math.abs(u));
    case 'unit':
      return random();
  }
}

const int64 = (g: Graph, values: number[], shape?: number[]) => g.constant(BigInt64Array.from(values, BigInt), { dtype: 'int64', shape });
const bools = (g: Graph, values: boolean[], shape: number[]) => g.constant(values.map(Number), { dtype: 'bool', shape });

const CASES: GradientCase[] = [
  { name: 'Add broadcasts [2,3] + [3]', inputs: [{ shape: [2, 3] }, { shape: [3] }], build: (g, [a, b]) => g.add(a, b) },
  { name: 'Add broadcasts [2,1,3] + [4,1]', inputs: [{ shape: [2, 1, 3] }, { shape: [4, 1] }], build: (g, [a, b]) => g.add(a, b) },
  { name: 'Sub broadcasts [2,3] - [2,1]', inputs: [{ shape: [2, 3] }, { shape: [2, 1] }], build: (g, [a, b]) => g.sub(a, b) },
  { name: 'Mul broadcasts [3,1] * [1,4]', inputs: [{ shape: [3, 1] }, { shape: [1, 4] }], build: (g, [a, b]) => g.mul(a, b) },
  { name: 'Mul with itself (square)', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.square(a) },
  { name: 'Div broadcasts [2,3] / [3]', inputs: [{ shape: [2, 3] }, { shape: [3], init: 'positive' }], build: (g, [a, b]) => g.div(a, b) },
  { name: 'Pow of base and exponent', inputs: [{ shape: [2, 3], init: 'positive' }, { shape: [3] }], build: (g, [a, b]) => g.pow(a, b) },
  { name: 'Pow by a constant', inputs: [{ shape: [4], init: 'positive' }], build: (g, [a]) => g.pow(a, 3) },
  { name: 'Max broadcasts [2,3] vs [3]', inputs: [{ shape: [2, 3] }, { shape: [3] }], build: (g, [a, b]) => g.max(a, b) },
  { name: 'Min broadcasts [2,3] vs [2,1]', inputs: [{ shape: [2, 3] }, { shape: [2, 1] }], build: (g, [a, b]) => g.min(a, b) },
  { name: 'Sum of three broadcast operands', inputs: [{ shape: [2, 3] }, { shape: [3] }, { shape: [2, 1] }], build: (g, xs) => g.sum(xs) },
  { name: 'Neg', inputs: [{ shape: [5] }], build: (g, [a]) => g.neg(a) },
  { name: 'Exp', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.exp(a) },
  { name: 'Log', inputs: [{ shape: [2, 3], init: 'positive' }], build: (g, [a]) => g.log(a) },
  { name: 'Sqrt', inputs: [{ shape: [2, 3], init: 'positive' }], build: (g, [a]) => g.sqrt(a) },
  { name: 'Abs away from the kink', inputs: [{ shape: [2, 3], init: 'awayFromZero' }], build: (g, [a]) => g.abs(a) },
  { name: 'Relu away from the kink', inputs: [{ shape: [2, 4], init: 'awayFromZero' }], build: (g, [a]) => g.relu(a) },
  { name: 'Tanh', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.tanh(a) },
  { name: 'Sigmoid', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.sigmoid(a) },
  { name: 'Gelu (tanh form)', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.gelu(a) },
  { name: 'Cast round trip', inputs: [{ shape: [3] }], build: (g, [a], dtype) => g.cast(g.cast(a, 'float64'), dtype) },
  {
    name: 'Dropout with a fixed mask',
    inputs: [{ shape: [2, 4] }],
    build: (g, [a], dtype) => g.dropout(a, g.constant([1, 0, 1, 1, 0, 1, 1, 0], { dtype, shape: [2, 4] }), 0.375),
  },
  { name: 'Identity', inputs: [{ shape: [3] }], build: (g, [a]) => g.mul(g.identity(a), a) },
  { name: 'MatMul [2,3] @ [3,4]', inputs: [{ shape: [2, 3] }, { shape: [3, 4] }], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'MatMul batched [2,2,3] @ [3,4]', inputs: [{ shape: [2, 2, 3] }, { shape: [3, 4] }], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'MatMul with a symbolic batch', inputs: [{ shape: ['batch', 3], dims: [4, 3] }, { shape: [3, 2] }], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'Gemm with bias', inputs: [{ shape: [2, 3] }, { shape: [3, 4] }, { shape: [4] }], build: (g, [a, b, c]) => g.gemm(a, b, c) },
  {
    name: 'Gemm transA transB alpha beta',
    inputs: [{ shape: [3, 2] }, { shape: [4, 3] }, { shape: [2, 1] }],
    build: (g, [a, b, c]) => g.gemm(a, b, c, { transA: true, transB: true, alpha: 0.7, beta: 1.3 }),
  },
  { name: 'Gemm transB only', inputs: [{ shape: [2, 3] }, { shape: [4, 3] }], build: (g, [a, b]) => g.gemm(a, b, undefined, { transB: true }) },
  { name: 'Gemm transA only', inputs: [{ shape: [3, 2] }, { shape: [3, 4] }], build: (g, [a, b]) => g.gemm(a, b, undefined, { transA: true, alpha: 2 }) },
  { name: 'Softmax over the last axis', inputs: [{ shape: [2, 4] }], build: (g, [a]) => g.softmax(a) },
  { name: 'Softmax over axis 0', inputs: [{ shape: [3, 2] }], build: (g, [a]) => g.softmax(a, { axis: 0 }) },
  { name: 'LogSoftmax', inputs: [{ shape: [2, 4] }], build: (g, [a]) => g.logSoftmax(a, { axis: 1 }) },
  { name: 'ReduceSum without keepdims', inputs: [{ shape: [2, 3, 2] }], build: (g, [a]) => g.reduceSum(a, { axes: [1] }) },
  { name: 'ReduceSum with keepdims', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.reduceSum(a, { axes: [0], keepdims: true }) },
  { name: 'ReduceMean over two axes', inputs: [{ shape: [2, 3, 2] }], build: (g, [a]) => g.reduceMean(a, { axes: [0, 2] }) },
  {
    name: 'ReduceMean at opset 17 (axes as an attribute)',
    opset: 17,
    inputs: [{ shape: [2, 3] }],
    build: (g, [a]) => g.reduceMean(a, { axes: [1], keepdims: true }),
  },
  { name: 'ReduceMean over a symbolic batch', inputs: [{ shape: ['batch', 3], dims: [5, 3] }], build: (g, [a]) => g.reduceMean(a, { axes: [0] }) },
  { name: 'Transpose', inputs: [{ shape: [2, 3, 4] }], build: (g, [a]) => g.transpose(a, { perm: [2, 0, 1] }) },
  { name: 'Concat along axis 1', inputs: [{ shape: [2, 1] }, { shape: [2, 3] }], build: (g, [a, b]) => g.concat([a, b], { axis: 1 }) },
  {
    name: 'Split using one part only',
    inputs: [{ shape: [2, 5] }],
    build: (g, [a]) => g.split(a, { axis: 1, sizes: [2, 3] })[1],
  },
  {
    name: 'Split using both parts',
    inputs: [{ shape: [4, 2] }],
    build: (g, [a]) => {
      const [top, bottom] = g.split(a, { axis: 0, sizes: [1, 3] });
      return g.mul(top, bottom);
    },
  },
  { name: 'Gather rows with repeats', inputs: [{ shape: [3, 2] }], build: (g, [a]) => g.gather(a, int64(g, [2, 0, 2])) },
  {
    name: 'Gather along axis 1 by a matrix of indices',
    inputs: [{ shape: [2, 3, 2] }],
    build: (g, [a]) => g.gather(a, int64(g, [0, 2, 1, 1], [2, 2]), { axis: 1 }),
  },
  {
    // Row 0 repeats index 1 and ends in a padded slot (index 0, value 0); row 1 is padded twice.
    name: 'EmbeddingBag over padded sparse rows (Gather, then MatMul by the values)',
    inputs: [{ shape: [5, 3] }, { shape: [2, 4] }],
    build: (g, [w, v], dtype) => {
      const padding = g.constant([1, 1, 1, 0, 1, 1, 0, 0], { dtype, shape: [2, 4] });
      return g.embeddingBag(w, int64(g, [1, 4, 1, 0, 3, 2, 0, 0], [2, 4]), g.mul(v, padding));
    },
  },
  {
    // Three rows cut into five pieces of length 2 (row 0: pieces 0–1, row 1: piece 2, row 2: pieces
    // 3–4, padded); index 1 repeats across rows and pieces.
    name: 'EmbeddingBag over rows cut into pieces (Gather, MatMul by the values, MatMul by the assignment)',
    inputs: [{ shape: [5, 3] }, { shape: [5, 2] }],
    build: (g, [w, v], dtype) => {
      const padding = g.constant([1, 1, 1, 1, 1, 0, 1, 1, 1, 0], { dtype, shape: [5, 2] });
      const assignment = g.constant([1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1], { dtype, shape: [3, 5] });
      return g.embeddingBag(w, int64(g, [1, 4, 2, 1, 3, 0, 1, 0, 4, 0], [5, 2]), g.mul(v, padding), { assignment });
    },
  },
  {
    // The heads' category-embedding input: level indices (data, not differentiated) select table
    // rows; index 9 lies past the table and −1 before it (clamped), and two rows share a level.
    name: 'Category embeddings: plain features gathered, table rows looked up by index features (Gather, Concat)',
    inputs: [{ shape: [4, 3] }, { shape: [3, 2] }, { shape: [3, 2] }],
    build: (g, [first, second, plain], dtype) => {
      const features = g.concat([g.constant([2, 0, 2], { dtype, shape: [3, 1] }), plain, g.constant([1, 9, -1], { dtype, shape: [3, 1] })], { axis: 1 });
      return embedCategories(g, features, {
        categoryEmbeddings: [
          { column: 'city', feature: 0, levels: 4, dimension: 3 },
          { column: 'shop', feature: 3, levels: 3, dimension: 2 },
        ],
        parameters: { [embeddingParameter('city')]: first, [embeddingParameter('shop')]: second },
      });
    },
  },
  {
    name: 'Where with a broadcast mask',
    inputs: [{ shape: [2, 3] }, { shape: [3] }],
    build: (g, [a, b]) => g.where(bools(g, [true, false, true], [3]), a, b),
  },
  { name: 'Reshape', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.mul(g.reshape(a, [3, 2]), g.scalarLike(a, 2)) },
  { name: 'Reshape with a symbolic batch', inputs: [{ shape: ['batch', 4], dims: [3, 4] }], build: (g, [a]) => g.softmax(g.reshape(a, ['batch', 2, 2])) },
  { name: 'Unsqueeze then broadcast', inputs: [{ shape: [3] }, { shape: [2, 3] }], build: (g, [a, b]) => g.mul(g.unsqueeze(a, { axes: [0] }), b) },
  { name: 'Squeeze', inputs: [{ shape: [3, 1] }], build: (g, [a]) => g.exp(g.squeeze(a, { axes: [1] })) },
  { name: 'Expand [2,1] to [2,3]', inputs: [{ shape: [2, 1] }], build: (g, [a]) => g.expand(a, [2, 3]) },
  {
    name: 'binaryCrossEntropyWithLogits with a mask',
    inputs: [{ shape: [4, 1] }],
    build: (g, [x], dtype) => binaryCrossEntropyWithLogits(g, x, g.constant([1, 0, 1, 0], { dtype, shape: [4, 1] }), g.constant([1, 1, 0, 1], { dtype })),
  },
  {
    name: 'softmaxCrossEntropy from class indices',
    inputs: [{ shape: [3, 4] }],
    build: (g, [x], dtype) => softmaxCrossEntropy(g, x, int64(g, [2, 0, -1]), g.constant([1, 1, 0], { dtype })),
  },
  {
    name: 'softmaxCrossEntropy from soft targets',
    inputs: [{ shape: [2, 3] }],
    build: (g, [x], dtype) => softmaxCrossEntropy(g, x, g.constant([0.2, 0.3, 0.5, 1, 0, 0], { dtype, shape: [2, 3] }), g.constant([1, 1], { dtype })),
  },
  {
    name: 'mse with a mask',
    inputs: [{ shape: [3] }],
    build: (g, [x], dtype) => mse(g, x, g.constant([0.5, -1, 2], { dtype }), g.constant([1, 0, 1], { dtype })),
  },
  {
    name: 'huber across both branches',
    inputs: [{ shape: [4] }],
    build: (g, [x], dtype) => huber(g, x, g.constant([3, -3, 0.1, 0], { dtype }), g.constant([1, 1, 1, 1], { dtype }), { delta: 1 }),
  },
];

interface Prepared {
  readonly dims: number[][];
  readonly data: Float64Array[];
  readonly weights: Float64Array;
}

function concreteDims(spec: InputSpec): number[] {
  return [...(spec.dims ?? spec.shape.map((d) => d as number))];
}

function outputShapeOf(c: GradientCase, dtype: DType): readonly (number | string)[] {
  const g = new Graph({ opset: c.opset });
  const xs = c.inputs.map((s, i) => g.input(`x${i}`, dtype, s.shape));
  return c.build(g, xs, dtype).shape;
}

/** loss = Σ out ⊙ R with fixed random R (fed as input `r`), so every output element carries a distinct weight. */
function weightedLoss(g: Graph, out: Value): Value {
  return g.reduceSum(g.mul(out, g.input('r', out.dtype, out.shape)));
}

function prepare(c: GradientCase, seed: number): Prepared {
  const random = seededRandom(seed);
  const dims = c.inputs.map(concreteDims);
  const data = c.inputs.map((spec, i) => Float64Array.from({ length: dims[i].reduce((p, d) => p * d, 1) }, () => sample(random, spec.init ?? 'normal')));
  // Output dims: symbolic dims take the value fed for the same name.
  const named = new Map<string, number>();
  c.inputs.forEach((spec, i) => spec.shape.forEach((d, k) => typeof d === 'string' && named.set(d, dims[i][k])));
  const outShape = outputShapeOf(c, 'float64').map((d) => (typeof d === 'number' ? d : (named.get(d) ?? Number.NaN)));
  const outSize = outShape.reduce((p, d) => p * d, 1);
  const weights = Float64Array.from({ length: outSize }, () => random() * 2 - 1);
  return { dims: [...dims, outShape], data, weights };
}

async function analyticGradients(c: GradientCase, p: Prepared): Promise<Float32Array[]> {
  const g = new Graph({ opset: c.opset });
  const xs = c.inputs.map((s, i) => g.input(`x${i}`, 'float32', s.shape));
  const out = c.build(g, xs, 'float32');
  const loss = weightedLoss(g, out);
  gradients(g, loss, xs).forEach((grad, i) => g.output(grad, `grad${i}`));
  const session = await ort.InferenceSession.create(g.toModel({ name: c.name }), { intraOpNumThreads: 1 });
  const feeds = Object.fromEntries(c.inputs.map((_, i) => [`x${i}`, new ort.Tensor('float32', Float32Array.from(p.data[i]), p.dims[i])]));
  feeds.r = new ort.Tensor('float32', Float32Array.from(p.weights), p.dims[c.inputs.length]);
  const result = await session.run(feeds);
  await session.release();
  return c.inputs.map((_, i) => result[`grad${i}`].data as Float32Array);
}

async function numericGradients(c: GradientCase, p: Prepared): Promise<Float64Array[]> {
  const g = new Graph({ opset: c.opset });
  const xs = c.inputs.map((s, i) => g.input(`x${i}`, 'float64', s.shape));
  const out = c.build(g, xs, 'float64');
  g.output(weightedLoss(g, out), 'loss');
  const session = await ort.InferenceSession.create(g.toModel({ name: c.name }), { intraOpNumThreads: 1 });
  const data = p.data.map((d) => Float64Array.from(d));
  const feeds = Object.fromEntries(c.inputs.map((_, i) => [`x${i}`, new ort.Tensor('float64', data[i], p.dims[i])]));
  feeds.r = new ort.Tensor('float64', p.weights, p.dims[c.inputs.length]);
  const lossAt = async (): Promise<number> => Number((await session.run(feeds)).loss.data[0]);
  const h = 1e-6;
  const grads: Float64Array[] = [];
  for (const x of data) {
    const grad = new Float64Array(x.length);
    for (let k = 0; k < x.length; k += 1) {
      const original = x[k];
      x[k] = original + h;
      const up = await lossAt();
      x[k] = original - h;
      const down = await lossAt();
      x[k] = original;
      grad[k] = (up - down) / (2 * h);
    }
    grads.push(grad);
  }
  await session.release();
  return grads;
}

function relativeError(analytic: ArrayLike<number>, numeric: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < numeric.length; i += 1) {
    diff = Math.max(diff, Math.abs(analytic[i] - numeric[i]));
    scale = Math.max(scale, Math.abs(numeric[i]));
  }
  return diff / Math.max(scale, 1e-6);
}

describe('gradient rules match central finite differences', () => {
  it.each(CASES.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    const prepared = prepare(c, 1000 + i);

    const analytic = await analyticGradients(c, prepared);
    const numeric = await numericGradients(c, prepared);

    analytic.forEach((grad, k) => {
      expect(grad.length).toBe(numeric[k].length);
      expect(relativeError(grad, numeric[k]), `input ${k}: analytic ${Array.from(grad)} vs numeric ${Array.from(numeric[k])}`).toBeLessThanOrEqual(1e-3);
    });
  });

  it('has a finite-difference case for every rule', () => {
    const covered = new Set<string>();
    for (const c of CASES) {
      const g = new Graph({ opset: c.opset });
      const xs = c.inputs.map((s, i) => g.input(`x${i}`, 'float32', s.shape));
      c.build(g, xs, 'float32');
      for (const node of g.nodes) covered.add(node.opType);
    }

    const missing = differentiableOps().filter((op) => !covered.has(op));

    expect(missing).toEqual([]);
  });
});
