/**
 * One trial on the sparse text set of `bench/textSet.ts`, as the Trial job runs it: the train and
 * validation rows written as sparse shards, streamed back through the shard reader into `trainTrial`
 * with the defaults of a text spec. Shared by `bench train`'s sparse-text section.
 */
import { Readable } from 'node:stream';
import type { ShardBatch } from '#lib/domain/shards/index.ts';
import { readShard, ShardWriter } from '#lib/domain/shards/index.ts';
import { parseSpec, type SpecInput } from '#lib/domain/spec/index.ts';
import { trainTrial, type TrainResult } from '#lib/domain/train/index.ts';
import { TEXT_ENCODER, TEXT_SHARD_TASKS, TEXT_TASKS, textLabelColumns, type TextSet } from './textSet.ts';

async function shardBytes(set: TextSet, from: number, to: number): Promise<Uint8Array> {
  const writer = new ShardWriter({
    dim: set.encoder.dimension,
    layout: 'sparse',
    tasks: TEXT_SHARD_TASKS,
    encoderDigest: 'bench',
  });
  const chunks: Buffer[] = [];
  writer.output!.on('data', (chunk: Buffer) => chunks.push(chunk));
  for (let start = from; start < to; start += 512) {
    const rows = set.rows.slice(start, Math.min(to, start + 512));
    await writer.writeRows({ rows: rows.length, features: new Float32Array(0), sparse: set.encoder.encodeSparse(rows), ...textLabelColumns(rows) });
  }
  await writer.finish();
  return new Uint8Array(Buffer.concat(chunks));
}

/** Each set's train and validation shards, written once for all the trials run on it. */
const shardsOf = new WeakMap<TextSet, Promise<[Uint8Array, Uint8Array]>>();

function textShards(set: TextSet): Promise<[Uint8Array, Uint8Array]> {
  let shards = shardsOf.get(set);
  if (shards === undefined) {
    shards = Promise.all([shardBytes(set, 0, set.train), shardBytes(set, set.train, set.rows.length)]);
    shardsOf.set(set, shards);
  }
  return shards;
}

export interface TextTrialFigures {
  trialMs: number;
  epochs: number;
  steps: number;
  auc: Record<string, number>;
  settings: { hidden: number[]; towerHidden: number[]; batchSize: number; epochs: number; learningRate: number };
}

export interface TextTrialOverrides {
  model?: SpecInput['model'];
  training?: SpecInput['training'];
}

/** Runs one trial with a text spec's defaults, `model` and `training` overrides merged in. */
export async function textTrial(set: TextSet, overrides: TextTrialOverrides = {}): Promise<TextTrialFigures> {
  const [train, validation] = await textShards(set);
  const spec = parseSpec({
    project: 'bench-text',
    // The text encoder the set was fitted with, so the spec gets the defaults of a text spec.
    baseModel: TEXT_ENCODER,
    datasets: { train: 'train.jsonl' },
    tasks: TEXT_TASKS.map((name) => ({ name, type: 'binary', metric: 'auc' })),
    ...(overrides.model ? { model: overrides.model } : {}),
    ...(overrides.training ? { training: overrides.training } : {}),
  });
  const stream = (bytes: Uint8Array) => (): AsyncIterable<ShardBatch> => readShard(Readable.from([bytes]));
  const start = performance.now();
  const result: TrainResult = await trainTrial({
    spec,
    encoder: { id: 'text', dimension: set.encoder.dimension },
    proposal: { lambda: Object.fromEntries(TEXT_TASKS.map((t) => [t, 1])) },
    data: { train: stream(train), validation: stream(validation) },
    options: { intraOpNumThreads: 2 },
  });
  const trialMs = performance.now() - start;
  return {
    trialMs,
    epochs: result.epochsRun,
    steps: result.steps,
    auc: Object.fromEntries(TEXT_TASKS.map((t) => [t, result.metrics[t].auc])),
    settings: {
      hidden: spec.model.hidden,
      towerHidden: spec.model.towerHidden,
      batchSize: spec.training.batchSize,
      epochs: spec.training.epochs,
      learningRate: spec.training.learningRate,
    },
  };
}
