import type { BaseModelSpec } from '#lib/domain/spec/index.ts';
import type { RowSource } from '#lib/domain/encoders/common.ts';
import { fitFeaturesEncoder } from '#lib/domain/encoders/features.ts';
import { fitOnnxEncoder, type ResolveFile } from '#lib/domain/encoders/onnx.ts';
import { fitTabularEncoder, numericEncodingCandidates } from '#lib/domain/encoders/tabular.ts';
import { fitTextEncoder } from '#lib/domain/encoders/text.ts';
import type { FittedEncoder } from '#lib/domain/encoders/types.ts';

export interface FitEncoderOptions {
  /** Reads the bring-your-own model and its tokenizer.json (local path or s3:// URI). */
  resolveFile?: ResolveFile;
}

/**
 * Fits a base model on the train split. `rows` must yield the train rows only (validation and
 * holdout never shape the encoder) and may be iterated more than once.
 */
export function fitEncoder(baseModel: BaseModelSpec, rows: RowSource, options: FitEncoderOptions = {}): Promise<FittedEncoder> {
  switch (baseModel.kind) {
    case 'text':
      return fitTextEncoder(baseModel, rows);
    case 'tabular':
      return fitTabularEncoder(baseModel, rows);
    case 'features':
      return Promise.resolve(fitFeaturesEncoder(baseModel));
    case 'onnx':
      return fitOnnxEncoder(baseModel, rows, options.resolveFile);
  }
}

/**
 * The encoders to fit for the spec's base models, in order: each model once, except a tabular
 * model with `numericEncoding: "auto"`, which is one candidate per encoding for screening.
 */
export function encoderCandidates(baseModels: readonly BaseModelSpec[]): BaseModelSpec[] {
  return baseModels.flatMap((model): BaseModelSpec[] => (model.kind === 'tabular' ? numericEncodingCandidates(model) : [model]));
}
