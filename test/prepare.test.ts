import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fitEncodersInStore, prepareRun, PrepareError } from '#lib/prepare/index.ts';
import { RunManifest } from '#lib/run/index.ts';
import { Registry } from '#lib/registry/index.ts';
import { stageRunInputs } from '#lib/runtime/stageInputs.ts';
import { ArtifactStore, keys } from '#lib/store/index.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
const store = () => new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket });
const registry = () => new Registry({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
const deps = () => ({ store: store(), registry: registry(), fitEncoders: fitEncodersInStore(store()) });

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
    const run = await registry().getRun('support-triage', runId);
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
        tasks: [{ name: 'urgent', type: 'binary' }, { name: 'stars', type: 'regression' }],
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
    expect(message).toMatch(/train\.jsonl line 2, task "urgent": label "maybe"/);
    expect(message).toMatch(/train\.jsonl line 3/);
    expect(message).toMatch(/valid\.jsonl line 1, task "stars"/);
    expect(await store().exists(keys.runManifest(runId))).toBe(false);
    expect(await registry().listVersions('bad-data')).toEqual([]);
  });

  it('refuses a spec started under another project name', async () => {
    const runId = 'prep-mismatch-1';
    const staged = await stageRunInputs('examples/support-triage/spec.json', runId, store());

    const error = await prepareRun({ runId, project: 'other', specUri: staged.specUri, executionId: 'local:test' }, deps()).catch((e: unknown) => e);

    expect(error).toMatchObject({ name: 'PrepareError', code: 'SPEC_PROJECT_MISMATCH' });
  });
});
