import { PassThrough } from 'node:stream';
import * as z from 'zod';
import type { SplitName, ValidatedRow } from '#lib/domain/datasets/index.ts';
import { Encoder, type LoadEncoderOptions } from '#lib/domain/encoders/index.ts';
import type { EncoderEntry, RunManifest } from '#lib/domain/run/index.ts';
import { SPLITS, ShardWriter, type FeatureLayout, type ShardSummary, type ShardTask } from '#lib/domain/shards/index.ts';
import { sha256Hex, type ArtifactStore, type StoredObject } from '#lib/adapters/store/index.ts';
import type { EmbedJobResult } from '#lib/pipeline/contracts.ts';
import { EmbedError } from '#lib/pipeline/embed/errors.ts';
import { routedRows } from '#lib/pipeline/embed/rows.ts';
import { splitRouter } from '#lib/domain/run/index.ts';

export interface EmbedOptions {
  store: ArtifactStore;
  manifest: RunManifest;
  /** `s3://<bucket>/features/<digest>/`: shards go to `<featuresUri><encoderId>/<split>.arrow`. */
  featuresUri: string;
  /** Rows per encoder call and per shard record batch. Default 512. */
  batchSize?: number;
  /**
   * Bytes the stage may hold for rows waiting to be embedded and their embeddings; the batch size
   * shrinks to fit. Memory does not grow with the dataset either way: rows stream in from S3 and
   * shards stream out through a spool file.
   */
  memoryBudgetBytes?: number;
  executionProviders?: LoadEncoderOptions['executionProviders'];
  /** Called after every embedded batch. */
  onProgress?: (progress: { rows: number; dataset: string }) => void;
}

/** What `_SUCCESS.json` records; written last, so its presence means every shard is complete. */
const perSplit = <T extends z.ZodType>(value: T) => z.object({ train: value, validation: value, holdout: value });
export const EmbedMarker = z.object({
  featuresDigest: z.string(),
  rows: z.int().nonnegative(),
  dims: z.int().positive(),
  shards: z.int().nonnegative(),
  splits: perSplit(z.int().nonnegative()),
  encoders: z.array(
    z.object({
      id: z.string(),
      kind: z.string(),
      sha256: z.string(),
      dimension: z.int().positive(),
      shards: perSplit(z.object({ uri: z.string(), sha256: z.string(), rows: z.int().nonnegative(), sizeBytes: z.number().nonnegative() })),
    }),
  ),
});
export type EmbedMarker = z.infer<typeof EmbedMarker>;

export const SUCCESS_MARKER = '_SUCCESS.json';
const DEFAULT_BATCH_SIZE = 512;
/** A generous allowance for one validated row held in JavaScript (object, strings, label map). */
const ROW_OVERHEAD_BYTES = 2048;

/** The key of one shard: `<prefix><encoderId>/<split>.arrow`. */
export function shardKey(prefix: string, encoderId: string, split: SplitName): string {
  return `${prefix}${encoderId}/${split}.arrow`;
}

/**
 * The Embed stage: every dataset streamed from S3 through validation and the split rule, embedded
 * by every fitted encoder in batches, and written as one Arrow feature shard per encoder and split,
 * with labels and masks. The features prefix is content-addressed, so when `_SUCCESS.json` is
 * already there the work was done (by this run retried or another run on the same data and
 * encoders) and nothing is recomputed.
 */
export async function runEmbed(options: EmbedOptions): Promise<EmbedJobResult> {
  const { store, manifest } = options;
  const prefix = featuresPrefix(store, options.featuresUri);
  const markerKey = `${prefix}${SUCCESS_MARKER}`;
  const marker = await store.findJson(markerKey, EmbedMarker);
  if (marker) {
    return { featuresUri: options.featuresUri, rows: marker.rows, dims: marker.dims, shards: marker.shards, cached: true };
  }
  if (manifest.encoders.length === 0) {
    throw new EmbedError('the manifest lists no fitted encoders; Prepare fits one per spec.baseModels entry, so the manifest is damaged', {
      code: 'EMBED_MANIFEST',
    });
  }
  const batchSize = batchSizeWithin(options, manifest.encoders);
  const encoders = await loadEncoders(store, manifest.encoders, options.executionProviders);
  const tasks: ShardTask[] = manifest.spec.tasks.map((task) =>
    task.type === 'multiclass' ? { name: task.name, type: task.type, classes: task.classes } : { name: task.name, type: task.type },
  );
  const outputs = encoders.flatMap(({ entry, encoder }) =>
    SPLITS.map((split) => openShard(store, { key: shardKey(prefix, entry.id, split), entry, split, tasks, layout: encoder.sparse ? 'sparse' : 'dense' })),
  );
  const outputOf = (encoderId: string, split: SplitName) => outputs.find((o) => o.entry.id === encoderId && o.split === split)!;

  const pending: Record<SplitName, { index: number; row: ValidatedRow }[]> = { train: [], validation: [], holdout: [] };
  const counts: Record<SplitName, number> = { train: 0, validation: 0, holdout: 0 };
  let embedded = 0;
  const flush = async (split: SplitName, dataset: string) => {
    const batch = pending[split];
    if (batch.length === 0) return;
    pending[split] = [];
    const rows = batch.map((b) => b.row);
    const labels: Record<string, Float32Array> = {};
    const masks: Record<string, Uint8Array> = {};
    for (const task of tasks) {
      const label = new Float32Array(rows.length);
      const mask = new Uint8Array(rows.length);
      rows.forEach((row, i) => {
        const value = row.labels[task.name];
        if (value !== null && value !== undefined) {
          label[i] = value;
          mask[i] = 1;
        }
      });
      labels[task.name] = label;
      masks[task.name] = mask;
    }
    const rowIndex = Int32Array.from(batch, (b) => b.index);
    for (const { entry, encoder } of encoders) {
      const writer = outputOf(entry.id, split).writer;
      // A TF-IDF row holds a few hundred of its 20k columns: it goes to the shard as it is, never as a dense row.
      if (encoder.sparse)
        await writer.writeRows({ rows: rows.length, features: new Float32Array(0), sparse: encoder.encodeSparse(rows), labels, masks, rowIndex });
      else await writer.writeRows({ rows: rows.length, features: await encoder.encode(rows), labels, masks, rowIndex });
    }
    counts[split] += rows.length;
    embedded += rows.length;
    options.onProgress?.({ rows: embedded, dataset });
  };

  try {
    const route = splitRouter(manifest);
    for (const dataset of manifest.datasets) {
      for await (const { index, split, row } of routedRows(store, { spec: manifest.spec, dataset, route })) {
        pending[split].push({ index, row });
        if (pending[split].length >= batchSize) await flush(split, dataset.uri);
      }
      for (const split of SPLITS) await flush(split, dataset.uri);
    }
    // One upload at a time: each holds its multipart buffers, and shards can be large.
    const written: { output: ShardOutput; summary: ShardSummary; stored: StoredObject }[] = [];
    for (const output of outputs) written.push({ output, summary: await output.writer.finish(), stored: await output.upload });
    const marker: EmbedMarker = {
      featuresDigest: manifest.featuresDigest,
      rows: embedded,
      dims: manifest.encoders[0].dimension,
      shards: written.length,
      splits: counts,
      encoders: encoders.map(({ entry }) => ({
        id: entry.id,
        kind: entry.kind,
        sha256: entry.sha256,
        dimension: entry.dimension,
        shards: Object.fromEntries(
          written.filter((w) => w.output.entry.id === entry.id).map(({ output, summary, stored }) => [output.split, shardRecord(summary, stored)]),
        ) as EmbedMarker['encoders'][number]['shards'],
      })),
    };
    await store.putJson(markerKey, marker);
    return { featuresUri: options.featuresUri, rows: marker.rows, dims: marker.dims, shards: marker.shards, cached: false };
  } catch (error) {
    // Aborting the sinks makes every pending upload fail rather than store a truncated shard.
    const reason = error instanceof Error ? error : new Error(String(error));
    for (const o of outputs) o.writer.abort(reason);
    await Promise.allSettled(outputs.map((o) => o.upload));
    throw error;
  } finally {
    await Promise.all(encoders.map(({ encoder }) => encoder.release()));
  }
}

function shardRecord(summary: ShardSummary, stored: StoredObject) {
  return { uri: stored.uri, sha256: stored.sha256, rows: summary.rows, sizeBytes: stored.sizeBytes };
}

function featuresPrefix(store: ArtifactStore, featuresUri: string): string {
  let key: string;
  try {
    key = store.keyOf(featuresUri);
  } catch (cause) {
    throw new EmbedError(`featuresUri "${featuresUri}" cannot be used: ${(cause as Error).message}`, {
      code: 'EMBED_MANIFEST',
      context: { featuresUri },
      cause,
    });
  }
  return key.endsWith('/') ? key : `${key}/`;
}

function batchSizeWithin(options: EmbedOptions, entries: readonly EncoderEntry[]): number {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new EmbedError(`batchSize ${batchSize} is not a positive integer; pass e.g. 512`, { code: 'EMBED_BUDGET', context: { batchSize } });
  }
  if (options.memoryBudgetBytes === undefined) return batchSize;
  // Each split holds up to one batch of rows; an encoder call holds its input and output rows.
  const dims = entries.reduce((sum, e) => sum + e.dimension, 0);
  const perRowBytes = ROW_OVERHEAD_BYTES + 2 * dims * Float32Array.BYTES_PER_ELEMENT;
  const fits = Math.floor(options.memoryBudgetBytes / (SPLITS.length * perRowBytes));
  if (fits < 1) {
    throw new EmbedError(
      `memoryBudgetBytes ${options.memoryBudgetBytes} cannot hold one row per split (about ${SPLITS.length * perRowBytes} bytes for ${dims} feature values a row); raise the budget`,
      { code: 'EMBED_BUDGET', context: { memoryBudgetBytes: options.memoryBudgetBytes, perRowBytes } },
    );
  }
  return Math.min(batchSize, fits);
}

async function loadEncoders(store: ArtifactStore, entries: readonly EncoderEntry[], executionProviders: EmbedOptions['executionProviders']) {
  const loaded: { entry: EncoderEntry; encoder: Encoder }[] = [];
  try {
    for (const entry of entries) {
      const bytes = await store.getBytes(entry.uri);
      const sha256 = sha256Hex(bytes);
      if (sha256 !== entry.sha256) {
        throw new EmbedError(
          `encoder ${entry.id} at ${entry.uri} has sha256 ${sha256}, but the manifest records ${entry.sha256}; it was overwritten after Prepare, start a new run`,
          {
            code: 'EMBED_ENCODER_MISMATCH',
            context: { id: entry.id, uri: entry.uri, sha256, expected: entry.sha256 },
          },
        );
      }
      const encoder = await Encoder.load(bytes, { executionProviders });
      loaded.push({ entry, encoder });
      if (encoder.dimension !== entry.dimension) {
        throw new EmbedError(
          `encoder ${entry.id} produces dimension ${encoder.dimension}, but the manifest records ${entry.dimension}; the manifest is damaged, start a new run`,
          {
            code: 'EMBED_ENCODER_MISMATCH',
            context: { id: entry.id, dimension: encoder.dimension, expected: entry.dimension },
          },
        );
      }
    }
    return loaded;
  } catch (error) {
    await Promise.all(loaded.map(({ encoder }) => encoder.release()));
    throw error;
  }
}

interface ShardOutput {
  entry: EncoderEntry;
  split: SplitName;
  writer: ShardWriter;
  upload: Promise<StoredObject>;
}

function openShard(
  store: ArtifactStore,
  target: { key: string; entry: EncoderEntry; split: SplitName; tasks: ShardTask[]; layout: FeatureLayout },
): ShardOutput {
  const sink = new PassThrough({ highWaterMark: 1 << 20 });
  const writer = new ShardWriter({ dim: target.entry.dimension, layout: target.layout, tasks: target.tasks, encoderDigest: target.entry.sha256, sink });
  const upload = store.putStream(target.key, sink, { contentType: 'application/vnd.apache.arrow.stream' });
  // Awaited after the writer finishes; until then a failure must not surface as an unhandled rejection.
  upload.catch(() => undefined);
  return { entry: target.entry, split: target.split, writer, upload };
}
