/**
 * What a live model needs after its run's scratch is gone. `runs/` expires (the bucket's
 * lifecycle rule, 30 days by default), and the models that stay in production longest are the
 * ones monitoring and retraining exist for; so Export writes beside each version, under its
 * immutable `models/<project>/<version>/` keys:
 *
 *   live.json        this document: monitor thresholds, where the spec and datasets are, the drift reference
 *   spec.json        the run's spec as it started (datasets as S3 URIs), so a retraining run can start from it
 *   reference.json   the drift reference, from the version's own encoder's holdout embeddings (its
 *                    category level indices left out)
 *
 * Nothing here imports ONNX Runtime: the monitor reads it.
 */
import * as z from 'zod';
import { LIVE_MODEL_FILES, LiveModel, type RunManifest } from '#lib/domain/run/index.ts';
import { REFERENCE_ROWS, referenceFromEmbeddings } from '#lib/serve/drift.ts';
import { denseFeatures, readShard } from '#lib/domain/shards/index.ts';
import { keys, type ArtifactStore } from '#lib/adapters/store/index.ts';
import { DeployError } from './errors.ts';

/**
 * Writes a version's live-model files (Export calls it before the card, so a retried Export
 * finds none or rewrites the same bytes: nothing here depends on the time).
 */
export async function writeLiveModel(
  store: ArtifactStore,
  options: {
    manifest: RunManifest;
    version: number;
    encoderId: string;
    dimension: number;
    /** The encoder's category level-index features, which the reference leaves out as serving's samples do. */
    excludedFeatures?: readonly number[];
    holdoutShardUri: string;
  },
): Promise<LiveModel> {
  const { manifest, version } = options;
  const file = (name: string) => keys.modelFile(manifest.project, version, name);
  const spec = await store.putJson(file(LIVE_MODEL_FILES.spec), await store.getJson(manifest.specUri, z.unknown()));

  // A holdout too small to split off leaves no shard: then there is no reference, and the monitor says so.
  const built = (await store.exists(options.holdoutShardUri))
    ? await referenceFromEmbeddings(holdoutEmbeddings(store, options.holdoutShardUri, options.dimension), {
        dimension: options.dimension,
        excludedFeatures: options.excludedFeatures ?? [],
        maxRows: REFERENCE_ROWS,
      })
    : { rows: 0 };
  const reference = built.reference ? { uri: (await store.putJson(file(LIVE_MODEL_FILES.reference), built.reference)).uri, rows: built.rows } : null;

  const document = LiveModel.parse({
    liveModelVersion: 1,
    project: manifest.project,
    version,
    runId: manifest.runId,
    monitor: manifest.spec.monitor,
    spec: { uri: spec.uri, sourceUri: manifest.specUri, digest: manifest.specDigest },
    datasets: manifest.datasets.map(({ role, uri, digest }) => ({ role, uri, digest })),
    split: manifest.split,
    features: { digest: manifest.featuresDigest, encoderId: options.encoderId },
    reference,
  } satisfies LiveModel);
  await store.putJson(file(LIVE_MODEL_FILES.document), document);
  return document;
}

/** A version's live-model document, or undefined for a version exported before there was one. */
export async function readLiveModel(store: ArtifactStore, project: string, version: number): Promise<LiveModel | undefined> {
  const key = keys.modelFile(project, version, LIVE_MODEL_FILES.document);
  const document = await store.findJson(key, z.unknown());
  if (document === undefined) return undefined;
  const parsed = LiveModel.safeParse(document);
  if (!parsed.success) {
    throw new DeployError(
      `${store.uri(key)} is not a live-model document (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}); it is written by Export, so re-export the version or restore the file`,
      {
        code: 'LIVE_MODEL_INVALID',
        context: { project, version, key },
      },
    );
  }
  return parsed.data;
}

async function* holdoutEmbeddings(store: ArtifactStore, uri: string, dimension: number): AsyncGenerator<Float32Array> {
  for await (const batch of readShard(await store.getStream(uri), { dim: dimension })) yield denseFeatures(batch);
}
