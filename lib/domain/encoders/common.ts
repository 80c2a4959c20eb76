import { Graph, type Value } from '#lib/domain/graph/index.ts';
import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { EncoderError } from '#lib/domain/encoders/errors.ts';
import { EMBEDDING_OUTPUT, ENCODER_METADATA_KEY, type EncoderDescriptor, type FittedEncoder } from '#lib/domain/encoders/types.ts';

/** Rows of the train split; a fit may iterate it more than once. */
export type RowSource = () => AsyncIterable<ValidatedRow>;

/** x / ‖x‖₂ per row; a zero row stays zero instead of turning into NaN. */
export function l2Normalize(g: Graph, x: Value, options: { axis?: number } = {}): Value {
  const axis = options.axis ?? -1;
  return g.scope('l2', () => {
    const norm = g.sqrt(g.reduceSum(g.square(x), { axes: [axis], keepdims: true }));
    const safe = g.where(g.greater(norm, 0), norm, 1);
    return g.div(x, safe);
  });
}

/** Serializes an encoder graph with its descriptor in the metadata and returns the FittedEncoder. */
export function finishEncoder(g: Graph, embedding: Value, descriptor: Omit<EncoderDescriptor, 'output'>, summary: Record<string, unknown>): FittedEncoder {
  g.output(embedding, EMBEDDING_OUTPUT);
  const full: EncoderDescriptor = { ...descriptor, output: EMBEDDING_OUTPUT };
  const model = g.toModel({
    name: `agentflow-${descriptor.kind}-encoder`,
    docString: `agentflow ${descriptor.kind} base model: raw input → float32 [batch, ${descriptor.dimension}] embedding`,
    metadata: { [ENCODER_METADATA_KEY]: JSON.stringify(full) },
  });
  return { kind: descriptor.kind, model, dimension: descriptor.dimension, inputs: descriptor.inputs, summary };
}

export function fitFailed(message: string, context: Record<string, unknown> = {}): EncoderError {
  return new EncoderError(message, { code: 'ENCODER_FIT', context });
}

/** Reads a text field of a validated row, failing with the field's name when it is not text. */
export function textOf(row: ValidatedRow, field: string): string {
  const value = row.input[field];
  if (typeof value !== 'string') {
    throw new EncoderError(
      `row input "${field}" is ${value === undefined ? 'missing' : JSON.stringify(value)}, expected text; validate rows against the spec whose base model reads "${field}"`,
      {
        code: 'ENCODER_INPUT',
        context: { field },
      },
    );
  }
  return value;
}
