import type { Readable } from 'node:stream';
import { RecordBatchReader, Type, type Data, type RecordBatch, type Schema } from 'apache-arrow';
import type { ShardBatch, SparseRow } from '#lib/domain/shards/batch.ts';
import { ShardError } from '#lib/domain/shards/errors.ts';
import { COLUMNS, parseShardMetadata, SPLITS, type ShardExpectations, type ShardMetadata } from '#lib/domain/shards/schema.ts';

export type ShardSource = AsyncIterable<Uint8Array> | Readable;

export interface OpenShard {
  metadata: ShardMetadata;
  schema: Schema;
  /** The record batches, decoded one at a time as the bytes arrive. Iterate once. */
  batches: AsyncIterable<ShardBatch>;
}

function readFailed(cause: unknown, stage: string): ShardError {
  if (cause instanceof ShardError) return cause;
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ShardError(`could not ${stage} the shard as an Arrow IPC stream (${detail}); check that the object is a feature shard and not truncated`, {
    code: 'SHARD_READ_FAILED',
    context: { stage },
    cause,
  });
}

/**
 * Opens a shard from streamed bytes (a Node Readable such as an S3 GetObject body, or any async
 * iterable of chunks), checks its metadata and columns, and yields its batches without ever
 * holding the whole file: Arrow's async stream reader decodes one message at a time.
 */
export async function openShard(source: ShardSource, expected: ShardExpectations = {}): Promise<OpenShard> {
  let reader;
  try {
    reader = await RecordBatchReader.from(byteChunks(source));
    await reader.open();
  } catch (cause) {
    throw readFailed(cause, 'open');
  }
  if (!reader.isStream() || !reader.schema) {
    await reader.cancel();
    throw new ShardError('the bytes are empty or an Arrow IPC file rather than an IPC stream; feature shards are Arrow IPC streams written by ShardWriter', {
      code: 'SHARD_NOT_AGENTFLOW',
      context: {},
    });
  }
  const schema = reader.schema;
  let metadata: ShardMetadata;
  try {
    metadata = parseShardMetadata(schema, expected);
  } catch (error) {
    await reader.cancel();
    throw error;
  }
  const arrowReader = reader;
  async function* batches(): AsyncGenerator<ShardBatch> {
    const iterator = arrowReader[Symbol.asyncIterator]();
    try {
      while (true) {
        let next: IteratorResult<RecordBatch>;
        try {
          next = await iterator.next();
        } catch (cause) {
          throw readFailed(cause, 'decode a record batch of');
        }
        if (next.done) return;
        if (next.value.numRows > 0) yield toShardBatch(next.value, metadata);
      }
    } finally {
      await arrowReader.return();
    }
  }
  return { metadata, schema, batches: batches() };
}

/**
 * Arrow's own Node-stream adapter ends quietly when the stream is destroyed with an error, which
 * would let an aborted upload or a failed download pass for a short shard. Node's async iterator
 * throws instead (the error, or a premature close), so every source is read through it.
 */
async function* byteChunks(source: ShardSource): AsyncGenerator<Uint8Array> {
  for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
    if (typeof chunk === 'string') {
      throw new ShardError('the shard source yields strings; open it without an encoding so it yields bytes', {
        code: 'SHARD_READ_FAILED',
        context: {},
      });
    }
    yield chunk;
  }
}

/** The batches of a shard, streamed; see `openShard` for the metadata. */
export async function* readShard(source: ShardSource, expected: ShardExpectations = {}): AsyncGenerator<ShardBatch> {
  const shard = await openShard(source, expected);
  yield* shard.batches;
}

function columnData(batch: RecordBatch, name: string): Data {
  const index = batch.schema.fields.findIndex((f) => f.name === name);
  const data = batch.data.children[index];
  if (data.nullCount > 0) {
    throw new ShardError(`shard column "${name}" holds ${data.nullCount} nulls; shards mark missing labels with mask 0, never with nulls`, {
      code: 'SHARD_COLUMN_TYPE',
      context: { column: name, nullCount: data.nullCount },
    });
  }
  return data;
}

/**
 * Views onto Arrow's buffers where the layout already matches (features, Float32 labels, Uint8
 * masks, Int32 rows): Arrow slices value buffers to the batch, so `values` starts at row 0.
 * Bool masks, Int64 rows and foreign split encodings are converted.
 */
function toShardBatch(batch: RecordBatch, metadata: ShardMetadata): ShardBatch {
  const rows = batch.numRows;
  const { dim } = metadata;
  const sparse = metadata.layout === 'sparse' ? sparseRows(batch, rows, dim) : undefined;
  const features = sparse ? new Float32Array(0) : (columnData(batch, COLUMNS.features).children[0].values as Float32Array).subarray(0, rows * dim);

  const labels: Record<string, Float32Array> = {};
  const masks: Record<string, Uint8Array> = {};
  for (const task of metadata.tasks) {
    labels[task.name] = (columnData(batch, COLUMNS.label(task.name)).values as Float32Array).subarray(0, rows);
    const maskData = columnData(batch, COLUMNS.mask(task.name));
    if (maskData.typeId === Type.Bool) {
      const bits = maskData.values as Uint8Array;
      const mask = new Uint8Array(rows);
      for (let i = 0; i < rows; i++) {
        const bit = maskData.offset + i;
        mask[i] = (bits[bit >> 3] >> (bit & 7)) & 1;
      }
      masks[task.name] = mask;
    } else {
      masks[task.name] = (maskData.values as Uint8Array).subarray(0, rows);
    }
  }

  const rowData = columnData(batch, COLUMNS.row);
  let rowIndex: Int32Array;
  if (rowData.values instanceof Int32Array) {
    rowIndex = rowData.values.subarray(0, rows);
  } else {
    const wide = rowData.values as BigInt64Array;
    rowIndex = new Int32Array(rows);
    for (let i = 0; i < rows; i++) {
      const value = wide[i];
      if (value < 0n || value >= 2n ** 31n) {
        throw new ShardError(`shard row index ${value} is outside 0 … 2^31 − 1; split the dataset into smaller shards`, {
          code: 'SHARD_COLUMN_TYPE',
          context: { column: COLUMNS.row, value: String(value) },
        });
      }
      rowIndex[i] = Number(value);
    }
  }

  const result: ShardBatch = { rows, dim, features, labels, masks, rowIndex, ...(sparse ? { sparse } : {}) };
  if (metadata.hasSplit) result.split = splitCodes(columnData(batch, COLUMNS.split), rows);
  return result;
}

function splitCode(name: unknown): number {
  const code = SPLITS.indexOf(name as (typeof SPLITS)[number]);
  if (code < 0) {
    throw new ShardError(`shard split value ${JSON.stringify(name)} is not one of ${SPLITS.join(', ')}`, {
      code: 'SHARD_COLUMN_TYPE',
      context: { column: COLUMNS.split, value: name },
    });
  }
  return code;
}

function splitCodes(data: Data, rows: number): Uint8Array {
  if (data.typeId === Type.Dictionary) {
    const dictionary = data.dictionary!;
    const remap = Uint8Array.from({ length: dictionary.length }, (_, k) => splitCode(dictionary.get(k)));
    const indices = data.values as Int8Array | Int16Array | Int32Array | Uint8Array;
    // Our own writer's dictionary is SPLITS in order, so the Int8 indices are already our codes.
    if (indices instanceof Int8Array && remap.every((code, k) => code === k)) {
      return new Uint8Array(indices.buffer, indices.byteOffset, rows);
    }
    return Uint8Array.from({ length: rows }, (_, i) => remap[Number(indices[i])]);
  }
  const out = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) out[i] = splitCode(data.type.typeId === Type.Utf8 ? utf8At(data, i) : undefined);
  return out;
}

const decoder = new TextDecoder();
function utf8At(data: Data, i: number): string {
  const offsets = data.valueOffsets as Int32Array;
  const bytes = data.values as Uint8Array;
  return decoder.decode(bytes.subarray(offsets[i], offsets[i + 1]));
}

/**
 * Per row, views on the List columns' value buffers (no copy). Checks what the trainer relies on:
 * both lists of a row have the same length and every index addresses a column below dim.
 */
function sparseRows(batch: RecordBatch, rows: number, dim: number): SparseRow[] {
  const indexData = columnData(batch, COLUMNS.indices);
  const valueData = columnData(batch, COLUMNS.values);
  const indexOffsets = indexData.valueOffsets as Int32Array;
  const valueOffsets = valueData.valueOffsets as Int32Array;
  const indexValues = indexData.children[0].values as Int32Array;
  const valueValues = valueData.children[0].values as Float32Array;
  const out = new Array<SparseRow>(rows);
  for (let i = 0; i < rows; i++) {
    const [start, end] = [indexOffsets[indexData.offset + i], indexOffsets[indexData.offset + i + 1]];
    const [valueStart, valueEnd] = [valueOffsets[valueData.offset + i], valueOffsets[valueData.offset + i + 1]];
    if (end - start !== valueEnd - valueStart) {
      throw new ShardError(`shard row ${i} of a batch has ${end - start} indices but ${valueEnd - valueStart} values; the file is inconsistent, re-run Embed`, {
        code: 'SHARD_COLUMN_TYPE',
        context: { row: i, indices: end - start, values: valueEnd - valueStart },
      });
    }
    const indices = indexValues.subarray(start, end);
    for (let k = 0; k < indices.length; k++) {
      if (indices[k] < 0 || indices[k] >= dim) {
        throw new ShardError(
          `shard row ${i} of a batch has index ${indices[k]}, outside 0 … ${dim - 1} (metadata dim ${dim}); the file is inconsistent, re-run Embed`,
          {
            code: 'SHARD_DIM_MISMATCH',
            context: { row: i, index: indices[k], dim },
          },
        );
      }
    }
    out[i] = { indices, values: valueValues.subarray(valueStart, valueEnd) };
  }
  return out;
}
