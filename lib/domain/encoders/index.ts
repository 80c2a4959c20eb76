/**
 * Base models as ONNX graphs from raw input to a float32 `[batch, dimension]` embedding: fitted
 * on the train split (text TF-IDF, tabular scaling and one-hot, plain features, or a
 * bring-your-own transformer with its tokenizer.json), run in ONNX Runtime, and merged in front
 * of the heads for export.
 */
export { EncoderError, type EncoderErrorCode } from '#lib/domain/encoders/errors.ts';
export {
  EMBEDDING_OUTPUT,
  ENCODER_METADATA_KEY,
  type EncoderDescriptor,
  type EncoderInput,
  type EncoderInputRole,
  type FittedEncoder,
} from '#lib/domain/encoders/types.ts';
export type { RowSource } from '#lib/domain/encoders/common.ts';
export { encoderCandidates, fitEncoder, type FitEncoderOptions } from '#lib/domain/encoders/fit.ts';
export {
  TEXT_PAD_TOKEN,
  fitTextEncoder,
  fitTextVocabulary,
  lowercaseLikeOnnx,
  ngramsOf,
  textTokenizerModel,
  textTokens,
  tokenizeInGraph,
  type TextVocabulary,
} from '#lib/domain/encoders/text.ts';
export {
  DEFAULT_BINS,
  QUANTILES_SUMMARY_KEY,
  defaultEmbeddingDimension,
  fitTabularEncoder,
  fitTabularStats,
  numericEncodingCandidates,
  numericEncodings,
  quantileBoundaries,
  type CategoricalColumnStats,
  type NumericColumnStats,
  type TabularStats,
} from '#lib/domain/encoders/tabular.ts';
export { SparseTextEncoder } from '#lib/domain/encoders/sparseText.ts';
export { fitFeaturesEncoder } from '#lib/domain/encoders/features.ts';
export { fitOnnxEncoder, type ResolveFile } from '#lib/domain/encoders/onnx.ts';
export { createTokenization, tokenizationFromJson, type TokenBatch, type Tokenization } from '#lib/domain/encoders/tokenize.ts';
export { Encoder, encodeRows, encoderDescriptor, encoderFeeds, loadEncoder, type LoadEncoderOptions } from '#lib/domain/encoders/runtime.ts';
export { composeModels, mergeEncoderAndHeads, upgradeDefaultOpset, type ComposeOptions, type MergeOptions } from '#lib/domain/encoders/merge.ts';
