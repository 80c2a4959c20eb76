import * as ort from 'onnxruntime-node';
import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { splitRows } from '#lib/pipeline/embed/index.ts';
import { encoderDescriptor, encoderFeeds } from '#lib/domain/encoders/index.ts';
import { evaluateTask, labelSpread } from '#lib/domain/metrics/index.ts';
import type { RunManifest } from '#lib/domain/run/index.ts';
import type { TaskSpec } from '#lib/domain/spec/index.ts';
import type { ArtifactStore } from '#lib/adapters/store/index.ts';
import { modelOutputName } from '#lib/domain/run/index.ts';
import { DeployError } from './errors.ts';
import { QUANTIZED_SESSION_CONFIG } from './quantize.ts';

export type TaskMetrics = Record<string, Record<string, number>>;

/**
 * How every exported model is scored, so the card's metrics come from the arithmetic the users
 * get. Int8 weights are dequantized once at load: ORT would otherwise redo it on every run (or
 * fuse it into an int8 kernel that also quantizes the activations), far slower per record. A
 * float model is unaffected.
 */
export const MODEL_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', extra: QUANTIZED_SESSION_CONFIG };

/**
 * How a model is served (and timed for its card): the same arithmetic, on one thread. Serving
 * runs are short and Lambda gives one or two vCPUs: a second intra-op thread bought nothing at 64
 * records and cost more than it saved at one record (the hand-off to a sleeping worker and back), and spinning workers would steal the CPU the next
 * request needs.
 */
export const SERVING_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'all',
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  extra: { session: { ...QUANTIZED_SESSION_CONFIG.session, intra_op: { allow_spinning: '0' } } },
};

interface TaskColumns {
  predictions: number[];
  labels: number[];
  mask: number[];
}

/**
 * Runs an exported model (raw input → every task's output) over one split of the run's datasets,
 * streamed in batches, and computes every task's metrics — plus `labelStd` / `labelMad` for
 * regression tasks, the references the objective needs. Champion and candidate are scored this
 * way on the same rows, whatever encoder each was built on.
 */
export async function evaluateOnSplit(
  model: Uint8Array,
  context: { store: ArtifactStore; manifest: RunManifest; split: 'validation' | 'holdout'; tasks?: readonly TaskSpec[]; batchSize?: number },
): Promise<{ rows: number; metrics: TaskMetrics }> {
  const { store, manifest, split } = context;
  const tasks = context.tasks ?? manifest.spec.tasks;
  const batchSize = context.batchSize ?? 256;
  const descriptor = encoderDescriptor(model);
  const session = await ort.InferenceSession.create(model, MODEL_SESSION_OPTIONS);
  const missing = tasks.map(modelOutputName).filter((name) => !session.outputNames.includes(name));
  if (missing.length > 0) {
    await session.release();
    throw new DeployError(`the model has no output ${missing.join(', ')} (outputs: ${session.outputNames.join(', ')}); it was exported for other tasks`, {
      code: 'MODEL_TASKS_MISMATCH',
      context: { missing },
    });
  }
  const columns = new Map<string, TaskColumns>(tasks.map((task) => [task.name, { predictions: [], labels: [], mask: [] }]));
  let rows = 0;
  let batch: ValidatedRow[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const outputs = await session.run(encoderFeeds(descriptor, batch));
    for (const task of tasks) {
      const column = columns.get(task.name)!;
      const data = outputs[modelOutputName(task)].data as Float32Array;
      for (const value of data) column.predictions.push(value);
      for (const row of batch) {
        const label = row.labels[task.name];
        column.labels.push(label ?? 0);
        column.mask.push(label === null || label === undefined ? 0 : 1);
      }
    }
    rows += batch.length;
    batch = [];
  };
  try {
    for await (const routed of splitRows(store, manifest, split)) {
      batch.push(routed.row);
      if (batch.length >= batchSize) await flush();
    }
    await flush();
  } finally {
    await session.release();
  }
  if (rows === 0) {
    throw new DeployError(`the ${split} split has no rows; give a ${split} dataset or a non-zero split.${split}Fraction`, {
      code: 'SPLIT_EMPTY',
      context: { split },
    });
  }
  const metrics: TaskMetrics = {};
  for (const task of tasks) {
    const { predictions, labels, mask } = columns.get(task.name)!;
    const evaluated = evaluateTask({
      type: task.type,
      ...(task.type === 'multiclass' ? { numClasses: task.classes.length } : {}),
      predictions: Float64Array.from(predictions),
      labels: Float64Array.from(labels),
      mask: Uint8Array.from(mask),
    }) as Record<string, number>;
    metrics[task.name] = task.type === 'regression' ? { ...evaluated, ...labelSpread(Float64Array.from(labels), Uint8Array.from(mask)) } : evaluated;
  }
  return { rows, metrics };
}
