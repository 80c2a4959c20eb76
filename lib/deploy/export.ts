import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { objectiveTasks } from '#lib/agent/index.ts';
import { encoderDescriptor, encoderFeeds, mergeEncoderAndHeads } from '#lib/encoders/index.ts';
import { routedRows, splitRouter } from '#lib/embed/index.ts';
import type { ValidatedRow } from '#lib/datasets/index.ts';
import type { RunManifest } from '#lib/prepare/index.ts';
import type { Registry } from '#lib/registry/index.ts';
import { readShard } from '#lib/shards/index.ts';
import { keys, type ArtifactStore } from '#lib/store/index.ts';
import { checkParity, exportHeads, loadTrialWeights, parityDifference, shardUri, trainingForward, FEATURES_INPUT, PARITY_TOLERANCE } from '#lib/train/index.ts';
import { rewardOf } from '#lib/tune/index.ts';
import { TrialJobResult, type ExportInput, type ExportOutput } from '#lib/workflow/contracts.ts';
import { modelOutputName, type ModelCard } from './card.ts';
import { DeployError } from './errors.ts';
import { evaluateOnSplit } from './evaluate.ts';

/** Rows used for the parity checks and the latency figures. */
const PARITY_ROWS = 64;

/**
 * The Export stage: the best trial's heads behind its encoder as one ONNX file (raw input →
 * every task's output), checked for parity twice (exported heads against the training-time
 * forward pass, then the merged file against encoder-then-heads), scored on the holdout, timed,
 * uploaded with its model card and registered as a candidate version. Retried, it finds the
 * version it registered and writes nothing twice.
 */
export async function exportBestTrial(input: ExportInput, deps: { store: ArtifactStore; registry: Registry }): Promise<ExportOutput> {
  const { store, registry } = deps;
  const manifest = await store.getJson<RunManifest>(input.manifestUri);
  const { spec } = manifest;
  const result = TrialJobResult.parse(await store.getJson<unknown>(input.bestTrialResultUri));
  if (result.status !== 'succeeded') {
    throw new DeployError(`trial ${result.trialId} failed (${result.reason}); only a succeeded trial can be exported`, { code: 'TRIAL_NOT_SUCCEEDED', context: { trialId: result.trialId } });
  }
  const version = await registry.reserveVersion(input.project, { runId: input.runId });
  const modelKey = keys.model(input.project, version);
  const cardKey = keys.modelCard(input.project, version);
  const registered = await registry.findVersion(input.project, version);
  if (registered && (await store.exists(cardKey))) {
    const card = await store.getJson<ModelCard>(cardKey);
    return { modelUri: card.model.uri, cardUri: store.uri(cardKey), sha256: card.model.sha256, sizeBytes: card.model.sizeBytes };
  }

  const weights = await loadTrialWeights(store, result.weightsUri);
  const encoder = manifest.encoders.find((entry) => entry.dimension === weights.inputDim) ?? manifest.encoders[0];
  const heads = exportHeads({
    spec,
    encoder,
    weights,
    metadata: { metrics: result.metrics, lambda: result.proposal.lambda, digests: { spec: manifest.specDigest, features: manifest.featuresDigest, encoder: encoder.sha256 }, version },
  });
  const featuresUri = store.uri(keys.featuresPrefix(manifest.featuresDigest));
  const validation = await firstShardRows(store, shardUri(featuresUri, encoder.id, 'validation'), PARITY_ROWS, weights.inputDim);
  await checkParity(heads, await trainingForward({ spec, weights, batch: validation }), { batch: validation });

  const encoderBytes = await store.getBytes(encoder.uri);
  const model = mergeEncoderAndHeads(encoderBytes, heads, { featureInput: FEATURES_INPUT });
  const sample = await firstSplitRows(store, manifest, 'holdout', PARITY_ROWS);
  await checkMergedParity({ encoder: encoderBytes, heads, model, rows: sample, outputs: spec.tasks.map(modelOutputName) });

  const holdout = await evaluateOnSplit(model, { store, manifest, split: 'holdout' });
  const objective = rewardOf(holdout.metrics, objectiveTasks(spec, holdout.metrics)).reward;
  const latencyMs = await measureLatency(model, sample);

  const stored = await store.putBytes(modelKey, model, { contentType: 'application/octet-stream' });
  const train = manifest.datasets.find((d) => d.role === 'train')!;
  const card: ModelCard = {
    cardVersion: 1,
    project: input.project,
    version,
    runId: input.runId,
    createdAt: new Date().toISOString(),
    tasks: spec.tasks.map((task) => ({ name: task.name, type: task.type, ...(task.type === 'multiclass' ? { classes: task.classes } : {}), metric: task.metric })),
    encoder: encoderDescriptor(encoderBytes),
    architecture: weights.architecture,
    lambda: result.proposal.lambda,
    ...(result.proposal.learningRate === undefined ? {} : { learningRate: result.proposal.learningRate }),
    metrics: { validation: result.metrics, holdout: holdout.metrics },
    holdoutObjective: objective,
    lineage: {
      specDigest: manifest.specDigest,
      datasetDigest: train.digest,
      baseModelDigest: encoder.sha256,
      featuresDigest: manifest.featuresDigest,
      bestTrialId: result.trialId,
    },
    model: { uri: stored.uri, sha256: stored.sha256, sizeBytes: stored.sizeBytes, quantized: false },
    latencyMs,
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
    quantized: false,
  });
  await registry.recordRunEvent(input.project, input.runId, 'export', { version, holdoutObjective: objective, sizeBytes: stored.sizeBytes, latencyMs });
  await registry.updateRunStatus(input.project, input.runId, 'running', { stage: 'Promote' });
  return { modelUri: stored.uri, cardUri: cardStored.uri, sha256: stored.sha256, sizeBytes: stored.sizeBytes };
}

async function firstShardRows(store: ArtifactStore, uri: string, rows: number, dim: number): Promise<{ features: Float32Array; rows: number }> {
  const features = new Float32Array(rows * dim);
  let filled = 0;
  for await (const batch of readShard(await store.getStream(uri))) {
    const take = Math.min(rows - filled, batch.rows);
    features.set(batch.features.subarray(0, take * dim), filled * dim);
    filled += take;
    if (filled === rows) break;
  }
  if (filled === 0) throw new DeployError(`${uri} holds no rows to check the export against`, { code: 'SPLIT_EMPTY', context: { uri } });
  return { features: features.subarray(0, filled * dim), rows: filled };
}

async function firstSplitRows(store: ArtifactStore, manifest: RunManifest, split: 'holdout', limit: number): Promise<ValidatedRow[]> {
  const route = splitRouter(manifest);
  const rows: ValidatedRow[] = [];
  for (const dataset of manifest.datasets) {
    for await (const routed of routedRows(store, { spec: manifest.spec, dataset, route })) {
      if (routed.split === split) rows.push(routed.row);
      if (rows.length === limit) return rows;
    }
  }
  if (rows.length === 0) throw new DeployError(`the ${split} split has no rows to check the export on`, { code: 'SPLIT_EMPTY', context: { split } });
  return rows;
}

/** The merged file must answer exactly as the encoder followed by the heads does. */
async function checkMergedParity(options: { encoder: Uint8Array; heads: Uint8Array; model: Uint8Array; rows: ValidatedRow[]; outputs: string[] }): Promise<void> {
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
        throw new DeployError(`the merged model's "${name}" differs from encoder-then-heads by ${worst} on ${options.rows.length} holdout rows; refusing the file`, {
          code: 'PARITY',
          context: { output: name, maxAbsDiff: worst },
        });
      }
    }
  } finally {
    await Promise.all([encoder, heads, merged].map((session) => session.release()));
  }
}

/** Median single-record and 64-record latency of the exported file, after a warm-up. */
async function measureLatency(model: Uint8Array, rows: ValidatedRow[]): Promise<{ single: number; batch64: number }> {
  const descriptor = encoderDescriptor(model);
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all' });
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
