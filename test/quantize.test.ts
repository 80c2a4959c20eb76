import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeployError } from '#lib/pipeline/export/errors.ts';
import { decidePromotion, type GateScore } from '#lib/pipeline/promote/gate.ts';
import { evaluateOnSplit } from '#lib/pipeline/export/evaluate.ts';
import { quantizeWeights, quantizedWeights } from '#lib/pipeline/export/quantize.ts';
import { Graph, decodeModel, onnx } from '#lib/domain/graph/index.ts';
import { ModelCard, RunManifest } from '#lib/domain/run/index.ts';
import { openLocalSession, runPipelineLocally, type LocalSession } from '#lib/adapters/local/index.ts';
import { parseSpec } from '#lib/domain/spec/index.ts';
import { sha256Hex, keys } from '#lib/adapters/store/index.ts';
import { buildHeads, exportHeads, parityDifference, PARITY_TOLERANCE, type Predictions, type TrialWeights } from '#lib/domain/train/index.ts';

const INT8 = onnx.TensorProto.DataType.INT8;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const DIM = 24;

/** Heads with their seeded initial weights: a real exported heads file, no training needed. */
function headsFile(architecture: 'shared-bottom' | 'mmoe'): { model: Uint8Array; weights: TrialWeights; spec: ReturnType<typeof parseSpec> } {
  const spec = parseSpec({
    project: 'quantize',
    baseModel: { kind: 'features', dimension: DIM },
    datasets: { train: 'train.jsonl' },
    tasks: [
      { name: 'spam', type: 'binary' },
      { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c'] },
      { name: 'score', type: 'regression' },
    ],
    model: { architecture, hidden: [32], towerHidden: [16], experts: 2, expertHidden: 32 },
  });
  const heads = buildHeads({ architecture, model: spec.model, tasks: spec.tasks, inputDim: DIM, seed: 5 });
  const weights: TrialWeights = {
    architecture,
    inputDim: DIM,
    tensors: Object.fromEntries(heads.parameters.map((p) => [p.name, Float32Array.from(p.init)])),
    shapes: Object.fromEntries(heads.parameters.map((p) => [p.name, p.shape])),
  };
  return { model: exportHeads({ spec, encoder: { id: 'features', dimension: DIM }, weights }), weights, spec };
}

const rows = 64;
const features = Float32Array.from({ length: rows * DIM }, (_, i) => Math.sin(i * 1.37) * 2);

function initializer(model: Uint8Array, name: string) {
  const found = decodeModel(model).graph!.initializer!.find((t) => t.name === name);
  if (!found) throw new Error(`no initializer ${name}`);
  return found;
}
const int8Of = (t: ReturnType<typeof initializer>) => new Int8Array(Uint8Array.from(t.rawData!).buffer);
const floatOf = (t: ReturnType<typeof initializer>) => new Float32Array(Uint8Array.from(t.rawData!).buffer);

/** The weight matrix a quantized file's DequantizeLinear computes: q · scale along the channel axis. */
function dequantized(model: Uint8Array, name: string, shape: number[], axis: number): Float32Array {
  const q = int8Of(initializer(model, `${name}.int8`));
  const scales = floatOf(initializer(model, `${name}.scale`));
  return Float32Array.from(q, (v, i) => v * scales[axis === 0 ? Math.floor(i / shape[1]) : i % shape[1]]);
}

/** The heads' outputs in a fresh ONNX Runtime session at the given optimization level. */
async function predict(model: Uint8Array, level: 'basic' | 'all'): Promise<Predictions> {
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: level });
  try {
    const outputs = await session.run({ features: new ort.Tensor('float32', features, [rows, DIM]) });
    return Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, Float32Array.from(tensor.data as Float32Array)]));
  } finally {
    await session.release();
  }
}

function worstDifference(a: Predictions, b: Predictions): number {
  return Math.max(...Object.keys(a).map((name) => parityDifference(b[name], a[name])));
}

describe('quantizeWeights', () => {
  it.each(['shared-bottom', 'mmoe'] as const)('stores the %s heads weight matrices as int8 and runs in a fresh ONNX Runtime session', async (architecture) => {
    const { model, weights, spec } = headsFile(architecture);

    const quantized = quantizeWeights(model);

    // Every matrix of 256 values or more feeding a Gemm is int8; biases and small matrices stay float32.
    const expected = Object.entries(weights.shapes)
      .filter(([name, shape]) => name.endsWith('.weight') && shape[0] * shape[1] >= 256)
      .map(([name]) => name)
      .sort();
    const listed = quantizedWeights(quantized);
    expect(listed.map((w) => w.name).sort()).toEqual(expected);
    expect(expected.length).toBeGreaterThanOrEqual(4);
    const graph = decodeModel(quantized).graph!;
    for (const name of expected) {
      expect(initializer(quantized, `${name}.int8`).dataType).toBe(INT8);
      expect(graph.initializer!.some((t) => t.name === name)).toBe(false);
      expect(graph.node!.find((n) => n.output?.[0] === name)?.opType).toBe('DequantizeLinear');
    }
    for (const [name, shape] of Object.entries(weights.shapes)) {
      if (!expected.includes(name)) expect(initializer(quantized, name).dataType).toBe(FLOAT);
      if (name.endsWith('.bias')) expect(shape).toHaveLength(1);
    }
    // Each int8 value saves 3 bytes; scales, zero points and a node cost well under 1 byte a value at 256 values or more.
    const int8Values = expected.reduce((n, name) => n + weights.tensors[name].length, 0);
    expect(model.byteLength - quantized.byteLength).toBeGreaterThanOrEqual(2 * int8Values);

    // Rounding to the nearest step: every weight is within half a step of its channel's scale.
    for (const { name, shape, axis } of listed) {
      expect(axis).toBe(1);
      const original = weights.tensors[name];
      const scales = floatOf(initializer(quantized, `${name}.scale`));
      const restored = dequantized(quantized, name, shape, axis);
      for (let i = 0; i < original.length; i++) {
        expect(Math.abs(original[i] - restored[i])).toBeLessThanOrEqual(scales[i % shape[1]] / 2 + 1e-7);
      }
    }

    // As ONNX defines it (ORT at 'basic', no int8 kernels), the file computes exactly the dequantized
    // weights: the same heads with q·scale baked in as float agree to parity tolerance.
    const reference = exportHeads({
      spec,
      encoder: { id: 'features', dimension: DIM },
      weights: {
        ...weights,
        tensors: { ...weights.tensors, ...Object.fromEntries(listed.map((w) => [w.name, dequantized(quantized, w.name, w.shape, w.axis)])) },
      },
    });
    const [quantizedBasic, referenceOut] = await Promise.all([quantized, reference].map((bytes) => predict(bytes, 'basic')));
    expect(worstDifference(referenceOut, quantizedBasic)).toBeLessThanOrEqual(PARITY_TOLERANCE);
    // Served as ORT does by default ('all'), where it may also fuse DequantizeLinear→Gemm into an
    // int8 MatMulNBits that quantizes the activations too.
    const [floatOut, quantizedOut] = await Promise.all([model, quantized].map((bytes) => predict(bytes, 'all')));
    // Against the float model: each weight moves at most half a step, 1/254 of its column's largest
    // magnitude, so a pre-activation moves by well under 1% of its scale per layer; over three
    // layers and a sigmoid/softmax (slope ≤ 1/4) that is about 0.01 here (measured ~0.005), while a
    // wrongly scaled or transposed matrix moves outputs by tenths. Regression values are compared
    // relative to their size (parityDifference).
    const drift = worstDifference(floatOut, quantizedOut);
    expect(drift).toBeGreaterThan(0);
    expect(drift).toBeLessThanOrEqual(0.03);
  });

  it('scales a Gemm weight with transB per row, a MatMul weight per column, and leaves weights other nodes read as float', async () => {
    const g = new Graph({ name: 'layouts' });
    const x = g.input('x', 'float32', ['batch', 32]);
    const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.cos(i * seed) * (1 + (i % 7)));
    const weights = { w_t: values(16 * 32, 0.7), w: values(32 * 16, 1.3), shared: values(32 * 16, 2.1) };
    const shared = g.initializer('shared', { data: weights.shared, shape: [32, 16] });
    g.output(
      g.gemm(x, g.initializer('w_t', { data: weights.w_t, shape: [16, 32] }), g.initializer('b', { data: values(16, 0.3), shape: [16] }), { transB: true }),
      'gemm',
    );
    g.output(g.matmul(x, g.initializer('w', { data: weights.w, shape: [32, 16] })), 'matmul');
    g.output(g.matmul(x, shared), 'shared_matmul');
    g.output(g.relu(shared), 'shared_relu');
    const model = g.toModel({ name: 'layouts' });

    const quantized = quantizeWeights(model);

    expect(quantizedWeights(quantized)).toEqual([
      { name: 'w_t', shape: [16, 32], axis: 0 },
      { name: 'w', shape: [32, 16], axis: 1 },
    ]);
    expect(initializer(quantized, 'shared').dataType).toBe(FLOAT);
    expect(initializer(quantized, 'w_t.scale').dims!.map(Number)).toEqual([16]);
    const scales = { w_t: floatOf(initializer(quantized, 'w_t.scale')), w: floatOf(initializer(quantized, 'w.scale')) };
    const restored = dequantized(quantized, 'w_t', [16, 32], 0);
    weights.w_t.forEach((w, i) => expect(Math.abs(w - restored[i])).toBeLessThanOrEqual(scales.w_t[Math.floor(i / 32)] / 2 + 1e-6));

    const batch = 4;
    const input = features.subarray(0, batch * 32);
    const [float, int8] = await Promise.all(
      [model, quantized].map(async (bytes) => {
        // 'basic': the file's ONNX semantics, without ORT's optional int8 kernels (see the heads test).
        const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'basic' });
        try {
          const out = await session.run({ x: new ort.Tensor('float32', input, [batch, 32]) });
          return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, Float32Array.from(t.data as Float32Array)]));
        } finally {
          await session.release();
        }
      }),
    );
    // One layer, so the exact worst case holds: each weight is off by at most half its channel's
    // step, so output n of row r moves by at most Σ_k |x_rk| · scale_n / 2 (plus float32 rounding).
    for (const [output, scale] of [
      ['gemm', scales.w_t],
      ['matmul', scales.w],
    ] as const) {
      for (let r = 0; r < batch; r++) {
        const l1 = input.subarray(r * 32, (r + 1) * 32).reduce((sum, v) => sum + Math.abs(v), 0);
        for (let n = 0; n < 16; n++) {
          const [want, got] = [float[output][r * 16 + n], int8[output][r * 16 + n]];
          expect(Math.abs(got - want)).toBeLessThanOrEqual((l1 * scale[n]) / 2 + 1e-4 * Math.max(1, Math.abs(want)));
        }
      }
    }
    expect(int8.shared_matmul).toEqual(float.shared_matmul);
    expect(int8.gemm).not.toEqual(float.gemm);
  });

  it('refuses a model whose opset predates per-channel DequantizeLinear', () => {
    const g = new Graph({ name: 'old' });
    const x = g.input('x', 'float32', ['batch', 32]);
    g.output(g.matmul(x, g.initializer('w', { data: new Float32Array(32 * 32).fill(0.5), shape: [32, 32] })), 'y');
    // The builder writes opset 13 or later; an imported model may be older (MatMul is the same at 12).
    const proto = decodeModel(g.toModel({ name: 'old' }));
    proto.opsetImport = [onnx.OperatorSetIdProto.create({ domain: '', version: 12 })];
    const old = onnx.ModelProto.encode(proto).finish();

    expect(() => quantizeWeights(old)).toThrow(DeployError);
    expect(() => quantizeWeights(old)).toThrow(/opset 12.*opset 13/);
  });
});

describe('the promotion gate on a quantized candidate', () => {
  // The spec's default limit: deploy.maxQuantizationLoss 0.01.
  const policy = parseSpec({
    project: 'gate',
    baseModel: { kind: 'features', dimension: 4 },
    datasets: { train: 'train.jsonl' },
    tasks: [{ name: 'spam', type: 'binary' }],
    deploy: { policy: 'if-better', margin: 0.005, quantize: true },
  }).deploy;
  const champion = { objective: 0.7, violations: [], version: 1 };

  it.each([
    { case: 'a loss over the limit', quantizationLoss: 0.02, action: 'hold', reason: /quantization lost 0\.0200.*maxQuantizationLoss 0\.01/ },
    { case: 'a loss exactly at the limit', quantizationLoss: 0.01, action: 'promote', reason: /beats version 1/ },
    { case: 'a loss under the limit', quantizationLoss: 0.004, action: 'promote', reason: /beats version 1/ },
    { case: 'a gain from quantization', quantizationLoss: -0.003, action: 'promote', reason: /beats version 1/ },
    { case: 'a loss that is not a number', quantizationLoss: Number.NaN, action: 'hold', reason: /quantization lost NaN/ },
    { case: 'a float candidate', quantizationLoss: undefined, action: 'promote', reason: /beats version 1/ },
  ])('with $case the decision is $action', ({ quantizationLoss, action, reason }) => {
    const candidate: GateScore = { objective: 0.8, violations: [], ...(quantizationLoss === undefined ? {} : { quantizationLoss }) };

    const decision = decidePromotion(policy, candidate, champion);

    expect(decision.action).toBe(action);
    expect(decision.reason).toMatch(reason);
  });

  it('holds an over-limit quantized candidate even when nothing is in production or the policy is "always"', () => {
    const candidate: GateScore = { objective: 0.9, violations: [], quantizationLoss: 0.05 };

    expect(decidePromotion(policy, candidate).action).toBe('hold');
    expect(decidePromotion({ ...policy, policy: 'always' }, candidate, champion).action).toBe('hold');
  });
});

describe('Export with deploy.quantize on the penguins pipeline', () => {
  const EXAMPLE = resolve('examples/penguins');
  const PROJECT = 'penguins';
  let dir: string;
  let session: LocalSession;
  let runId: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agentflow-quantize-'));
    const spec = JSON.parse(await readFile(join(EXAMPLE, 'spec.json'), 'utf8'));
    spec.training = { ...spec.training, epochs: 8, earlyStoppingPatience: 3 };
    spec.tuning = { ...spec.tuning, generations: 2, population: 2, maxConcurrency: 2 };
    spec.tasks = spec.tasks.map((task: { name: string; floor?: number }) => (task.name === 'species' ? { ...task, floor: 0.3 } : task));
    spec.deploy = { ...spec.deploy, quantize: true };
    await copyFile(join(EXAMPLE, spec.datasets.train), join(dir, spec.datasets.train));
    const specPath = join(dir, 'spec.json');
    await writeFile(specPath, JSON.stringify(spec, null, 2));
    session = await openLocalSession({ dir: join(dir, 'aws') });
    const lines: string[] = [];
    const run = await runPipelineLocally(session, { specPath, onJobOutput: ({ jobName, line }) => lines.push(`[${jobName}] ${line}`) });
    if (run.result.status !== 'SUCCEEDED') throw new Error(`the pipeline run failed: ${run.result.error}: ${run.result.cause}\n${lines.slice(-20).join('\n')}`);
    runId = run.runId;
  }, 300_000);

  afterAll(async () => {
    await session?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves the int8 file as the version model, keeps the float file beside it, and reports size, latency and metric changes in the card', async () => {
    const { store, registry, runLog } = session.deps;
    const version = await registry.findVersionByRun(PROJECT, runId);
    expect(version?.lineage.quantized).toBe(true);
    const card = await store.getJson(version!.lineage.cardUri!, ModelCard);

    // The served file is the quantized one, registered under model.onnx with its sha256.
    expect(card.model.quantized).toBe(true);
    expect(card.model.uri).toBe(version!.lineage.artifactUri);
    expect(card.model.uri).toMatch(/\/model\.onnx$/);
    const served = await store.getBytes(card.model.uri);
    expect(sha256Hex(served)).toBe(card.model.sha256);
    expect(quantizedWeights(served).map((w) => w.name)).toEqual(card.quantization!.weights.map((w) => w.name));
    expect(card.quantization!.weights.length).toBeGreaterThan(0);
    expect(decodeModel(served).graph!.initializer!.some((t) => t.dataType === INT8)).toBe(true);

    // The float original sits beside it, unquantized.
    const q = card.quantization!;
    expect(q.float.uri).toBe(card.model.uri.replace(/model\.onnx$/, 'model-float.onnx'));
    const float = await store.getBytes(q.float.uri);
    expect(sha256Hex(float)).toBe(q.float.sha256);
    expect(quantizedWeights(float)).toEqual([]);
    expect(q.sizeBytes).toEqual({ float: float.byteLength, quantized: served.byteLength, ratio: served.byteLength / float.byteLength });
    expect(served.byteLength).toBeLessThan(float.byteLength);

    // The card's holdout metrics are the served file's; the changes are quantized − float on the same rows.
    const manifest = await store.getJson(store.uri(keys.runManifest(runId)), RunManifest);
    const [servedHoldout, floatHoldout] = await Promise.all([served, float].map((bytes) => evaluateOnSplit(bytes, { store, manifest, split: 'holdout' })));
    expect(servedHoldout.metrics).toEqual(card.metrics.holdout);
    expect(Object.keys(q.metricChange).sort()).toEqual(['body_mass_g', 'male', 'species']);
    for (const [task, metrics] of Object.entries(q.metricChange)) {
      expect(metrics[card.tasks.find((t) => t.name === task)!.metric]).toBeDefined();
      for (const [metric, change] of Object.entries(metrics))
        expect(change).toBeCloseTo(servedHoldout.metrics[task][metric] - floatHoldout.metrics[task][metric], 9);
    }
    expect(q.objectiveChange).toBeCloseTo(card.holdoutObjective - q.float.holdoutObjective, 12);
    expect(q.maxQuantizationLoss).toBe(0.01);
    expect(card.latencyMs).toEqual(q.latencyMs.quantized);
    for (const latency of [q.latencyMs.float, q.latencyMs.quantized]) {
      expect(latency.single).toBeGreaterThan(0);
      expect(latency.batch64).toBeGreaterThan(0);
    }

    // Promote judged the served int8 file on its loss against the float original as well.
    const promotion = (await runLog.listRunEvents(PROJECT, runId)).find((e) => e.eventKey === 'promotion');
    expect(promotion?.detail.quantizationLoss).toBeCloseTo(-q.objectiveChange, 12);

    const exported = (await runLog.listRunEvents(PROJECT, runId)).find((e) => e.eventKey === 'export');
    expect(exported?.detail).toMatchObject({ quantized: true, sizeBytes: served.byteLength, floatSizeBytes: float.byteLength });
  });
});
