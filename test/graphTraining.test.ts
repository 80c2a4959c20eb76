import { describe, expect, it } from 'vitest';

import {
  GraphError,
  TrainingSession,
  UNCERTAINTY_PARAMETER,
  binaryCrossEntropyWithLogits,
  buildTrainingStep,
  decodeModel,
  mse,
  type Graph,
  type ParameterSpec,
  type Value,
} from '#lib/domain/graph/index.ts';
import { seededRandom } from './helpers/random.ts';

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
}

function heInit(random: () => number, fanIn: number, size: number): Float32Array {
  const scale = Math.sqrt(2 / fanIn);
  return Float32Array.from({ length: size }, () => gaussian(random) * scale);
}

/** A shared-bottom MLP: features → hidden (relu) → one output column per task. */
function mlpParameters(random: () => number, inputs: number, hidden: number, tasks: number): ParameterSpec[] {
  return [
    { name: 'W1', shape: [inputs, hidden], init: heInit(random, inputs, inputs * hidden) },
    { name: 'b1', shape: [hidden], init: new Float32Array(hidden), weightDecay: 0 },
    { name: 'W2', shape: [hidden, tasks], init: heInit(random, hidden, hidden * tasks) },
    { name: 'b2', shape: [tasks], init: new Float32Array(tasks), weightDecay: 0 },
  ];
}

function mlp(g: Graph, p: Readonly<Record<string, Value>>, x: Value): Value {
  const h = g.relu(g.add(g.matmul(x, p.W1, { name: 'bottom.0' }), p.b1));
  return g.add(g.matmul(h, p.W2, { name: 'towers' }), p.b2);
}

describe('training-step graph', () => {
  it('trains a 2-layer MLP on a regression task and a binary task with partial labels', async () => {
    const random = seededRandom(7);
    const features = 8;
    const rows = 256;
    const x = new Float32Array(rows * features);
    const yReg = new Float32Array(rows);
    const yBin = new Float32Array(rows);
    const maskReg = new Float32Array(rows);
    const maskBin = new Float32Array(rows);
    for (let r = 0; r < rows; r += 1) {
      for (let f = 0; f < features; f += 1) x[r * features + f] = gaussian(random);
      const row = x.subarray(r * features, (r + 1) * features);
      yReg[r] = Math.sin(row[0]) + 0.5 * row[1] * row[2];
      yBin[r] = row[3] + row[4] * row[4] - 1 > 0 ? 1 : 0;
      // A third of the rows lack each label; their placeholders are NaN on purpose.
      maskReg[r] = r % 3 === 0 ? 0 : 1;
      maskBin[r] = r % 3 === 1 ? 0 : 1;
      if (maskReg[r] === 0) yReg[r] = Number.NaN;
      if (maskBin[r] === 0) yBin[r] = Number.NaN;
    }
    const step = buildTrainingStep({
      parameters: mlpParameters(random, features, 32, 2),
      batch: {
        x: { dtype: 'float32', shape: ['batch', features] },
        yReg: { dtype: 'float32', shape: ['batch'] },
        yBin: { dtype: 'float32', shape: ['batch'] },
        maskReg: { dtype: 'float32', shape: ['batch'] },
        maskBin: { dtype: 'float32', shape: ['batch'] },
      },
      tasks: ['reg', 'bin'],
      forward: (g, p, b) => {
        const out = mlp(g, p, b.x);
        const [reg, bin] = g.split(out, { axis: 1, sizes: [1, 1] }).map((v) => g.squeeze(v, { axes: [1] }));
        return {
          losses: [mse(g, reg, b.yReg, b.maskReg), binaryCrossEntropyWithLogits(g, bin, b.yBin, b.maskBin)],
          outputs: { prediction: out },
        };
      },
      optimizer: { weightDecay: 1e-4 },
    });
    const session = await TrainingSession.create(step, { intraOpNumThreads: 1 });
    const batch = {
      x: { data: x, dims: [rows, features] },
      yReg: { data: yReg, dims: [rows] },
      yBin: { data: yBin, dims: [rows] },
      maskReg: { data: maskReg, dims: [rows] },
      maskBin: { data: maskBin, dims: [rows] },
    };

    const first = await session.step(batch, { lambda: [1, 1], learningRate: 0.01 });
    const before = session.parameterTensors();
    let last = first;
    for (let i = 0; i < 300; i += 1) last = await session.step(batch, { lambda: [1, 1], learningRate: 0.01 });
    const after = session.parameterTensors();
    await session.release();

    expect(Number.isFinite(first.loss)).toBe(true);
    expect(last.losses[0]).toBeLessThan(first.losses[0] * 0.1);
    expect(last.losses[1]).toBeLessThan(0.25);
    expect(first.losses[1]).toBeGreaterThan(0.4);
    expect(last.outputs.prediction.dims).toEqual([rows, 2]);
    expect(session.steps).toBe(301);
    expect(after.W1.data).not.toEqual(before.W1.data);
    expect(after.W1.dims).toEqual([features, 32]);
  });

  it.each([
    { name: 'the optimizer eps', optimizerEps: 1e-3, parameterEps: undefined, rateScale: undefined },
    { name: "the parameter's own eps over the optimizer's", optimizerEps: 1e-8, parameterEps: 0.5, rateScale: undefined },
    { name: "the parameter's own learning-rate scale on its step (not on its decay)", optimizerEps: 1e-8, parameterEps: 0.5, rateScale: 7 },
  ])('applies AdamW exactly as a hand computation in float64, with $name', async ({ optimizerEps, parameterEps, rateScale }) => {
    const opt = { beta1: 0.8, beta2: 0.95, eps: optimizerEps, weightDecay: 0.1 };
    const eps = parameterEps ?? optimizerEps;
    const scale = rateScale ?? 1;
    const init = [0.5, -1.5];
    const step = buildTrainingStep({
      parameters: [
        {
          name: 'w',
          shape: [2],
          init: Float32Array.from(init),
          ...(parameterEps === undefined ? {} : { eps: parameterEps }),
          ...(rateScale === undefined ? {} : { learningRateScale: rateScale }),
        },
      ],
      batch: { x: { dtype: 'float32', shape: [2] } },
      // loss = λ·Σ w·x, so the gradient is exactly λ·x.
      forward: (g, p, b) => ({ losses: [g.reduceSum(g.mul(p.w, b.x))] }),
      optimizer: opt,
    });
    const session = await TrainingSession.create(step);
    const xs = [
      [0.3, -2],
      [-1, 0.25],
      [4, 1],
    ];
    const lambda = 2;
    const lr = 0.05;

    for (const x of xs) await session.step({ x: { data: Float32Array.from(x), dims: [2] } }, { lambda: [lambda], learningRate: lr });
    const state = session.state();
    await session.release();

    const w = [...init];
    const m = [0, 0];
    const v = [0, 0];
    xs.forEach((x, t) => {
      for (let i = 0; i < 2; i += 1) {
        const grad = lambda * x[i];
        m[i] = opt.beta1 * m[i] + (1 - opt.beta1) * grad;
        v[i] = opt.beta2 * v[i] + (1 - opt.beta2) * grad * grad;
        const mHat = m[i] / (1 - opt.beta1 ** (t + 1));
        const vHat = v[i] / (1 - opt.beta2 ** (t + 1));
        w[i] = w[i] * (1 - lr * opt.weightDecay) - (scale * lr * mHat) / (Math.sqrt(vHat) + eps);
      }
    });
    for (let i = 0; i < 2; i += 1) {
      expect(Math.abs(state.parameters.w[i] - w[i])).toBeLessThan(1e-6);
      expect(Math.abs(state.firstMoments.w[i] - m[i])).toBeLessThan(1e-6);
      expect(Math.abs(state.secondMoments.w[i] - v[i])).toBeLessThan(1e-6);
    }
    expect(state.step).toBe(3);
  });

  it('refuses a NaN step and keeps the last good state', async () => {
    const step = buildTrainingStep({
      parameters: [{ name: 'w', shape: [1], init: new Float32Array([1]) }],
      batch: { x: { dtype: 'float32', shape: [1] } },
      forward: (g, p, b) => ({ losses: [g.reduceSum(g.mul(p.w, b.x))] }),
    });
    const session = await TrainingSession.create(step);
    await session.step({ x: { data: new Float32Array([1]), dims: [1] } }, { lambda: [1], learningRate: 0.1 });
    const before = session.state();

    const attempt = session.step({ x: { data: new Float32Array([Number.NaN]), dims: [1] } }, { lambda: [1], learningRate: 0.1 });

    await expect(attempt).rejects.toThrow(/step 2 produced loss NaN.*kept at step 1/);
    expect(session.state()).toEqual(before);
    await session.release();
  });

  it('learns task log-variances under uncertainty weighting', async () => {
    const step = buildTrainingStep({
      parameters: [{ name: 'w', shape: [1], init: new Float32Array([3]) }],
      batch: { target: { dtype: 'float32', shape: [1] } },
      // Task a has a large irreducible loss, task b a small one: their variances should diverge.
      forward: (g, p, b) => ({
        losses: [g.add(g.reduceSum(g.square(g.sub(p.w, b.target))), 4), g.add(g.reduceSum(g.square(p.w)), 0.01)],
      }),
      taskWeighting: 'uncertainty',
    });
    const session = await TrainingSession.create(step);

    for (let i = 0; i < 200; i += 1) await session.step({ target: { data: new Float32Array([0]), dims: [1] } }, { lambda: [1, 1], learningRate: 0.05 });
    const logVariance = session.parameters()[UNCERTAINTY_PARAMETER];
    await session.release();

    expect(step.parameters.map((p) => p.name)).toContain(UNCERTAINTY_PARAMETER);
    expect(logVariance[0]).toBeGreaterThan(logVariance[1] + 1);
  });

  it('names inputs and outputs systematically', () => {
    const step = buildTrainingStep({
      parameters: [{ name: 'w', shape: [2], init: new Float32Array(2) }],
      batch: { x: { dtype: 'float32', shape: ['batch', 2] } },
      forward: (g, p, b) => ({ losses: [g.reduceMean(g.matmul(b.x, g.unsqueeze(p.w, { axes: [1] })))] }),
    });

    const graph = decodeModel(step.model).graph;

    expect(graph?.input?.map((i) => i.name).sort()).toEqual(['batch.x', 'lambda', 'lr', 'm.w', 'p.w', 'step', 'v.w']);
    expect(graph?.output?.map((o) => o.name).sort()).toEqual(['gradNorm', 'loss', 'losses', 'm.w.next', 'p.w.next', 'v.w.next']);
  });

  it.each([
    ['a loss count that differs from the tasks', { tasks: ['a', 'b'] }, /returned 1 losses for 2 tasks/],
    ['a non-scalar loss', { vectorLoss: true }, /must be a float32 scalar/],
    ['an out-of-range beta', { optimizer: { beta1: 1 } }, /optimizer.beta1 = 1 must be in \[0, 1\)/],
    ['init values that do not fill the shape', { badInit: true }, /init has 3 values but shape \[2\] holds 2/],
    ['a learning-rate scale of 0', { rateScale: 0 }, /parameter "w": learningRateScale 0 must be a finite number > 0/],
  ])('rejects %s', (_name, variant, message) => {
    const v = variant as { tasks?: string[]; vectorLoss?: boolean; optimizer?: { beta1: number }; badInit?: boolean; rateScale?: number };
    const build = () =>
      buildTrainingStep({
        parameters: [
          {
            name: 'w',
            shape: [2],
            init: new Float32Array(v.badInit === true ? 3 : 2),
            ...(v.rateScale === undefined ? {} : { learningRateScale: v.rateScale }),
          },
        ],
        batch: {},
        tasks: v.tasks,
        optimizer: v.optimizer,
        forward: (g, p) => ({ losses: [v.vectorLoss === true ? g.mul(p.w, 2) : g.reduceSum(p.w)] }),
      });

    expect(build).toThrow(GraphError);
    expect(build).toThrow(message);
  });

  it('rejects a step with the wrong number of task weights or a missing batch input', async () => {
    const step = buildTrainingStep({
      parameters: [{ name: 'w', shape: [1], init: new Float32Array([1]) }],
      batch: { x: { dtype: 'float32', shape: [1] } },
      forward: (g, p, b) => ({ losses: [g.reduceSum(g.mul(p.w, b.x))] }),
    });
    const session = await TrainingSession.create(step);

    await expect(session.step({ x: { data: new Float32Array([1]), dims: [1] } }, { lambda: [1, 1], learningRate: 0.1 })).rejects.toThrow(
      /lambda has 2 weights for 1 tasks/,
    );
    await expect(session.step({}, { lambda: [1], learningRate: 0.1 })).rejects.toThrow(/batch input "x" float32\[1\] is missing/);
    await expect(session.step({ x: { data: new Float32Array([1, 2]), dims: [2] } }, { lambda: [1], learningRate: 0.1 })).rejects.toThrow(
      /"x" is float32\[2\] but the step graph expects float32\[1\]/,
    );
    expect(session.steps).toBe(0);
    await session.release();
  });

  it('trains to the same parameters whether idle ORT threads spin or not (the option is speed only)', async () => {
    const random = seededRandom(11);
    const batchSize = 128;
    const step = buildTrainingStep({
      parameters: mlpParameters(random, 32, 16, 1),
      batch: {
        x: { dtype: 'float32', shape: ['batch', 32] },
        y: { dtype: 'float32', shape: ['batch', 1] },
        mask: { dtype: 'float32', shape: ['batch'] },
      },
      forward: (g, p, b) => ({ losses: [binaryCrossEntropyWithLogits(g, mlp(g, p, b.x), b.y, b.mask)] }),
    });
    const batch = {
      x: { data: Float32Array.from({ length: batchSize * 32 }, () => gaussian(random)), dims: [batchSize, 32] },
      y: { data: Float32Array.from({ length: batchSize }, () => (random() > 0.5 ? 1 : 0)), dims: [batchSize, 1] },
      mask: { data: new Float32Array(batchSize).fill(1), dims: [batchSize] },
    };

    const trained: Record<string, Float32Array>[] = [];
    for (const allowSpinning of [true, false]) {
      const session = await TrainingSession.create(step, { intraOpNumThreads: 2, allowSpinning });
      for (let i = 0; i < 10; i += 1) await session.step(batch, { lambda: [1], learningRate: 1e-2 });
      expect(session.steps).toBe(10);
      trained.push(Object.fromEntries(Object.entries(session.parameters()).map(([name, values]) => [name, Float32Array.from(values)])));
      await session.release();
    }

    expect(trained[1]).toEqual(trained[0]);
    expect(trained[0].W1).not.toEqual(step.parameters.find((p) => p.name === 'W1')?.init);
  });
});
