import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { formatProblems, readRecords, trimsCsv, validateRecord, type SplitName, type ValidatedRow } from '#lib/domain/datasets/index.ts';
import type { RowSource } from '#lib/domain/encoders/index.ts';
import type { DatasetEntry, RunManifest } from '#lib/domain/run/index.ts';
import type { Spec } from '#lib/domain/spec/index.ts';
import { EmbedError } from '#lib/pipeline/embed/errors.ts';
import { splitRouter } from '#lib/domain/run/index.ts';

/** Where datasets are read from: the artifact store's `getStream` fits. */
export interface DatasetSource {
  getStream(uri: string): Promise<Readable>;
}

export interface RoutedRow {
  /** 0-based record index in its dataset: the key the split hashes. */
  index: number;
  line: number;
  split: SplitName;
  row: ValidatedRow;
}

export function fileNameOf(uri: string): string {
  return uri.slice(uri.lastIndexOf('/') + 1);
}

/**
 * Streams one dataset's validated rows with their split, holding one record at a time. The bytes
 * are hashed on the way and checked against the digest Prepare recorded once the file ends, so a
 * dataset replaced after Prepare fails the stage instead of mixing two versions of the data.
 */
export async function* routedRows(
  source: DatasetSource,
  context: { spec: Spec; dataset: DatasetEntry; route: ReturnType<typeof splitRouter> },
): AsyncGenerator<RoutedRow> {
  const { spec, dataset, route } = context;
  const file = fileNameOf(dataset.uri);
  const hash = createHash('sha256');
  const stream = await source.getStream(dataset.uri);
  async function* hashed(): AsyncGenerator<Uint8Array | string> {
    for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
      hash.update(chunk);
      yield chunk;
    }
  }
  let index = 0;
  for await (const { line, record } of readRecords(hashed(), { file, format: dataset.format, trim: trimsCsv(spec) })) {
    const { row, problems } = validateRecord(record, spec, { file, line });
    if (!row) {
      throw new EmbedError(`${dataset.uri} changed after Prepare checked it: ${formatProblems(problems)}; start a new run so Prepare checks the new data`, {
        code: 'EMBED_ROW_INVALID',
        context: { uri: dataset.uri, line, problems },
      });
    }
    yield { index, line, split: route(dataset.role, splitKeyOf(dataset, record, index)), row };
    index += 1;
  }
  const digest = hash.digest('hex');
  if (digest !== dataset.digest) {
    throw new EmbedError(`${dataset.uri} has sha256 ${digest}, but Prepare recorded ${dataset.digest}: the file was replaced after Prepare; start a new run`, {
      code: 'EMBED_DATASET_CHANGED',
      context: { uri: dataset.uri, digest, expected: dataset.digest },
    });
  }
}

/**
 * One split's rows across the run's datasets, streamed in dataset order. A dataset that cannot
 * hold rows of the split is not read: a validation or holdout file holds only its own split, and
 * the train file gives none to a split that has its own file.
 */
export async function* splitRows(
  source: DatasetSource,
  manifest: Pick<RunManifest, 'spec' | 'datasets' | 'split'>,
  split: SplitName,
): AsyncGenerator<RoutedRow> {
  const route = splitRouter(manifest);
  const ownFile = manifest.datasets.some((d) => d.role === split && split !== 'train');
  for (const dataset of manifest.datasets) {
    if (dataset.role === 'train' ? ownFile : dataset.role !== split) continue;
    for await (const routed of routedRows(source, { spec: manifest.spec, dataset, route })) {
      if (routed.split === split) yield routed;
    }
  }
}

/**
 * The train split's rows as fitting wants them: the train dataset's rows that the split rule
 * keeps for training (never the validation or holdout rows), re-read on every iteration.
 */
export function trainRowSource(source: DatasetSource, manifest: Pick<RunManifest, 'spec' | 'datasets' | 'split'>): RowSource {
  if (!manifest.datasets.some((d) => d.role === 'train')) {
    throw new EmbedError('the manifest lists no train dataset; Prepare always records one, so the manifest is damaged', { code: 'EMBED_MANIFEST' });
  }
  return async function* () {
    for await (const routed of splitRows(source, manifest, 'train')) yield routed.row;
  };
}

/** The key the split rule hashes: a feedback row's prediction id (stable as feedback grows), any other row's index. */
export function splitKeyOf(dataset: Pick<DatasetEntry, 'source'>, record: Record<string, unknown>, index: number): number | string {
  return dataset.source === 'feedback' && typeof record.predictionId === 'string' ? `feedback:${record.predictionId}` : index;
}
