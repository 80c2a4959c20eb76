/**
 * Tiny real serving models for the tests and the serving bench: a fitted features encoder merged
 * with small heads (a real ONNX file), published to the store and the registry as Export does, and
 * the Function URL event the serving handlers take.
 */
import type { CardServing, CardTask, ModelCard } from '#lib/domain/run/index.ts';
import { encoderDescriptor, fitFeaturesEncoder, mergeEncoderAndHeads, type FittedEncoder } from '#lib/domain/encoders/index.ts';
import { Graph, type Value } from '#lib/domain/graph/index.ts';
import type { ModelRegistry } from '#lib/adapters/registry/index.ts';
import { createRng } from '#lib/domain/random/index.ts';
import { keys, sha256Hex, type ArtifactStore } from '#lib/adapters/store/index.ts';

export interface FeaturesModelOptions {
  dimension: number;
  tasks: CardTask[];
  /** Width of one hidden ReLU layer; none when absent. */
  hidden?: number;
  seed?: number;
  /** Adds this to every binary logit, to tell versions apart by their outputs. */
  bias?: number;
  /** Another fitted encoder (e.g. tabular) in front of the heads instead of the features one; `dimension` must be its dimension. */
  encoder?: FittedEncoder;
}

/** A merged export model: the fitted features encoder in front of small heads, one output per task as `modelOutputName` says. */
export function buildFeaturesModel(options: FeaturesModelOptions): { model: Uint8Array; encoder: ModelCard['encoder'] } {
  const rng = createRng(options.seed ?? 1);
  const weights = (n: number, scale: number) => Float32Array.from({ length: n }, () => rng.normal() * scale);
  const encoder = options.encoder ?? fitFeaturesEncoder({ kind: 'features', field: 'features', dimension: options.dimension });
  const g = new Graph({ name: 'heads' });
  let x: Value = g.input('features', 'float32', ['batch', options.dimension]);
  let width = options.dimension;
  if (options.hidden) {
    const w = g.initializer('hidden.w', { data: weights(width * options.hidden, 1 / Math.sqrt(width)), shape: [width, options.hidden] });
    x = g.relu(g.matmul(x, w));
    width = options.hidden;
  }
  for (const task of options.tasks) {
    const outputs = task.type === 'multiclass' ? (task.classes ?? []).length : 1;
    const w = g.initializer(`${task.name}.w`, { data: weights(width * outputs, 1 / Math.sqrt(width)), shape: [width, outputs] });
    const b = g.initializer(`${task.name}.b`, {
      data: Float32Array.from({ length: outputs }, () => (task.type === 'binary' ? (options.bias ?? 0) : 0)),
      shape: [outputs],
    });
    const logits = g.add(g.matmul(x, w), b);
    if (task.type === 'binary') g.output(g.squeeze(g.sigmoid(logits), { axes: [1] }), `${task.name}.probability`);
    if (task.type === 'multiclass') g.output(g.softmax(logits, { axis: -1 }), `${task.name}.probabilities`);
    if (task.type === 'regression') g.output(g.squeeze(logits, { axes: [1] }), `${task.name}.value`);
  }
  const heads = g.toModel({ name: 'heads', metadata: { 'agentflow.tasks': JSON.stringify(options.tasks.map((t) => t.name)) } });
  const model = mergeEncoderAndHeads(encoder.model, heads, { featureInput: 'features' });
  return { model, encoder: encoderDescriptor(encoder.model) };
}

export interface PublishOptions {
  registry: ModelRegistry;
  store: ArtifactStore;
  project: string;
  runId: string;
  model: Uint8Array;
  encoder: ModelCard['encoder'];
  tasks: CardTask[];
  holdoutObjective?: number;
  featuresDigest?: string;
  serving?: CardServing;
}

/** Uploads `model.onnx` and `card.json` under `models/<project>/<version>/` and registers the version, as Export does. */
export async function publishModel(options: PublishOptions): Promise<{ version: number; card: ModelCard }> {
  const { registry, store, project, runId, model } = options;
  const version = await registry.reserveVersion(project, { runId });
  const stored = await store.putBytes(keys.model(project, version), model);
  const card: ModelCard = {
    cardVersion: 1,
    project,
    version,
    runId,
    createdAt: new Date().toISOString(),
    tasks: options.tasks,
    encoder: options.encoder,
    architecture: 'shared-bottom',
    lambda: Object.fromEntries(options.tasks.map((t) => [t.name, 1])),
    metrics: { validation: {}, holdout: {} },
    holdoutObjective: options.holdoutObjective ?? 0.8,
    lineage: { specDigest: 'spec', datasetDigest: 'data', baseModelDigest: 'base', featuresDigest: options.featuresDigest ?? 'features', bestTrialId: 't0' },
    model: { uri: stored.uri, sha256: stored.sha256, sizeBytes: stored.sizeBytes, quantized: false },
    latencyMs: { single: 0, batch64: 0 },
    ...(options.serving ? { serving: options.serving } : {}),
  };
  const cardStored = await store.putJson(keys.modelCard(project, version), card);
  await registry.createVersion(project, {
    runId,
    specDigest: 'spec',
    datasetDigest: 'data',
    baseModelDigest: 'base',
    lambda: card.lambda,
    metrics: {},
    artifactUri: stored.uri,
    sha256: sha256Hex(model),
    cardUri: cardStored.uri,
  });
  return { version, card };
}

/** A Function URL event as the Lambda runtime delivers it. */
export function urlEvent(body: unknown, options: { method?: string; raw?: boolean } = {}) {
  return {
    version: '2.0',
    rawPath: '/',
    headers: { 'content-type': 'application/json' },
    requestContext: { http: { method: options.method ?? 'POST' } },
    body: options.raw ? (body as string) : JSON.stringify(body),
    isBase64Encoded: false,
  };
}
