import type { RunManifest } from '#lib/domain/run/index.ts';
import { readShard, type ShardBatch } from '#lib/domain/shards/index.ts';
import { keys, type ArtifactStore } from '#lib/adapters/store/index.ts';
import { evaluateWeights, trainTrial } from '#lib/domain/train/index.ts';
import { shardUri } from '#lib/pipeline/trials/trialJob.ts';

export interface BaselineResult {
  name: string;
  lambda: Record<string, number>;
  /** Per task, per metric, on the run's holdout rows. */
  holdout: Record<string, Record<string, number>>;
}

/**
 * The comparisons a tuned model should beat, trained on the run's own feature shards with the
 * spec's settings: uniform λ (every task weighted 1), and one single-task model per task (λ 1 for
 * that task, 0 for the rest). Scored on the same holdout rows as the registered model.
 */
export async function trainBaselines(store: ArtifactStore, manifest: RunManifest): Promise<BaselineResult[]> {
  const { spec } = manifest;
  const encoder = manifest.encoders[0];
  const featuresUri = store.uri(keys.featuresPrefix(manifest.featuresDigest));
  const split = (name: 'train' | 'validation' | 'holdout') =>
    async function* (): AsyncGenerator<ShardBatch> {
      yield* readShard(await store.getStream(shardUri(featuresUri, encoder.id, name)), { dim: encoder.dimension });
    };
  const taskNames = spec.tasks.map((task) => task.name);
  const configs: { name: string; lambda: Record<string, number> }[] = [
    { name: 'uniform λ', lambda: Object.fromEntries(taskNames.map((task) => [task, 1])) },
    ...taskNames.map((only) => ({ name: `single-task ${only}`, lambda: Object.fromEntries(taskNames.map((task) => [task, task === only ? 1 : 0])) })),
  ];
  const results: BaselineResult[] = [];
  for (const config of configs) {
    const trained = await trainTrial({ spec, encoder, proposal: { lambda: config.lambda }, data: { train: split('train'), validation: split('validation') } });
    results.push({ ...config, holdout: await evaluateWeights({ spec, weights: trained.weights, batches: split('holdout')() }) });
  }
  return results;
}
