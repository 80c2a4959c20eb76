import type { CategoryEmbedding } from '#lib/domain/run/index.ts';
import type { BaseModelKind } from '#lib/domain/spec/index.ts';

/**
 * How a graph input is filled from `ValidatedRow.input`:
 * - `text`: string `[batch]`, the field's text;
 * - `numeric`: float32 `[batch, fields]`, one column per field, NaN where the value is null (imputed in the graph);
 * - `categorical`: string `[batch, fields]`, one column per field, `''` where the value is null (all-zero one-hot);
 * - `features`: float32 `[batch, dimension]`, the field's vector;
 * - `token_ids` / `attention_mask`: int64 `[batch, seq]` from tokenizing the field's text in JavaScript.
 */
export type EncoderInputRole = 'text' | 'numeric' | 'categorical' | 'features' | 'token_ids' | 'attention_mask';

export interface EncoderInput {
  /** The graph input's name. */
  name: string;
  dtype: 'string' | 'float32' | 'int64';
  /** Symbolic dims are names (`batch`, `sequence`). */
  shape: (string | number)[];
  role: EncoderInputRole;
  /** The record fields it is built from, in column order. */
  fields: string[];
}

/** Everything needed to run a fitted encoder; stored in the model's metadata so one ONNX file is self-contained. */
export interface EncoderDescriptor {
  kind: BaseModelKind;
  dimension: number;
  inputs: EncoderInput[];
  /** The graph output holding the float32 `[batch, dimension]` embedding. */
  output: string;
  /** Bring-your-own encoders only: what JavaScript tokenization needs. */
  tokenization?: { maxLength: number; tokenizerJson: string };
}

/** A base model fitted on the train split: one ONNX file from raw input to an embedding. */
export interface FittedEncoder {
  kind: BaseModelKind;
  /** ONNX ModelProto bytes; metadata `agentflow.encoder` holds the EncoderDescriptor. */
  model: Uint8Array;
  dimension: number;
  inputs: EncoderInput[];
  /** Facts for the run report (vocabulary size, columns, categories, …). */
  summary: Record<string, unknown>;
  /** Tabular only: the categorical columns given as index features for the heads' learned tables. */
  categoryEmbeddings?: CategoryEmbedding[];
}

/** The model metadata key holding the EncoderDescriptor as JSON. */
export const ENCODER_METADATA_KEY = 'agentflow.encoder';
/** Every encoder graph names its embedding output so. */
export const EMBEDDING_OUTPUT = 'embedding';
