/**
 * Feedback as labelled data (`datasets.feedback`): Infer keeps each served record under its
 * prediction id, `/feedback` labels it (checked like a dataset label), and Prepare turns the
 * labelled predictions into a content-addressed train dataset split by prediction id. On the
 * embedded local AWS, through the real serving handlers and the real Prepare.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { splitOf } from '#lib/domain/datasets/index.ts';
import { splitRows } from '#lib/pipeline/embed/rows.ts';
import { feedbackRecord, fitEncodersInStore, prepareRun } from '#lib/pipeline/prepare/index.ts';
import { ModelRegistry, RewardLog, RunLog } from '#lib/adapters/registry/index.ts';
import { createRng } from '#lib/domain/random/index.ts';
import { RunManifest, cardServingOf, type CardServing, type CardTask } from '#lib/domain/run/index.ts';
import { stageRunInputs } from '#lib/adapters/local/stageInputs.ts';
import { createServeContext, handleFeedbackEvent, handleInferEvent, type InferResponse, type ServeContext, type ServeDependencies } from '#lib/serve/index.ts';
import { parseSpec, SpecError } from '#lib/domain/spec/index.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { stageDependencies } from '#lib/pipeline/dependencies.ts';
import { useLocalAws } from './helpers/localAws.ts';
import { buildFeaturesModel, publishModel, urlEvent } from './helpers/servingModels.ts';

const aws = useLocalAws();
const TASKS: CardTask[] = [
  { name: 'churn', type: 'binary', metric: 'auc' },
  { name: 'topic', type: 'multiclass', classes: ['billing', 'bug', 'praise'], metric: 'macroF1' },
  { name: 'ltv', type: 'regression', metric: 'rmse' },
];
const FEEDBACK_SERVING: CardServing = {
  unknownInputs: 'impute',
  categories: {},
  feedback: {
    tasks: [
      { name: 'churn', type: 'binary', positive: ['yes'] },
      { name: 'topic', type: 'multiclass', classes: ['billing', 'bug', 'praise'] },
      { name: 'ltv', type: 'regression' },
    ],
    rewardIsLabel: 'churn',
  },
};
const SPEC = {
  baseModel: { kind: 'features', dimension: 4 },
  split: { validationFraction: 0.25, holdoutFraction: 0.25, seed: 5 },
  tasks: [
    { name: 'churn', type: 'binary', positive: 'yes' },
    { name: 'topic', type: 'multiclass', classes: ['billing', 'bug', 'praise'] },
    { name: 'ltv', type: 'regression' },
  ],
};

let deps: ServeDependencies;
let rewards: RewardLog;
let registry: ModelRegistry;
let store: ArtifactStore;

beforeAll(async () => {
  deps = stageDependencies(aws.config, aws.clients);
  ({ registry, rewards, store } = deps);
  await servedProject('fb-logged', FEEDBACK_SERVING);
  await servedProject('fb-unlogged');
});

async function servedProject(project: string, serving?: CardServing): Promise<number> {
  const { model, encoder } = buildFeaturesModel({ dimension: 4, tasks: TASKS, seed: 3 });
  const { version } = await publishModel({ registry, store, project, runId: `${project}-run`, model, encoder, tasks: TASKS, ...(serving ? { serving } : {}) });
  await registry.setServingSet(project, { production: version, challengers: [] }, { expectedRevision: 0 });
  return version;
}

function serveContext(metrics: Record<string, unknown>[] = []): ServeContext {
  const quiet = () => undefined;
  return createServeContext(deps, {
    drift: false,
    rng: createRng(3),
    logger: { info: quiet, warn: quiet, error: quiet },
    metricsSink: (line) => metrics.push(JSON.parse(line) as Record<string, unknown>),
  });
}

async function predict(ctx: ServeContext, project: string, records: Record<string, unknown>[]): Promise<string[]> {
  const result = await handleInferEvent(urlEvent({ project, records }), ctx);
  expect(result.statusCode, result.body).toBe(200);
  return (JSON.parse(result.body) as InferResponse).predictions.map((p) => p.predictionId);
}

async function send(ctx: ServeContext, request: Record<string, unknown>) {
  const result = await handleFeedbackEvent(urlEvent(request), ctx);
  return { status: result.statusCode, body: JSON.parse(result.body) as Record<string, unknown> & { error?: { message: string } } };
}

const features = (i: number) => ({ features: [i, -i / 2, 0.25, 1 - i] });

describe('the spec', () => {
  it.each([
    [
      'a task that does not exist',
      { feedback: true },
      'nope',
      /serving\.rewardIsLabel: "nope" is not a task of the spec; name one of the binary tasks \("churn"\)/,
    ],
    ['a task that is not binary', { feedback: true }, 'topic', /"topic" is a multiclass task, and only a 0\/1 reward can be a label/],
    ['a binary task without datasets.feedback', {}, 'churn', /feedback is not kept as data; set datasets\.feedback to true/],
  ])('refuses rewardIsLabel naming %s', (_name, datasets, task, message) => {
    const parse = () => parseSpec({ project: 'p', ...SPEC, datasets: { train: 't.jsonl', ...datasets }, serving: { rewardIsLabel: task } });

    expect(parse).toThrow(SpecError);
    expect(parse).toThrow(message);
  });

  it('carries datasets.feedback to the card as the label rules serving checks feedback against', () => {
    const spec = parseSpec({ project: 'p', ...SPEC, datasets: { train: 't.jsonl', feedback: true }, serving: { rewardIsLabel: 'churn' } });

    expect(cardServingOf(spec, {}).feedback).toEqual(FEEDBACK_SERVING.feedback);
    expect(cardServingOf({ ...spec, datasets: { ...spec.datasets, feedback: undefined } }, {}).feedback).toBeUndefined();
  });
});

describe('serving keeps what a prediction saw', () => {
  it('logs each served record under its prediction id only when the version keeps feedback as data', async () => {
    const ctx = serveContext();

    const [first, second] = await predict(ctx, 'fb-logged', [features(1), features(2)]);
    const [other] = await predict(ctx, 'fb-unlogged', [features(1)]);

    expect(await rewards.getLoggedInputs('fb-logged', first)).toMatchObject({ predictionId: first, record: features(1), rules: FEEDBACK_SERVING.feedback });
    expect((await rewards.getLoggedInputs('fb-logged', second))?.record).toEqual(features(2));
    expect(await rewards.getLoggedInputs('fb-unlogged', other)).toBeUndefined();
    await ctx.close();
  });

  it('skips and counts a record too large for one DynamoDB item instead of failing', async () => {
    const big = { features: [1, 2, 3, 4], note: 'x'.repeat(360 * 1024) };

    const result = await rewards.logPredictionInputs(
      'fb-big',
      [
        { predictionId: 'big-1', record: big },
        { predictionId: 'small-1', record: features(1) },
      ],
      { version: 1, rules: {} },
    );

    expect(result).toEqual({ written: 1, skipped: 1 });
    expect(await rewards.getLoggedInputs('fb-big', 'big-1')).toBeUndefined();
    expect(await rewards.getLoggedInputs('fb-big', 'small-1')).toBeDefined();
  });
});

describe('labels on /feedback', () => {
  it('makes a labelled feedback exactly one training row; a second feedback is refused and relabels nothing', async () => {
    const ctx = serveContext();
    const [id] = await predict(ctx, 'fb-logged', [features(3)]);

    const first = await send(ctx, { project: 'fb-logged', predictionId: id, reward: 0, label: { topic: 'bug', ltv: 12.5 } });
    const again = await send(ctx, { project: 'fb-logged', predictionId: id, reward: 1, label: { topic: 'praise' } });

    expect(first.status, JSON.stringify(first.body)).toBe(200);
    // The project marks churn rewardIsLabel, so the reward 0 labels churn too.
    expect(first.body.labels).toEqual({ topic: 'bug', ltv: 12.5, churn: 0 });
    expect(again.status).toBe(409);
    const rows = (await rewards.labelledFeedbackRows('fb-logged')).filter((row) => row.predictionId === id);
    expect(rows).toEqual([{ predictionId: id, version: expect.any(Number), record: features(3), labels: first.body.labels }]);
    expect((await rewards.getFeedback('fb-logged', id))?.labels).toEqual(first.body.labels);
    await ctx.close();
  });

  it('takes the 0/1 reward as the label of the task the project marks rewardIsLabel, written as its positive value', async () => {
    const ctx = serveContext();
    const [liked, disliked, named] = await predict(ctx, 'fb-logged', [features(4), features(5), features(6)]);

    const one = await send(ctx, { project: 'fb-logged', predictionId: liked, reward: 1 });
    const zero = await send(ctx, { project: 'fb-logged', predictionId: disliked, reward: 0 });
    const explicit = await send(ctx, { project: 'fb-logged', predictionId: named, reward: 1, label: { churn: 'no' } });

    expect([one.body.labels, zero.body.labels, explicit.body.labels]).toEqual([{ churn: 'yes' }, { churn: 0 }, { churn: 'no' }]);
    await ctx.close();
  });

  it.each([
    [
      'a task the version does not have',
      { size: 3 },
      /label names task "size", which fb-logged version \d+ does not have; label one of its tasks: churn, topic, ltv/,
    ],
    ['a class the task does not have', { topic: 'refund' }, /label for task "topic" of fb-logged: label "refund" is not one of billing \| bug \| praise/],
    ['a class in the wrong case', { topic: 'Bug' }, /did you mean "bug"\?/],
    ['a number that is not finite for a regression task', { ltv: 'lots' }, /label for task "ltv" of fb-logged: label "lots" is not a finite number/],
    ['a label that is no value at all', { churn: { yes: true } }, /label for task "churn" of fb-logged: label .* is not a value to compare with "positive"/],
  ])('answers a label naming %s with a 400 and records nothing', async (_name, label, message) => {
    const ctx = serveContext();
    const [id] = await predict(ctx, 'fb-logged', [features(7)]);

    const result = await send(ctx, { project: 'fb-logged', predictionId: id, reward: 1, label });

    expect(result.status).toBe(400);
    expect(result.body.error?.message).toMatch(message);
    expect(await rewards.getFeedback('fb-logged', id)).toBeUndefined();
    await ctx.close();
  });

  it('answers a label for a prediction whose inputs were not kept with a 400 naming datasets.feedback', async () => {
    const ctx = serveContext();
    const [id] = await predict(ctx, 'fb-unlogged', [features(1)]);

    const result = await send(ctx, { project: 'fb-unlogged', predictionId: id, reward: 1, label: { topic: 'bug' } });

    expect(result.status).toBe(400);
    expect(result.body.error?.message).toMatch(/fb-unlogged kept no inputs for prediction .*set "datasets": \{"feedback": true\}/);
    await ctx.close();
  });
});

describe('the feedback rows as a dataset', () => {
  it('turns a labelled prediction into a train row: the served record, the label columns of the labelled tasks only, its prediction id', () => {
    const spec = parseSpec({
      project: 'p',
      datasets: { train: 't.jsonl' },
      ...SPEC,
      tasks: [...SPEC.tasks.slice(0, 2), { name: 'ltv', type: 'regression', label: 'value' }],
    });

    const row = feedbackRecord(spec, {
      predictionId: 'id-1',
      version: 1,
      record: { features: [1], churn: 'stale', value: 9 },
      labels: { topic: 'bug', ltv: 3 },
    });

    expect(row).toEqual({ features: [1], topic: 'bug', value: 3, predictionId: 'id-1' });
  });

  it('Prepare adds the labelled feedback to the train rows, content-addressed, split by prediction id, and the features digest follows it', async () => {
    const project = 'fb-prepare';
    await servedProject(project, FEEDBACK_SERVING);
    const ctx = serveContext();
    const ids = await predict(
      ctx,
      project,
      Array.from({ length: 40 }, (_, i) => features(i)),
    );
    for (const [i, id] of ids.entries()) {
      const status = (await send(ctx, { project, predictionId: id, reward: i % 2, label: { topic: ['billing', 'bug', 'praise'][i % 3] } })).status;
      expect(status).toBe(200);
    }
    const folder = await mkdtemp(join(tmpdir(), 'agentflow-feedrows-'));
    await writeFile(
      join(folder, 'train.jsonl'),
      Array.from({ length: 12 }, (_, i) => JSON.stringify({ ...features(i), churn: i % 2 ? 'yes' : 'no', topic: 'bug', ltv: i })).join('\n'),
    );
    await writeFile(join(folder, 'spec.json'), JSON.stringify({ project, datasets: { train: 'train.jsonl', feedback: true }, ...SPEC }));
    const runLog = new RunLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
    const prepareDeps = { store, runLog, rewards, fitEncoders: fitEncodersInStore(store) };
    const prepare = async (runId: string) => {
      const staged = await stageRunInputs(join(folder, 'spec.json'), runId, store);
      return store.getJson((await prepareRun({ runId, project, specUri: staged.specUri, executionId: 'local:test' }, prepareDeps)).manifestUri, RunManifest);
    };

    const manifest = await prepare('fb-prep-1');
    const again = await prepare('fb-prep-2');

    const feedback = manifest.datasets.find((d) => d.source === 'feedback')!;
    expect(feedback).toMatchObject({ role: 'train', format: 'jsonl', rows: 40, labelledPerTask: { churn: 40, topic: 40, ltv: 0 } });
    expect(feedback.uri).toBe(store.uri(keys.feedbackDataset(project, feedback.digest)));
    expect(again.datasets).toEqual(manifest.datasets);
    expect(again.featuresDigest).toBe(manifest.featuresDigest);
    // Each feedback row lands in the split its prediction id hashes to, whatever its place in the file.
    const expected = { train: 0, validation: 0, holdout: 0 };
    for (const id of ids) expected[splitOf(`feedback:${id}`, { seed: 5, validationFraction: 0.25, holdoutFraction: 0.25 })] += 1;
    const onlyFeedback = { ...manifest, datasets: [feedback] };
    const counted = { train: 0, validation: 0, holdout: 0 };
    for (const split of ['train', 'validation', 'holdout'] as const) for await (const _ of splitRows(store, onlyFeedback, split)) counted[split] += 1;
    expect(counted).toEqual(expected);
    expect(Math.min(counted.train, counted.validation, counted.holdout)).toBeGreaterThan(0);

    const [more] = await predict(ctx, project, [features(50)]);
    expect((await send(ctx, { project, predictionId: more, reward: 1, label: { topic: 'praise' } })).status).toBe(200);
    const grown = await prepare('fb-prep-3');
    expect(grown.datasets.find((d) => d.source === 'feedback')?.rows).toBe(41);
    expect(grown.featuresDigest).not.toBe(manifest.featuresDigest);
    await ctx.close();
  });
});
