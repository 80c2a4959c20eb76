import { createHash } from 'node:crypto';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  AsyncByteQueue,
  Data,
  Field,
  FixedSizeList,
  Float32,
  Int32,
  List,
  makeData,
  RecordBatch,
  RecordBatchStreamWriter,
  Struct,
  Uint8,
  Utf8,
  vectorFromArray,
  type Schema,
} from 'apache-arrow';
import { ShardError } from '#lib/domain/shards/errors.ts';
import type { SparseRow } from '#lib/domain/shards/batch.ts';
import {
  buildSchema,
  SHARD_FORMAT_VERSION,
  SPARSE_SHARD_FORMAT_VERSION,
  SPLITS,
  splitType,
  validateTasks,
  type FeatureLayout,
  type ShardMetadata,
  type ShardTask,
  type SplitName,
} from '#lib/domain/shards/schema.ts';

/** What `writeRows` accepts; a `ShardBatch` from the reader fits as it is. */
export interface ShardRows {
  rows: number;
  /** rows × dim, row-major (dense shards); ignored by a sparse writer. */
  features: Float32Array;
  /** One row each (sparse shards): ascending indices below dim and their values. */
  sparse?: readonly SparseRow[];
  /** One entry per task of the shard. Binary 0/1, multiclass class index, regression value; anything where the mask is 0. */
  labels: Record<string, Float32Array>;
  /** One entry per task of the shard: 1 = labelled, 0 = not. */
  masks: Record<string, Uint8Array>;
  /** Dataset row of each row; default: consecutive, continuing from the previous batch. */
  rowIndex?: Int32Array | readonly number[];
  /** Required when the writer has `includeSplit`: codes into `SPLITS` or the names. */
  split?: Uint8Array | readonly SplitName[];
}

export interface ShardWriterOptions {
  dim: number;
  /** `sparse` writes `indices`/`values` List columns instead of `features`. Default `dense`. */
  layout?: FeatureLayout;
  tasks: readonly ShardTask[];
  encoderDigest: string;
  /** Add a `split` column (train / validation / holdout); every batch must then carry `split`. */
  includeSplit?: boolean;
  /** Row index of the first row when batches do not carry `rowIndex`. Default 0. */
  firstRow?: number;
  /**
   * Where the bytes go (a file, an S3 upload body, a hash). The writer waits for `drain`, so a slow
   * sink slows the producer instead of filling memory, and ends the sink in `finish`.
   * Absent: read the bytes from `writer.output`.
   */
  sink?: Writable;
}

export interface ShardSummary {
  rows: number;
  sizeBytes: number;
  /** Hex SHA-256 of the exact bytes emitted: the content address of the shard. */
  sha256: string;
}

/** Collects what the Arrow writer emits so the ShardWriter can forward it with backpressure. */
class CollectingQueue extends AsyncByteQueue {
  private chunks: Uint8Array[] = [];
  override write(value: Uint8Array): undefined {
    if (value.byteLength > 0) this.chunks.push(value);
    return undefined;
  }
  take(): Uint8Array[] {
    const taken = this.chunks;
    this.chunks = [];
    return taken;
  }
}

/** One dictionary shared by every batch, so the IPC stream carries it once. */
const SPLIT_DICTIONARY = vectorFromArray([...SPLITS], new Utf8());

function waitForDrain(target: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      target.off('drain', onDrain);
      target.off('error', onError);
      target.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (error: unknown): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('the destination stream closed before the shard was complete'));
    };
    target.on('drain', onDrain);
    target.on('error', onError);
    target.on('close', onClose);
  });
}

/**
 * Streams a feature shard as Apache Arrow IPC (stream format): the schema with our metadata, one
 * record batch per `writeRows`, then the end-of-stream marker. Nothing is held beyond the batch
 * being written. Features, labels and masks are referenced by Arrow without copying; the encoded
 * batch is copied once into a buffer the sink may keep, so callers may reuse their arrays as soon
 * as `writeRows` resolves.
 */
export class ShardWriter {
  readonly metadata: ShardMetadata;
  readonly schema: Schema;
  /** The IPC bytes, when no sink was given; consume it while writing (it applies backpressure). */
  readonly output: Readable | undefined;

  private readonly target: Writable;
  private readonly ownsTarget: boolean;
  private readonly queue = new CollectingQueue();
  private readonly arrow = new RecordBatchStreamWriter();
  private readonly hash = createHash('sha256');
  private sizeBytes = 0;
  private rowCount = 0;
  private nextRow: number;
  private state: 'open' | 'busy' | 'finished' | 'failed' = 'open';

  constructor(options: ShardWriterOptions) {
    const { dim, encoderDigest } = options;
    if (!Number.isInteger(dim) || dim < 1) {
      throw new ShardError(`ShardWriter: dim ${dim} is not a positive integer`, { code: 'SHARD_OPTIONS_INVALID', context: { dim } });
    }
    if (typeof encoderDigest !== 'string' || encoderDigest.length === 0) {
      throw new ShardError('ShardWriter: encoderDigest is empty; pass the digest of the base model that produced the features', {
        code: 'SHARD_OPTIONS_INVALID',
        context: { encoderDigest },
      });
    }
    this.nextRow = options.firstRow ?? 0;
    const layout = options.layout ?? 'dense';
    if (layout !== 'dense' && layout !== 'sparse') {
      throw new ShardError(`ShardWriter: layout ${JSON.stringify(layout)} is not "dense" or "sparse"`, { code: 'SHARD_OPTIONS_INVALID', context: { layout } });
    }
    this.metadata = {
      formatVersion: layout === 'sparse' ? SPARSE_SHARD_FORMAT_VERSION : SHARD_FORMAT_VERSION,
      dim,
      layout,
      tasks: validateTasks(options.tasks, 'ShardWriter'),
      encoderDigest,
      hasSplit: options.includeSplit === true,
    };
    this.schema = buildSchema(this.metadata);
    if (options.sink) {
      this.target = options.sink;
      this.ownsTarget = false;
      this.output = undefined;
    } else {
      const output = new PassThrough({ highWaterMark: 1 << 20 });
      this.target = output;
      this.ownsTarget = true;
      this.output = output;
    }
    // Writes the schema message into the queue now, so even a shard with no rows is valid Arrow.
    this.arrow.reset(this.queue, this.schema);
  }

  /** Appends one record batch. Resolves once the bytes are handed to the sink (after `drain` if needed). */
  async writeRows(batch: ShardRows): Promise<void> {
    this.expectOpen('writeRows');
    const recordBatch = this.toRecordBatch(batch);
    this.state = 'busy';
    try {
      this.arrow.write(recordBatch);
      this.rowCount += batch.rows;
      if (batch.rowIndex === undefined) this.nextRow += batch.rows;
      await this.flush();
      this.state = 'open';
    } catch (error) {
      this.state = 'failed';
      throw error;
    }
  }

  /** Writes the end-of-stream marker, ends the sink and reports what was written. */
  async finish(): Promise<ShardSummary> {
    this.expectOpen('finish');
    this.state = 'busy';
    try {
      this.arrow.finish();
      await this.flush();
      this.target.end();
      // Our own output is drained by its reader, possibly after we return; an external sink is
      // awaited so the caller knows the bytes are flushed (a file closed, an upload accepted).
      if (!this.ownsTarget) await finished(this.target);
      this.state = 'finished';
      return { rows: this.rowCount, sizeBytes: this.sizeBytes, sha256: this.hash.digest('hex') };
    } catch (error) {
      this.state = 'failed';
      throw error instanceof ShardError ? error : this.sinkFailed(error);
    }
  }

  /**
   * Gives up on the shard: destroys the destination with `reason`, so a consumer such as an S3
   * multipart upload aborts instead of completing a truncated object.
   */
  abort(reason: Error): void {
    if (this.state === 'finished') return;
    this.state = 'failed';
    this.target.destroy(reason);
  }

  private expectOpen(operation: string): void {
    if (this.state !== 'open') {
      const why = this.state === 'busy' ? 'the previous call has not resolved; await each call' : `the writer is ${this.state}`;
      throw new ShardError(`ShardWriter.${operation}: ${why}`, { code: 'SHARD_WRITER_CLOSED', context: { state: this.state } });
    }
  }

  private sinkFailed(cause: unknown): ShardError {
    return new ShardError(`ShardWriter: the destination stream failed after ${this.sizeBytes} bytes; the shard is incomplete, write it again`, {
      code: 'SHARD_SINK_FAILED',
      context: { sizeBytes: this.sizeBytes, rows: this.rowCount },
      cause,
    });
  }

  private async flush(): Promise<void> {
    const chunks = this.queue.take();
    if (chunks.length === 0) return;
    // One copy: the sink may hold on to the buffer after write() returns, while the caller's
    // arrays (which Arrow referenced) may be reused.
    const buffer = Buffer.concat(chunks);
    this.hash.update(buffer);
    this.sizeBytes += buffer.byteLength;
    if (this.target.destroyed || this.target.writableEnded) throw this.sinkFailed(this.target.errored ?? new Error('destination already closed'));
    try {
      if (!this.target.write(buffer)) await waitForDrain(this.target);
    } catch (error) {
      throw this.sinkFailed(error);
    }
  }

  private invalid(message: string, context: Record<string, unknown>): ShardError {
    return new ShardError(`ShardWriter.writeRows: ${message}`, { code: 'SHARD_ROWS_INVALID', context });
  }

  /** Checks the batch against the shard's schema and label rules, then wraps its arrays (no copy). */
  private toRecordBatch(batch: ShardRows): RecordBatch {
    const { dim, tasks, hasSplit } = this.metadata;
    const { rows } = batch;
    if (!Number.isInteger(rows) || rows < 1) throw this.invalid(`rows ${rows} is not a positive integer`, { rows });
    if (this.metadata.layout === 'dense' && (!(batch.features instanceof Float32Array) || batch.features.length !== rows * dim)) {
      throw this.invalid(`features must be a Float32Array of rows × dim = ${rows} × ${dim} = ${rows * dim} values, got ${batch.features?.length}`, {
        rows,
        dim,
        length: batch.features?.length,
      });
    }
    const known = new Set(tasks.map((t) => t.name));
    for (const name of [...Object.keys(batch.labels), ...Object.keys(batch.masks)]) {
      if (!known.has(name)) throw this.invalid(`task "${name}" is not one of this shard's tasks (${[...known].join(', ')})`, { task: name });
    }

    const rowIndex = this.rowIndexOf(batch);
    const children: Data[] = [makeData({ type: new Int32(), length: rows, nullCount: 0, data: rowIndex })];
    if (this.metadata.layout === 'sparse') {
      children.push(...this.sparseColumns(batch, rowIndex));
    } else {
      children.push(
        makeData({
          type: new FixedSizeList(dim, new Field('item', new Float32(), false)),
          length: rows,
          nullCount: 0,
          child: makeData({ type: new Float32(), length: rows * dim, nullCount: 0, data: batch.features }),
        }),
      );
    }
    for (const task of tasks) {
      const label = batch.labels[task.name];
      const mask = batch.masks[task.name];
      if (!(label instanceof Float32Array) || label.length !== rows) {
        throw this.invalid(`labels["${task.name}"] must be a Float32Array of ${rows} values, got ${label?.length ?? 'none'}`, { task: task.name });
      }
      if (!(mask instanceof Uint8Array) || mask.length !== rows) {
        throw this.invalid(`masks["${task.name}"] must be a Uint8Array of ${rows} values, got ${mask?.length ?? 'none'}`, { task: task.name });
      }
      this.checkLabels(task, label, mask, rowIndex);
      children.push(makeData({ type: new Float32(), length: rows, nullCount: 0, data: label }));
      children.push(makeData({ type: new Uint8(), length: rows, nullCount: 0, data: mask }));
    }
    if (hasSplit) {
      children.push(makeData({ type: splitType(), length: rows, nullCount: 0, data: this.splitCodesOf(batch), dictionary: SPLIT_DICTIONARY }));
    } else if (batch.split !== undefined) {
      throw this.invalid('the batch carries split but the writer was created without includeSplit', {});
    }
    return new RecordBatch(this.schema, makeData({ type: new Struct(this.schema.fields), length: rows, nullCount: 0, children }));
  }

  /** The `indices` and `values` List columns: one offsets array shared by both, the rows packed end to end. */
  private sparseColumns(batch: ShardRows, rowIndex: Int32Array): Data[] {
    const { rows } = batch;
    const { dim } = this.metadata;
    const sparse = batch.sparse;
    if (!Array.isArray(sparse) || sparse.length !== rows) {
      throw this.invalid(`a sparse shard needs sparse rows, one per row (${rows}); got ${sparse?.length ?? 'none'}`, { rows });
    }
    const offsets = new Int32Array(rows + 1);
    sparse.forEach((row, i) => {
      if (!(row?.indices instanceof Int32Array) || !(row.values instanceof Float32Array) || row.indices.length !== row.values.length) {
        throw this.invalid(`sparse row ${rowIndex[i]} needs an Int32Array of indices and a Float32Array of as many values`, { row: rowIndex[i] });
      }
      for (let k = 0; k < row.indices.length; k++) {
        const index = row.indices[k];
        if (index < 0 || index >= dim || (k > 0 && index <= row.indices[k - 1])) {
          throw this.invalid(
            `sparse row ${rowIndex[i]}: index ${index} at position ${k} is not ascending within 0 … ${dim - 1}; sort the indices and drop repeats`,
            {
              row: rowIndex[i],
              index,
            },
          );
        }
      }
      offsets[i + 1] = offsets[i] + row.indices.length;
    });
    const indices = new Int32Array(offsets[rows]);
    const values = new Float32Array(offsets[rows]);
    sparse.forEach((row, i) => {
      indices.set(row.indices, offsets[i]);
      values.set(row.values, offsets[i]);
    });
    return [
      makeData({
        type: new List(new Field('item', new Int32(), false)),
        length: rows,
        nullCount: 0,
        valueOffsets: offsets,
        child: makeData({ type: new Int32(), length: indices.length, nullCount: 0, data: indices }),
      }),
      makeData({
        type: new List(new Field('item', new Float32(), false)),
        length: rows,
        nullCount: 0,
        valueOffsets: offsets,
        child: makeData({ type: new Float32(), length: values.length, nullCount: 0, data: values }),
      }),
    ];
  }

  private rowIndexOf(batch: ShardRows): Int32Array {
    const { rows } = batch;
    if (batch.rowIndex === undefined) {
      if (this.nextRow + rows > 2 ** 31) throw this.invalid(`row index ${this.nextRow + rows - 1} exceeds the Int32 row column`, { row: this.nextRow });
      const out = new Int32Array(rows);
      for (let i = 0; i < rows; i++) out[i] = this.nextRow + i;
      return out;
    }
    if (batch.rowIndex.length !== rows) throw this.invalid(`rowIndex has ${batch.rowIndex.length} entries for ${rows} rows`, { rows });
    if (batch.rowIndex instanceof Int32Array) return batch.rowIndex;
    const out = new Int32Array(rows);
    batch.rowIndex.forEach((value, i) => {
      if (!Number.isInteger(value) || value < 0 || value >= 2 ** 31) throw this.invalid(`rowIndex[${i}] ${value} is not an integer in 0 … 2^31 − 1`, { value });
      out[i] = value;
    });
    return out;
  }

  private splitCodesOf(batch: ShardRows): Int8Array {
    const { split, rows } = batch;
    if (split === undefined || split.length !== rows) {
      throw this.invalid(`split must have one entry per row (${rows}) because the writer has includeSplit; got ${split?.length ?? 'none'}`, { rows });
    }
    const codes = new Int8Array(rows);
    for (let i = 0; i < rows; i++) {
      const value = split[i];
      const code = typeof value === 'string' ? SPLITS.indexOf(value) : value;
      if (!Number.isInteger(code) || code < 0 || code >= SPLITS.length) {
        throw this.invalid(`split ${JSON.stringify(value)} at row ${i} is not one of ${SPLITS.join(', ')} (or codes 0-${SPLITS.length - 1})`, {
          value,
          row: i,
        });
      }
      codes[i] = code;
    }
    return codes;
  }

  private checkLabels(task: ShardTask, label: Float32Array, mask: Uint8Array, rowIndex: Int32Array): void {
    const classCount = task.classes?.length ?? 0;
    for (let i = 0; i < label.length; i++) {
      const m = mask[i];
      if (m > 1) throw this.invalid(`task "${task.name}": mask ${m} at row ${rowIndex[i]} is not 0 or 1`, { task: task.name, row: rowIndex[i], mask: m });
      if (m === 0) continue;
      const y = label[i];
      const ok =
        task.type === 'binary' ? y === 0 || y === 1 : task.type === 'multiclass' ? Number.isInteger(y) && y >= 0 && y < classCount : Number.isFinite(y);
      if (!ok) {
        const rule =
          task.type === 'binary' ? 'is not 0 or 1' : task.type === 'multiclass' ? `is not a class index in 0 … ${classCount - 1}` : 'is not a finite number';
        throw this.invalid(`task "${task.name}": label ${y} at row ${rowIndex[i]} ${rule}; fix the label or set its mask to 0`, {
          task: task.name,
          row: rowIndex[i],
          label: y,
        });
      }
    }
  }
}
