import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { objectiveTasks, RunManifest } from '#lib/domain/run/index.ts';
import { encoderDescriptor, encoderFeeds, mergeEncoderAndHeads } from '#lib/domain/encoders/index.ts';
import { splitRows } from '#lib/pipeline/embed/index.ts';
import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import type { ModelRegistry, RunLog } from '#lib/adapters/registry/index.ts';
import { readShard, type SparseRow } from '#lib/domain/shards/index.ts';
import { keys, type ArtifactStore } from '#lib/adapters/store/index.ts';
import { checkParity, exportHeads, parityDifference, trainingForward, FEATURES_INPUT, PARITY_TOLERANCE, type FeatureRows } from '#lib/domain/train/index.ts';
import { loadTrialWeights } from '#lib/pipeline/trials/weights.ts';
import { shardUri } from '#lib/pipeline/trials/trialJob.ts';
import { rewardOf } from '#lib/domain/tune/index.ts';
import { TrialJobResult, type ExportInput, type ExportOutput } from '#lib/pipeline/contracts.ts';
import { ModelCard, cardServingOf, modelOutputName, type ModelQuantization } from '#lib/domain/run/index.ts';
import { DeployError } from './errors.ts';
import { writeLiveModel } from './liveModel.ts';
import { levelIndexFeatures } from '#lib/serve/drift.ts';
import { cardHyperparametersOf } from './hyperparameters.ts';
import { evaluateOnSplit, SERVING_SESSION_OPTIONS, type TaskMetrics } from './evaluate.ts';
import { DEFAULT_MIN_QUANTIZED_ELEMENTS, quantizeWeights, quantizedWeights } from './quantize.ts';

/** Rows used for the parity checks and the latency figures. */
const PARITY_ROWS = 64;

/**
 * The Export stage: the best trial's heads behind its encoder as one ONNX file (raw input →
 * every task's output), checked for parity twice (exported heads against the training-time
 * forward pass, then the merged file against encoder-then-heads), scored on the holdout, timed,
 * uploaded with its model card and registered as a candidate version. Retried, it finds the
 * version it registered and writes nothing twice.
 *
 * With `deploy.quantize`, the merged file's weight matrices are also stored as int8
 * (`quantizeWeights`); that file is scored and timed the same way and becomes the version's
 * `model.onnx`, with the float file kept beside it as `model-float.onnx` and the comparison in
 * the card. Promote holds it when it lost more objective than `deploy.maxQuantizationLoss`.
 */
export async function exportBestTrial(input: ExportInput, deps: { store: ArtifactStore; registry: ModelRegistry; runLog: RunLog }): Promise<ExportOutput> {
  const { store, registry, runLog } = deps;
  const manifest = await store.getJson(input.manifestUri, RunManifest);
  const { spec } = manifest;
  const result = await store.getJson(input.bestTrialResultUri, TrialJobResult);
  if (result.status !== 'succeeded') {
    throw new DeployError(`trial ${result.trialId} failed (${result.reason}); only a succeeded trial can be exported`, {
      code: 'TRIAL_NOT_SUCCEEDED',
      context: { trialId: result.trialId },
    });
  }
  const version = await registry.reserveVersion(input.project, { runId: input.runId });
  const modelKey = keys.model(input.project, version);
  const cardKey = keys.modelCard(input.project, version);
  const registered = await registry.findVersion(input.project, version);
  const cardBefore = registered ? await store.findJson(cardKey, ModelCard) : undefined;
  if (cardBefore) {
    return { modelUri: cardBefore.model.uri, cardUri: store.uri(cardKey), sha256: cardBefore.model.sha256, sizeBytes: cardBefore.model.sizeBytes };
  }

  const weights = await loadTrialWeights(store, result.weightsUri);
  // The trial names its encoder; results from before screening existed are matched by dimension.
  const encoder =
    (result.encoderId === undefined ? undefined : manifest.encoders.find((entry) => entry.id === result.encoderId)) ??
    manifest.encoders.find((entry) => entry.dimension === weights.inputDim) ??
    manifest.encoders[0];
  const heads = exportHeads({
    spec,
    encoder,
    weights,
    metadata: {
      metrics: result.metrics,
      lambda: result.proposal.lambda,
      digests: { spec: manifest.specDigest, features: manifest.featuresDigest, encoder: encoder.sha256 },
      version,
    },
  });
  const featuresUri = store.uri(keys.featuresPrefix(manifest.featuresDigest));
  const validation = await firstShardRows(store, shardUri(featuresUri, encoder.id, 'validation'), PARITY_ROWS, weights.inputDim);
  await checkParity(heads, await trainingForward({ spec, weights, batch: validation }), { batch: validation });

  const encoderBytes = await store.getBytes(encoder.uri);
  const model = mergeEncoderAndHeads(encoderBytes, heads, { featureInput: FEATURES_INPUT });
  const sample = await firstSplitRows(store, manifest, 'holdout', PARITY_ROWS);
  await checkMergedParity({ encoder: encoderBytes, heads, model, rows: sample, outputs: spec.tasks.map(modelOutputName) });

  const floatHoldout = await evaluateOnSplit(model, { store, manifest, split: 'holdout' });
  const floatObjective = rewardOf(floatHoldout.metrics, objectiveTasks(spec, floatHoldout.metrics)).reward;
  const floatLatencyMs = await measureLatency(model, sample);

  let served = { model, holdout: floatHoldout, objective: floatObjective, latencyMs: floatLatencyMs };
  let quantization: ModelQuantization | undefined;
  let quantizationSkipped: string | undefined;
  if (spec.deploy.quantize) {
    const quantized = quantizeWeights(model);
    const int8Weights = quantizedWeights(quantized);
    if (int8Weights.length === 0) {
      quantizationSkipped = `no float32 weight matrix of ${DEFAULT_MIN_QUANTIZED_ELEMENTS} values or more feeds a MatMul or Gemm (a TF-IDF or tabular encoder has none, and these heads are small); the float model is served`;
    } else {
      const holdout = await evaluateOnSplit(quantized, { store, manifest, split: 'holdout' });
      const objective = rewardOf(holdout.metrics, objectiveTasks(spec, holdout.metrics)).reward;
      const latencyMs = await measureLatency(quantized, sample);
      served = { model: quantized, holdout, objective, latencyMs };
      // The float original stays beside the served int8 file, so the card's comparison can be rerun.
      const floatStored = await store.putBytes(floatModelKey(modelKey), model, { contentType: 'application/octet-stream' });
      quantization = {
        scheme: 'int8 weight-only, symmetric per output channel (DequantizeLinear → MatMul/Gemm)',
        weights: int8Weights.map(({ name, shape }) => ({ name, shape })),
        float: { uri: floatStored.uri, sha256: floatStored.sha256, sizeBytes: floatStored.sizeBytes, holdoutObjective: floatObjective },
        sizeBytes: { float: model.byteLength, quantized: quantized.byteLength, ratio: quantized.byteLength / model.byteLength },
        latencyMs: { float: floatLatencyMs, quantized: latencyMs },
        metricChange: metricChange(floatHoldout.metrics, holdout.metrics),
        objectiveChange: objective - floatObjective,
        maxQuantizationLoss: spec.deploy.maxQuantizationLoss,
      };
    }
  }
  const { holdout, objective, latencyMs } = served;

  const stored = await store.putBytes(modelKey, served.model, { contentType: 'application/octet-stream' });
  // Before the card: a retry that finds the card finds these too. Monitoring reads them, never runs/.
  await writeLiveModel(store, {
    manifest,
    version,
    encoderId: encoder.id,
    dimension: encoder.dimension,
    excludedFeatures: levelIndexFeatures(encoder),
    holdoutShardUri: shardUri(featuresUri, encoder.id, 'holdout'),
  });
  const train = manifest.datasets.find((d) => d.role === 'train')!;
  const card: ModelCard = {
    cardVersion: 1,
    project: input.project,
    version,
    runId: input.runId,
    createdAt: new Date().toISOString(),
    tasks: spec.tasks.map((task) => ({
      name: task.name,
      type: task.type,
      ...(task.type === 'multiclass' ? { classes: task.classes } : {}),
      metric: task.metric,
    })),
    encoder: { ...encoderDescriptor(encoderBytes), ...(encoder.categoryEmbeddings?.length ? { categoryEmbeddings: encoder.categoryEmbeddings } : {}) },
    architecture: weights.architecture,
    lambda: result.proposal.lambda,
    ...(result.proposal.learningRate === undefined ? {} : { learningRate: result.proposal.learningRate }),
    hyperparameters: cardHyperparametersOf({ spec, proposal: result.proposal, encoder, architecture: weights.architecture }),
    metrics: { validation: result.metrics, holdout: holdout.metrics },
    holdoutObjective: objective,
    lineage: {
      specDigest: manifest.specDigest,
      datasetDigest: train.digest,
      baseModelDigest: encoder.sha256,
      featuresDigest: manifest.featuresDigest,
      bestTrialId: result.trialId,
    },
    model: { uri: stored.uri, sha256: stored.sha256, sizeBytes: stored.sizeBytes, quantized: quantization !== undefined },
    latencyMs,
    ...(quantization ? { quantization } : {}),
    ...(quantizationSkipped === undefined ? {} : { quantizationSkipped }),
    serving: cardServingOf(spec, encoder.summary),
  };
  const cardStored = await store.putJson(cardKey, card);
  await registry.createVersion(input.project, {
    runId: input.runId,
    specDigest: manifest.specDigest,
    datasetDigest: train.digest,
    baseModelDigest: encoder.sha256,
    lambda: result.proposal.lambda,
    metrics: holdout.metrics,
    artifactUri: stored.uri,
    sha256: stored.sha256,
    cardUri: cardStored.uri,
    quantized: quantization !== undefined,
  });
  await runLog.recordRunEvent(input.project, input.runId, 'export', {
    version,
    holdoutObjective: objective,
    sizeBytes: stored.sizeBytes,
    latencyMs,
    ...(quantization ? { quantized: true, floatSizeBytes: quantization.sizeBytes.float, objectiveChange: quantization.objectiveChange } : {}),
    ...(quantizationSkipped === undefined ? {} : { quantizationSkipped }),
  });
  await runLog.updateRunStatus(input.project, input.runId, 'running', { stage: 'Promote' });
  return { modelUri: stored.uri, cardUri: cardStored.uri, sha256: stored.sha256, sizeBytes: stored.sizeBytes };
}

/** The first rows of a shard as the trainer saw them: dense features, or the sparse rows of a sparse shard. */
async function firstShardRows(store: ArtifactStore, uri: string, rows: number, dim: number): Promise<FeatureRows> {
  // The rows × dim matrix only for a dense shard: a sparse one's dim is the vocabulary (20k by default).
  let features: Float32Array | undefined;
  const sparse: SparseRow[] = [];
  let filled = 0;
  for await (const batch of readShard(await store.getStream(uri))) {
    const take = Math.min(rows - filled, batch.rows);
    if (batch.sparse) sparse.push(...batch.sparse.slice(0, take));
    else (features ??= new Float32Array(rows * dim)).set(batch.features.subarray(0, take * dim), filled * dim);
    filled += take;
    if (filled === rows) break;
  }
  if (filled === 0) throw new DeployError(`${uri} holds no rows to check the export against`, { code: 'SPLIT_EMPTY', context: { uri } });
  return features === undefined ? { features: new Float32Array(0), rows: filled, sparse } : { features: features.subarray(0, filled * dim), rows: filled };
}

/** The first rows of a split, for the parity check and the latency figures. */
export async function firstSplitRows(store: ArtifactStore, manifest: RunManifest, split: 'validation' | 'holdout', limit: number): Promise<ValidatedRow[]> {
  const rows: ValidatedRow[] = [];
  for await (const routed of splitRows(store, manifest, split)) {
    rows.push(routed.row);
    if (rows.length === limit) return rows;
  }
  if (rows.length === 0) throw new DeployError(`the ${split} split has no rows to check the export on`, { code: 'SPLIT_EMPTY', context: { split } });
  return rows;
}

/** The merged file must answer exactly as the encoder followed by the heads does. */
async function checkMergedParity(options: {
  encoder: Uint8Array;
  heads: Uint8Array;
  model: Uint8Array;
  rows: ValidatedRow[];
  outputs: string[];
}): Promise<void> {
  const descriptor = encoderDescriptor(options.encoder);
  const feeds = encoderFeeds(descriptor, options.rows);
  const [encoder, heads, merged] = await Promise.all([options.encoder, options.heads, options.model].map((bytes) => ort.InferenceSession.create(bytes)));
  try {
    const embedding = (await encoder.run(feeds))[descriptor.output];
    const expected = await heads.run({ [FEATURES_INPUT]: embedding });
    const actual = await merged.run(feeds);
    for (const name of options.outputs) {
      const want = expected[name].data as Float32Array;
      const got = actual[name].data as Float32Array;
      const worst = parityDifference(got, want);
      if (!(worst <= PARITY_TOLERANCE)) {
        throw new DeployError(
          `the merged model's "${name}" differs from encoder-then-heads by ${worst} on ${options.rows.length} holdout rows; refusing the file`,
          {
            code: 'PARITY',
            context: { output: name, maxAbsDiff: worst },
          },
        );
      }
    }
  } finally {
    await Promise.all([encoder, heads, merged].map((session) => session.release()));
  }
}

/** `models/<project>/<version>/model-float.onnx`: the float original of a quantized `model.onnx`. */
function floatModelKey(modelKey: string): string {
  return modelKey.replace(/model\.onnx$/, 'model-float.onnx');
}

/** Per task, per metric both sides report: quantized − float. */
function metricChange(float: TaskMetrics, quantized: TaskMetrics): Record<string, Record<string, number>> {
  return Object.fromEntries(
    Object.entries(float).map(([task, metrics]) => [
      task,
      Object.fromEntries(
        Object.entries(metrics).flatMap(([metric, value]) => (quantized[task]?.[metric] === undefined ? [] : [[metric, quantized[task][metric] - value]])),
      ),
    ]),
  );
}

/** Median single-record and 64-record latency of the exported file, after a warm-up. */
async function measureLatency(model: Uint8Array, rows: ValidatedRow[]): Promise<{ single: number; batch64: number }> {
  const descriptor = encoderDescriptor(model);
  const session = await ort.InferenceSession.create(model, SERVING_SESSION_OPTIONS);
  const median = async (feeds: Record<string, ort.Tensor>) => {
    await session.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < 15; i++) {
      const start = performance.now();
      await session.run(feeds);
      times.push(performance.now() - start);
    }
    return times.sort((a, b) => a - b)[7];
  };
  try {
    const batch = Array.from({ length: 64 }, (_, i) => rows[i % rows.length]);
    return { single: await median(encoderFeeds(descriptor, rows.slice(0, 1))), batch64: await median(encoderFeeds(descriptor, batch)) };
  } finally {
    await session.release();
  }
}
