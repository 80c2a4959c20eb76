import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { splitRows, trainRowSource } from '#lib/pipeline/embed/index.ts';
import type { DatasetEntry, RunManifest } from '#lib/pipeline/prepare/index.ts';
import { featuresSpec } from './helpers/specs.ts';

const spec = featuresSpec({
  project: 'split',
  dimension: 1,
  datasets: { train: 's3://bucket-x/train.jsonl', holdout: 's3://bucket-x/holdout.jsonl' },
  split: { validationFraction: 0.3, holdoutFraction: 0 },
  tasks: [{ name: 'y', type: 'regression' }],
});
const lines = (from: number, n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ features: [from + i], y: from + i })).join('\n');
const files: Record<string, string> = { 's3://bucket-x/train.jsonl': lines(0, 200), 's3://bucket-x/holdout.jsonl': lines(1000, 20) };
const entry = (role: DatasetEntry['role'], uri: string): DatasetEntry => ({
  role,
  uri,
  format: 'jsonl',
  digest: createHash('sha256').update(files[uri]).digest('hex'),
  sizeBytes: files[uri].length,
  rows: 0,
  labelledPerTask: {},
  classCounts: {},
});
const manifest: Pick<RunManifest, 'spec' | 'datasets' | 'split'> = {
  spec,
  datasets: [entry('train', 's3://bucket-x/train.jsonl'), entry('holdout', 's3://bucket-x/holdout.jsonl')],
  split: { ...spec.split, holdoutFraction: 0 },
};

function source() {
  const reads: string[] = [];
  return { reads, getStream: async (uri: string) => (reads.push(uri), Readable.from([Buffer.from(files[uri])])) };
}

async function collect(rows: AsyncIterable<{ row: { input: Record<string, unknown> } }>): Promise<number[]> {
  const out: number[] = [];
  for await (const { row } of rows) out.push((row.input.features as number[])[0]);
  return out;
}

describe('splitRows', () => {
  it('reads only the files that can hold the split, and the three splits partition the rows', async () => {
    const holdout = source();
    const validation = source();
    const train = source();

    const holdoutRows = await collect(splitRows(holdout, manifest, 'holdout'));
    const validationRows = await collect(splitRows(validation, manifest, 'validation'));
    const trainRows = await collect(splitRows(train, manifest, 'train'));

    expect(holdout.reads).toEqual(['s3://bucket-x/holdout.jsonl']);
    expect(validation.reads).toEqual(['s3://bucket-x/train.jsonl']);
    expect(train.reads).toEqual(['s3://bucket-x/train.jsonl']);
    expect(holdoutRows).toEqual(Array.from({ length: 20 }, (_, i) => 1000 + i));
    expect([...validationRows, ...trainRows].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(validationRows.length).toBeGreaterThan(40);
    expect(validationRows.length).toBeLessThan(80);
  });

  it('gives fitting the train split only, every time it is iterated', async () => {
    const rows = trainRowSource(source(), manifest);
    const count = async () => {
      let n = 0;
      for await (const _ of rows()) n += 1;
      return n;
    };

    const first = await count();

    expect(await count()).toBe(first);
    expect(first).toBe((await collect(splitRows(source(), manifest, 'train'))).length);
    expect(first).toBeLessThan(200);
  });
});
