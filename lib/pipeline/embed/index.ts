/**
 * The Embed stage: datasets streamed from S3, split by the rule Prepare shares, embedded by the
 * fitted encoders and written as Arrow feature shards under a content-addressed prefix.
 */
export { EmbedError, type EmbedErrorCode } from '#lib/pipeline/embed/errors.ts';
export { splitRouter, type SplitRouter } from '#lib/domain/run/index.ts';
export { routedRows, splitRows, trainRowSource, type DatasetSource, type RoutedRow } from '#lib/pipeline/embed/rows.ts';
export { SUCCESS_MARKER, runEmbed, shardKey, EmbedMarker, type EmbedOptions } from '#lib/pipeline/embed/embed.ts';
