import * as ort from 'onnxruntime-node';
import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { modelMetadata } from '#lib/domain/graph/index.ts';
import { EncoderError } from '#lib/domain/encoders/errors.ts';
import { textOf } from '#lib/domain/encoders/common.ts';
import { SparseTextEncoder } from '#lib/domain/encoders/sparseText.ts';
import type { SparseRow } from '#lib/domain/shards/index.ts';
import { tokenizationFromJson, type Tokenization } from '#lib/domain/encoders/tokenize.ts';
import { ENCODER_METADATA_KEY, type EncoderDescriptor, type EncoderInput, type FittedEncoder } from '#lib/domain/encoders/types.ts';

export interface LoadEncoderOptions {
  /** Chosen explicitly: ORT does not fall back from CUDA to CPU. Default `['cpu']`. */
  executionProviders?: ort.InferenceSession.SessionOptions['executionProviders'];
  intraOpNumThreads?: number;
}

/** The descriptor stored in a fitted encoder's metadata. */
export function encoderDescriptor(model: Uint8Array): EncoderDescriptor {
  const metadata = modelMetadata(model);
  const text = metadata[ENCODER_METADATA_KEY];
  if (text === undefined) {
    throw new EncoderError(`the model has no "${ENCODER_METADATA_KEY}" metadata, so it is not a fitted agentflow encoder; fit it with fitEncoder`, {
      code: 'ENCODER_MODEL',
      context: { keys: Object.keys(metadata) },
    });
  }
  try {
    return JSON.parse(text) as EncoderDescriptor;
  } catch (cause) {
    throw new EncoderError(`metadata "${ENCODER_METADATA_KEY}" is not JSON; the encoder file is damaged, fit it again`, { code: 'ENCODER_MODEL', cause });
  }
}

/** A fitted encoder in an ONNX Runtime session: rows in, float32 rows × dimension out. */
export class Encoder {
  readonly kind: EncoderDescriptor['kind'];
  readonly dimension: number;
  readonly inputs: readonly EncoderInput[];

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly descriptor: EncoderDescriptor,
    private readonly tokenization: Tokenization | undefined,
    private readonly sparseText: SparseTextEncoder | undefined,
  ) {
    this.kind = descriptor.kind;
    this.dimension = descriptor.dimension;
    this.inputs = descriptor.inputs;
  }

  /** Whether `encodeSparse` works: the TF-IDF text encoder, whose rows are almost all zeros. */
  get sparse(): boolean {
    return this.sparseText !== undefined;
  }

  /** The rows as sparse TF-IDF rows, equal to `encode`'s dense rows (see `SparseTextEncoder`); TF-IDF text encoders only. */
  encodeSparse(rows: readonly ValidatedRow[]): SparseRow[] {
    if (!this.sparseText) {
      throw new EncoderError(`the ${this.kind} encoder has dense output; only the TF-IDF text encoder encodes sparse rows, call encode`, {
        code: 'ENCODER_MODEL',
        context: { kind: this.kind },
      });
    }
    return this.sparseText.encode(rows);
  }

  static async load(model: Uint8Array, options: LoadEncoderOptions = {}): Promise<Encoder> {
    const descriptor = encoderDescriptor(model);
    const tokenization =
      descriptor.tokenization === undefined ? undefined : tokenizationFromJson(descriptor.tokenization.tokenizerJson, descriptor.tokenization.maxLength);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model, {
        executionProviders: options.executionProviders ?? ['cpu'],
        ...(options.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: options.intraOpNumThreads }),
      });
    } catch (cause) {
      throw new EncoderError(`ONNX Runtime cannot load the ${descriptor.kind} encoder (${(cause as Error).message}); check the execution providers`, {
        code: 'ENCODER_MODEL',
        context: { kind: descriptor.kind },
        cause,
      });
    }
    if (!session.outputNames.includes(descriptor.output)) {
      await session.release();
      throw new EncoderError(
        `the model has no output "${descriptor.output}" (outputs: ${session.outputNames.join(', ')}); an export model is run by its own session, not as an encoder`,
        {
          code: 'ENCODER_MODEL',
          context: { outputs: session.outputNames },
        },
      );
    }
    const sparseText = descriptor.kind === 'text' ? SparseTextEncoder.fromModel(model, { field: descriptor.inputs[0].fields[0] }) : undefined;
    return new Encoder(session, descriptor, tokenization, sparseText);
  }

  /** The ORT feeds for a batch of rows, as `encode` builds them (exposed for tests and export checks). */
  feeds(rows: readonly ValidatedRow[]): Record<string, ort.Tensor> {
    return encoderFeeds(this.descriptor, rows, this.tokenization);
  }

  /** Embeds rows: rows.length × dimension, row-major. */
  async encode(rows: readonly ValidatedRow[]): Promise<Float32Array> {
    if (rows.length === 0) return new Float32Array(0);
    const feeds = this.feeds(rows);
    let result: ort.InferenceSession.ReturnType;
    try {
      result = await this.session.run(feeds);
    } catch (cause) {
      throw new EncoderError(`the ${this.kind} encoder failed on a batch of ${rows.length} rows: ${(cause as Error).message}`, {
        code: 'ENCODER_RUN',
        context: { kind: this.kind, rows: rows.length },
        cause,
      });
    }
    const output = result[this.descriptor.output];
    const data = output.data as Float32Array;
    if (output.type !== 'float32' || data.length !== rows.length * this.dimension) {
      throw new EncoderError(
        `the ${this.kind} encoder returned ${output.type} [${output.dims.join(', ')}] for ${rows.length} rows, expected float32 [${rows.length}, ${this.dimension}]`,
        {
          code: 'ENCODER_MODEL',
          context: { dims: output.dims, type: output.type },
        },
      );
    }
    for (const tensor of Object.values(result)) if (tensor !== output) tensor.dispose();
    return data;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export function loadEncoder(model: Uint8Array, options: LoadEncoderOptions = {}): Promise<Encoder> {
  return Encoder.load(model, options);
}

/** Embeds rows with a loaded encoder, or loads a fitted one for the call. */
export async function encodeRows(encoder: Encoder | FittedEncoder, rows: readonly ValidatedRow[]): Promise<Float32Array> {
  if (encoder instanceof Encoder) return encoder.encode(rows);
  const loaded = await Encoder.load(encoder.model);
  try {
    return await loaded.encode(rows);
  } finally {
    await loaded.release();
  }
}

/**
 * The ORT feeds of an encoder (or of an export model built on one) for a batch of rows, from the
 * descriptor in its metadata. Serving uses this to turn records into model inputs.
 */
export function encoderFeeds(
  descriptor: EncoderDescriptor,
  rows: readonly ValidatedRow[],
  tokenization: Tokenization | undefined = descriptor.tokenization &&
    tokenizationFromJson(descriptor.tokenization.tokenizerJson, descriptor.tokenization.maxLength),
): Record<string, ort.Tensor> {
  const batch = rows.length;
  const feeds: Record<string, ort.Tensor> = {};
  let tokens: TokenBatch | undefined;
  for (const input of descriptor.inputs) {
    switch (input.role) {
      case 'text':
        feeds[input.name] = new ort.Tensor(
          'string',
          rows.map((row) => textOf(row, input.fields[0])),
          [batch],
        );
        break;
      case 'numeric': {
        const width = input.fields.length;
        const data = new Float32Array(batch * width);
        rows.forEach((row, i) => {
          input.fields.forEach((field, j) => {
            const value = row.input[field];
            if (value === null || value === undefined) data[i * width + j] = Number.NaN;
            else if (typeof value === 'number') data[i * width + j] = value;
            else throw inputError(field, value, 'a number or null');
          });
        });
        feeds[input.name] = new ort.Tensor('float32', data, [batch, width]);
        break;
      }
      case 'categorical': {
        const data: string[] = [];
        for (const row of rows) {
          for (const field of input.fields) {
            const value = row.input[field];
            if (value === null || value === undefined) data.push('');
            else if (typeof value === 'string') data.push(value);
            else throw inputError(field, value, 'a category name or null');
          }
        }
        feeds[input.name] = new ort.Tensor('string', data, [batch, input.fields.length]);
        break;
      }
      case 'features': {
        const dimension = Number(input.shape[1]);
        feeds[input.name] = new ort.Tensor('float32', featureBatch(rows, input.fields[0], dimension), [batch, dimension]);
        break;
      }
      case 'token_ids':
        tokens ??= tokenBatch(rows, input.fields[0], tokenization);
        feeds[input.name] = new ort.Tensor('int64', tokens.ids, [batch, tokens.length]);
        break;
      case 'attention_mask':
        tokens ??= tokenBatch(rows, input.fields[0], tokenization);
        feeds[input.name] = new ort.Tensor('int64', tokens.mask, [batch, tokens.length]);
        break;
    }
  }
  return feeds;
}

type TokenBatch = { ids: BigInt64Array; mask: BigInt64Array; length: number };

function tokenBatch(rows: readonly ValidatedRow[], field: string, tokenization: Tokenization | undefined): TokenBatch {
  if (!tokenization) {
    throw new EncoderError('the encoder takes token ids but its metadata carries no tokenizer; fit it again with fitEncoder', { code: 'ENCODER_MODEL' });
  }
  return tokenization.encodeBatch(rows.map((row) => textOf(row, field)));
}

/**
 * The rows' vectors, row-major. One row's Float32Array (a packed `{"b64"}` vector, decoded once) is
 * the batch as it is: serving's one-record requests skip an allocation and a copy.
 */
function featureBatch(rows: readonly ValidatedRow[], field: string, dimension: number): Float32Array {
  const only = rows.length === 1 ? rows[0].input[field] : undefined;
  if (only instanceof Float32Array && only.length === dimension) return only;
  const data = new Float32Array(rows.length * dimension);
  for (let i = 0; i < rows.length; i += 1) {
    const value = rows[i].input[field];
    if (!Array.isArray(value) && !(value instanceof Float32Array) && !(value instanceof Float64Array))
      throw inputError(field, value, `an array of ${dimension} numbers`);
    if (value.length !== dimension) throw inputError(field, `${value.length} values`, `${dimension} values (baseModel.dimension)`);
    data.set(value as ArrayLike<number>, i * dimension);
  }
  return data;
}

function inputError(field: string, value: unknown, expected: string): EncoderError {
  const shown = typeof value === 'string' ? value : JSON.stringify(value)?.slice(0, 80);
  return new EncoderError(`row input "${field}" is ${shown}, expected ${expected}; validate rows against the spec first`, {
    code: 'ENCODER_INPUT',
    context: { field },
  });
}
