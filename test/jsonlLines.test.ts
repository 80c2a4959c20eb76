import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertValidDataset, DatasetError, readRecords, validateDataset, type DatasetProblem, type SourceRecord } from '#lib/domain/datasets/index.ts';
import { parseSpec } from '#lib/domain/spec/index.ts';
import { fitEncodersInStore, prepareRun } from '#lib/pipeline/prepare/index.ts';
import { RunLog } from '#lib/adapters/registry/index.ts';
import { stageRunInputs } from '#lib/adapters/local/stageInputs.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();

/** Bytes in chunks of `size`, so lines and multi-byte characters straddle chunk edges. */
async function* chunked(text: string, size: number): AsyncGenerator<Uint8Array> {
  const bytes = Buffer.from(text, 'utf8');
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}

async function readAll(source: AsyncIterable<Uint8Array | string>, options: { maxLineBytes?: number } = {}) {
  const records: SourceRecord[] = [];
  const problems: DatasetProblem[] = [];
  for await (const record of readRecords(source, { format: 'jsonl', file: 'train.jsonl', onProblem: (problem) => problems.push(problem), ...options }))
    records.push(record);
  return { records, problems };
}

describe('JSONL lines', () => {
  it.each([1, 2, 3, 5, 64, 1 << 16])('are read whole from chunks of %i bytes, multi-byte characters and a BOM included', async (size) => {
    const long = 'ü€𝄞'.repeat(5000);
    const text = `\uFEFF{"text":"a"}\r\n{"text":"${long}"}\n\n{"text":"é"}`;
    const { records, problems } = await readAll(chunked(text, size));
    expect(problems).toEqual([]);
    expect(records).toEqual([
      { line: 1, record: { text: 'a' } },
      { line: 2, record: { text: long } },
      { line: 4, record: { text: 'é' } },
    ]);
  });

  it('reads text chunks as well as bytes', async () => {
    async function* texts(): AsyncGenerator<string> {
      yield '{"a":1}\n{"a"';
      yield ':2}\n';
    }
    expect((await readAll(texts())).records.map((r) => r.record)).toEqual([{ a: 1 }, { a: 2 }]);
  });

  it('refuse a line over the size limit naming the file, the line and the limit, and go on after it', async () => {
    const text = `{"a":1}\n{"text":"${'x'.repeat(5000)}"}\n{"a":3}\n`;
    const { records, problems } = await readAll(chunked(text, 100), { maxLineBytes: 1000 });
    expect(records.map((r) => r.line)).toEqual([1, 3]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'train.jsonl', line: 2 });
    expect(problems[0].message).toMatch(/longer than 1000 bytes/);
    expect(problems[0].message).toMatch(/one record a line/);
    expect(String(problems[0].value).length).toBeLessThan(100);
  });

  it('throw a DatasetError for a line over the default limit of 64 MiB when no onProblem is given', async () => {
    async function* huge(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('{"a":1}\n{"text":"');
      const block = Buffer.alloc(1 << 20, 0x61);
      for (let i = 0; i < 65; i += 1) yield block;
      yield Buffer.from('"}\n');
    }
    const read = async () => {
      for await (const record of readRecords(huge(), { format: 'jsonl', file: 'big.jsonl' })) void record;
    };
    const error = await read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toMatch(/^big\.jsonl line 2: is longer than 67108864 bytes \(64 MiB\)/);
  });
});

describe('a binary file', () => {
  it.each(['jsonl', 'csv'] as const)('as %s is listed with its control bytes escaped, never raw', async (format) => {
    const spec = parseSpec({
      project: 'bin',
      baseModel: { kind: 'text' },
      datasets: { train: `train.${format}` },
      tasks: [{ name: 'urgent', type: 'binary' }],
    });
    // A terminal escape that would clear the screen, NULs, a bell, and every other byte.
    const bytes = Buffer.concat([
      Buffer.from('\u001b[2J\u001b[31mred\u0007\u0000\u0001,x\n'),
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      Buffer.from('\n\u0000\u0000\u001b]0;title\u0007\n'),
    ]);
    async function* source(): AsyncGenerator<Uint8Array> {
      yield bytes;
    }
    const report = await validateDataset(source(), spec, { file: `train.${format}`, format });
    expect(report.problemCount).toBeGreaterThan(0);
    let message = '';
    try {
      assertValidDataset(report);
    } catch (error) {
      message = (error as Error).message;
    }
    const lines = message.split('\n');
    expect(lines.length).toBeGreaterThan(1);
    // eslint-disable-next-line no-control-regex -- asserts that no control character reaches the terminal.
    for (const line of lines) expect(line).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(message).toMatch(/\\u001b/);
  });
});

describe('run events', () => {
  it('carry summaries, not the values of a dataset: a 600 KB category reaches no DynamoDB item', async () => {
    const store = new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket });
    const runLog = new RunLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
    const folder = await mkdtemp(join(tmpdir(), 'agentflow-bigvalue-'));
    const giant = 'z'.repeat(600_000);
    const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ plan: i % 2 === 0 ? giant : 'basic', age: 20 + i, churn: i % 3 === 0 ? 1 : 0 }));
    await writeFile(join(folder, 'train.jsonl'), rows.join('\n'));
    await writeFile(
      join(folder, 'spec.json'),
      JSON.stringify({
        project: 'big-value',
        baseModel: { kind: 'tabular', numeric: ['age'], categorical: ['plan'] },
        datasets: { train: 'train.jsonl' },
        tasks: [{ name: 'churn', type: 'binary' }],
      }),
    );
    const staged = await stageRunInputs(join(folder, 'spec.json'), 'big-value-1', store);

    await prepareRun(
      { runId: 'big-value-1', project: 'big-value', specUri: staged.specUri, executionId: 'local:test' },
      { store, runLog, fitEncoders: fitEncodersInStore(store) },
    );

    const events = await runLog.listRunEvents('big-value', 'big-value-1');
    const prepared = events.find((event) => event.eventKey === 'prepare');
    expect(prepared).toBeDefined();
    const text = JSON.stringify(prepared!.detail);
    expect(text.length).toBeLessThan(20_000);
    expect(text).toContain('basic');
    expect(text).toMatch(/z+…/);
  });
});
