import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fitEncodersInStore, prepareRun, PrepareError, PROBLEMS_FILE } from '#lib/pipeline/prepare/index.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { ModelRegistry, RunLog } from '#lib/adapters/registry/index.ts';
import { stageRunInputs } from '#lib/adapters/local/stageInputs.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
const store = () => new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket });
const registry = () => new ModelRegistry({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
const runLog = () => new RunLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
const deps = () => ({ store: store(), runLog: runLog(), fitEncoders: fitEncodersInStore(store()) });

async function specFolder(spec: Record<string, unknown>, files: Record<string, string>): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'agentflow-prepare-'));
  await writeFile(join(folder, 'spec.json'), JSON.stringify(spec));
  for (const [name, text] of Object.entries(files)) await writeFile(join(folder, name), text);
  return join(folder, 'spec.json');
}

describe('Prepare', () => {
  it('checks the example dataset, fits the text encoder on the train split and writes the manifest', async () => {
    const runId = 'prep-ok-1';
    const staged = await stageRunInputs('examples/support-triage/spec.json', runId, store());

    const output = await prepareRun({ runId, project: 'support-triage', specUri: staged.specUri, executionId: 'local:test' }, deps());
    const retried = await prepareRun({ runId, project: 'support-triage', specUri: staged.specUri, executionId: 'local:test' }, deps());

    expect(retried).toEqual(output);
    const manifest = await store().getJson(output.manifestUri, RunManifest);
    expect(manifest.datasets).toHaveLength(1);
    expect(manifest.datasets[0]).toMatchObject({ role: 'train', rows: 200, format: 'jsonl' });
    expect(manifest.datasets[0].labelledPerTask.urgent).toBe(185);
    expect(manifest.encoders).toHaveLength(1);
    expect(manifest.encoders[0]).toMatchObject({ id: 'e0', kind: 'text' });
    expect(manifest.encoders[0].dimension).toBeGreaterThan(10);
    expect(output.featuresUri).toBe(store().uri(keys.featuresPrefix(manifest.featuresDigest)));
    const run = await runLog().getRun('support-triage', runId);
    expect(run).toMatchObject({ status: 'running', stage: 'Prepare', specDigest: manifest.specDigest });
  });

  it('lists every bad row of every dataset and writes no manifest', async () => {
    const runId = 'prep-bad-1';
    const specPath = await specFolder(
      {
        project: 'bad-data',
        baseModel: { kind: 'features', dimension: 2 },
        datasets: { train: 'train.jsonl', validation: 'valid.jsonl' },
        split: { holdoutFraction: 0.2 },
        tasks: [
          { name: 'urgent', type: 'binary' },
          { name: 'stars', type: 'regression' },
        ],
      },
      {
        'train.jsonl': [
          '{"features":[1,2],"urgent":1,"stars":3}',
          '{"features":[1,2],"urgent":"maybe","stars":3}',
          '{"features":[1],"urgent":0,"stars":4}',
          '{"features":[0,1],"urgent":0,"stars":4}',
        ].join('\n'),
        'valid.jsonl': ['{"features":[1,2],"urgent":1,"stars":"lots"}', '{"features":[1,2],"urgent":0,"stars":1}'].join('\n'),
      },
    );
    const staged = await stageRunInputs(specPath, runId, store());

    const error = await prepareRun({ runId, project: 'bad-data', specUri: staged.specUri, executionId: 'local:test' }, deps()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PrepareError);
    const message = (error as PrepareError).message;
    expect(message).toMatch(/the datasets have 4 problems/);
    expect(message).toMatch(/train\.jsonl, task "urgent": 1 problem:\n {2}line 2: label "maybe"/);
    expect(message).not.toMatch(/fix: add "positive"/);
    expect(message).toMatch(/train\.jsonl, column "features": 1 problem:\n {2}line 3: field "features" has 1 values, expected 2/);
    expect(message).toMatch(/valid\.jsonl, task "stars": 1 problem:\n {2}line 1: label "lots"/);
    const list = (error as PrepareError).context.problemsUri as string;
    expect(message).toContain(`every problem, one a line: ${list}`);
    expect(list).toBe(store().uri(keys.runFile(runId, PROBLEMS_FILE)));
    expect(await store().exists(keys.runManifest(runId))).toBe(false);
    expect(await registry().listVersions('bad-data')).toEqual([]);
  });

  it("summarizes 100,000 bad labels in a screenful with the positive to add, and writes every one to the run's problems file", async () => {
    const runId = 'prep-many-bad-1';
    const rows = Array.from({ length: 100_000 }, (_, i) => `${i % 7},${i % 10 === 0 ? 'churned' : 'stayed'}`);
    const specPath = await specFolder(
      {
        project: 'churn-csv',
        baseModel: { kind: 'tabular', numeric: ['tenure'] },
        datasets: { train: 'train.csv' },
        tasks: [{ name: 'churn', type: 'binary', label: 'status' }],
      },
      // The space after each comma, as many public CSVs have it.
      { 'train.csv': ['tenure, status', ...rows.map((row) => row.replace(',', ', '))].join('\n') },
    );
    const staged = await stageRunInputs(specPath, runId, store());

    const error = (await prepareRun({ runId, project: 'churn-csv', specUri: staged.specUri, executionId: 'local:test' }, deps()).catch(
      (e: unknown) => e,
    )) as PrepareError;

    expect(error).toMatchObject({ name: 'PrepareError', code: 'DATASETS_INVALID' });
    const lines = error.message.split('\n');
    expect(lines.length).toBeLessThanOrEqual(40);
    expect(lines).toEqual([
      'the datasets have 100,000 problems; nothing was trained or registered. Fix them and run again:',
      'train.csv, task "churn": 100,000 problems, the first 3:',
      '  line 2: label "churned" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
      '  line 3: label "stayed" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
      '  line 4: label "stayed" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
      '  fix: add "positive": "churned" to task "churn" (the value that means 1; values seen: "stayed" 90,000, "churned" 10,000); every other value then counts as 0',
      `every problem, one a line: ${store().uri(keys.runFile(runId, PROBLEMS_FILE))}`,
    ]);
    const list = Buffer.from(await store().getBytes(keys.runFile(runId, PROBLEMS_FILE)))
      .toString('utf8')
      .trimEnd()
      .split('\n');
    expect(list).toHaveLength(100_000);
    expect(list[0]).toBe(
      'train.csv line 2, task "churn": label "churned" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
    );
    expect(list.at(-1)).toMatch(/^train\.csv line 100001, task "churn": label "stayed"/);
  });

  it('reads those labels once the spec names the positive value, the spaces after the commas trimmed', async () => {
    const runId = 'prep-positive-1';
    const rows = Array.from({ length: 200 }, (_, i) => `${i % 7}, ${i % 4 === 0 ? 'churned' : 'stayed'}`);
    const specPath = await specFolder(
      {
        project: 'churn-csv',
        baseModel: { kind: 'tabular', numeric: ['tenure'] },
        datasets: { train: 'train.csv' },
        tasks: [{ name: 'churn', type: 'binary', label: 'status', positive: 'churned' }],
      },
      { 'train.csv': ['tenure, status', ...rows].join('\n') },
    );
    const staged = await stageRunInputs(specPath, runId, store());

    const output = await prepareRun({ runId, project: 'churn-csv', specUri: staged.specUri, executionId: 'local:test' }, deps());

    const manifest = await store().getJson(output.manifestUri, RunManifest);
    expect(manifest.datasets[0].classCounts.churn).toEqual({ '0': 150, '1': 50 });
    expect(await store().exists(keys.runFile(runId, PROBLEMS_FILE))).toBe(false);

    // The other value as positive flips every label: the cached features must not be reused.
    const flipped = JSON.parse(await readFile(specPath, 'utf8'));
    flipped.tasks[0].positive = 'stayed';
    await writeFile(specPath, JSON.stringify(flipped));
    const restaged = await stageRunInputs(specPath, 'prep-positive-2', store());
    const other = await prepareRun({ runId: 'prep-positive-2', project: 'churn-csv', specUri: restaged.specUri, executionId: 'local:test' }, deps());
    const otherManifest = await store().getJson(other.manifestUri, RunManifest);
    expect(otherManifest.datasets[0].classCounts.churn).toEqual({ '0': 50, '1': 150 });
    expect(otherManifest.featuresDigest).not.toBe(manifest.featuresDigest);
  });

  it('fits numericEncoding auto as three candidate encoders, their boundaries and fill from the train split only', async () => {
    const runId = 'prep-auto-1';
    const line = (gain: number | string, rich: number) => JSON.stringify({ gain, rich });
    const specPath = await specFolder(
      {
        project: 'numeric-auto',
        baseModel: { kind: 'tabular', numeric: ['gain'], numericEncoding: 'auto', bins: 4 },
        datasets: { train: 'train.jsonl', validation: 'valid.jsonl', holdout: 'holdout.jsonl' },
        tasks: [{ name: 'rich', type: 'binary' }],
      },
      {
        'train.jsonl': Array.from({ length: 40 }, (_, i) => line(i % 10 === 9 ? '?' : i, i % 2)).join('\n'),
        // Far outside the train range: a boundary from these rows would show.
        'valid.jsonl': [line(1e6, 1), line(2e6, 0)].join('\n'),
        'holdout.jsonl': [line(-1e6, 1), line(3e6, 0)].join('\n'),
      },
    );
    const staged = await stageRunInputs(specPath, runId, store());

    const output = await prepareRun({ runId, project: 'numeric-auto', specUri: staged.specUri, executionId: 'local:test' }, deps());

    const manifest = await store().getJson(output.manifestUri, RunManifest);
    const numeric = manifest.encoders.map((e) => (e.summary.numeric as { encoding: string; fill: number; indicator: boolean }[])[0]);
    expect(manifest.encoders.map((e) => [e.id, e.dimension])).toEqual([
      ['e0', 2],
      ['e1', 2],
      ['e2', 5],
    ]);
    expect(numeric.map((n) => [n.encoding, n.indicator])).toEqual([
      ['standard', true],
      ['quantile', true],
      ['ple', true],
    ]);
    // The 36 present train values are 0…38 without 9, 19, 29 and 39.
    expect(manifest.encoders[1].summary.quantiles).toEqual({ gain: { boundaries: [0, 9.5, 19, 28.5, 38], levels: [0, 0.25, 0.5, 0.75, 1] } });
    expect(numeric[1].fill).toBe(19);
    const event = (await runLog().listRunEvents('numeric-auto', runId)).find((e) => e.eventKey === 'prepare');
    const eventEncoders = event?.detail.encoders as { summary: Record<string, unknown> }[];
    expect(eventEncoders.map((e) => [Object.hasOwn(e.summary, 'quantiles'), (e.summary.numeric as { bins?: number }[])[0].bins])).toEqual([
      [false, undefined],
      [false, 4],
      [false, 4],
    ]);
  });

  it('refuses a spec started under another project name', async () => {
    const runId = 'prep-mismatch-1';
    const staged = await stageRunInputs('examples/support-triage/spec.json', runId, store());

    const error = await prepareRun({ runId, project: 'other', specUri: staged.specUri, executionId: 'local:test' }, deps()).catch((e: unknown) => e);

    expect(error).toMatchObject({ name: 'PrepareError', code: 'SPEC_PROJECT_MISMATCH' });
  });
});
