import { evaluateTask, labelSpread } from '#lib/metrics/index.ts';
import type { RunManifest } from '#lib/prepare/index.ts';
import { readShard, type ShardBatch } from '#lib/shards/index.ts';
import { keys, type ArtifactStore } from '#lib/store/index.ts';
import { shardUri, trainTrial, trainingForward } from '#lib/train/index.ts';
import { modelOutputName } from '#lib/deploy/index.ts';

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
  const holdout = await collect(split('holdout')());
  const taskNames = spec.tasks.map((task) => task.name);
  const configs: { name: string; lambda: Record<string, number> }[] = [
    { name: 'uniform λ', lambda: Object.fromEntries(taskNames.map((task) => [task, 1])) },
    ...taskNames.map((only) => ({ name: `single-task ${only}`, lambda: Object.fromEntries(taskNames.map((task) => [task, task === only ? 1 : 0])) })),
  ];
  const results: BaselineResult[] = [];
  for (const config of configs) {
    const trained = await trainTrial({ spec, encoder, proposal: { lambda: config.lambda }, data: { train: split('train'), validation: split('validation') } });
    const predictions = await trainingForward({ spec, weights: trained.weights, batch: { features: holdout.features, rows: holdout.rows } });
    const metrics: BaselineResult['holdout'] = {};
    for (const task of spec.tasks) {
      const labels = holdout.labels[task.name];
      const mask = holdout.masks[task.name];
      const scored = evaluateTask({
        type: task.type,
        ...(task.type === 'multiclass' ? { numClasses: task.classes.length } : {}),
        predictions: predictions[modelOutputName(task)],
        labels,
        mask,
      }) as Record<string, number>;
      metrics[task.name] = task.type === 'regression' ? { ...scored, ...labelSpread(labels, mask) } : scored;
    }
    results.push({ ...config, holdout: metrics });
  }
  return results;
}

async function collect(batches: AsyncIterable<ShardBatch>): Promise<{ rows: number; features: Float32Array; labels: Record<string, Float32Array>; masks: Record<string, Uint8Array> }> {
  const parts: ShardBatch[] = [];
  for await (const batch of batches) parts.push({ ...batch, features: batch.features.slice(), labels: copy(batch.labels), masks: copy(batch.masks) });
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const join = <T extends Float32Array | Uint8Array>(pick: (p: ShardBatch) => T, Kind: new (n: number) => T, width = 1): T => {
    const out = new Kind(rows * width);
    let offset = 0;
    for (const part of parts) {
      out.set(pick(part) as never, offset);
      offset += part.rows * width;
    }
    return out;
  };
  const dim = parts[0]?.dim ?? 0;
  const tasks = Object.keys(parts[0]?.labels ?? {});
  return {
    rows,
    features: join((p) => p.features, Float32Array, dim),
    labels: Object.fromEntries(tasks.map((t) => [t, join((p) => p.labels[t], Float32Array)])),
    masks: Object.fromEntries(tasks.map((t) => [t, join((p) => p.masks[t], Uint8Array)])),
  };
}

function copy<T extends Float32Array | Uint8Array>(columns: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(columns).map(([k, v]) => [k, v.slice() as T]));
}
