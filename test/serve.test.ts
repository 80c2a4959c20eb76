import { createHmac, randomBytes } from 'node:crypto';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CardTask } from '#lib/domain/run/index.ts';
import { ModelRegistry, RewardLog } from '#lib/adapters/registry/index.ts';
import { createRng } from '#lib/domain/random/index.ts';
import {
  createServeContext,
  handleFeedbackEvent,
  handleInferEvent,
  hourKey,
  PredictionIds,
  driftProjection,
  projectRows,
  samplePrefix,
  ServeMetrics,
  startServer,
  type InferResponse,
  SampleBatch,
  type ServeContext,
  type ServeDependencies,
  type ServeOptions,
} from '#lib/serve/index.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { buildFeaturesModel, publishModel, urlEvent } from './helpers/servingModels.ts';
import { stageDependencies } from '#lib/pipeline/dependencies.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
const TASKS: CardTask[] = [
  { name: 'churn', type: 'binary', metric: 'auc' },
  { name: 'topic', type: 'multiclass', classes: ['billing', 'bug', 'praise'], metric: 'macroF1' },
  { name: 'ltv', type: 'regression', metric: 'rmse' },
];
const DIMENSION = 4;

let deps: ServeDependencies;
let registry: ModelRegistry;
let rewards: RewardLog;
let store: ArtifactStore;

interface Logged {
  level: string;
  message: string;
  extra: Record<string, unknown>[];
}

function context(options: ServeOptions = {}): { context: ServeContext; logs: Logged[]; metrics: Record<string, unknown>[] } {
  const logs: Logged[] = [];
  const metrics: Record<string, unknown>[] = [];
  const log =
    (level: string) =>
    (message: string, ...extra: Record<string, unknown>[]) =>
      logs.push({ level, message, extra });
  return {
    context: createServeContext(deps, {
      drift: false,
      rng: createRng(7),
      logger: { info: log('info'), warn: log('warn'), error: log('error') },
      metricsSink: (line) => metrics.push(JSON.parse(line) as Record<string, unknown>),
      ...options,
    }),
    logs,
    metrics,
  };
}

/** Registers `count` versions of a small three-task model and makes the first production, the rest challengers. */
async function servedProject(project: string, count: number, options: { share?: number } = {}): Promise<number[]> {
  const versions: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const { model, encoder } = buildFeaturesModel({ dimension: DIMENSION, tasks: TASKS, seed: 10 + i, bias: i });
    versions.push((await publishModel({ registry, store, project, runId: `${project}-run-${i}`, model, encoder, tasks: TASKS })).version);
  }
  await registry.setServingSet(
    project,
    { production: versions[0], challengers: versions.slice(1).map((version) => ({ version, trafficShare: options.share ?? 0.01 })) },
    { expectedRevision: 0 },
  );
  return versions;
}

const body = (result: { body: string }) => JSON.parse(result.body) as Record<string, unknown> & { error?: { code: string; message: string } };
const record = (values: number[] = [0.5, -1, 2, 0.25]) => ({ features: values });

beforeAll(async () => {
  deps = stageDependencies(aws.config, aws.clients);
  ({ registry, rewards, store } = deps);
  await servedProject('shop', 1);
});

describe('infer', () => {
  it('returns every task of every record, as a bare ORT session computes them, with a recorded prediction id per record', async () => {
    const { context: ctx, metrics } = context();
    const records = [record(), record([0, 0, 0, 0]), record([3, -2, 1, 1])];
    const result = await handleInferEvent(urlEvent({ project: 'shop', records }), ctx);
    expect(result.statusCode).toBe(200);
    const response = JSON.parse(result.body) as InferResponse;

    const version = await registry.getVersion('shop', response.version);
    const session = await ort.InferenceSession.create(await store.getBytes(version.lineage.artifactUri));
    const expected = await session.run({ features: new ort.Tensor('float32', Float32Array.from(records.flatMap((r) => r.features)), [3, DIMENSION]) });
    await session.release();

    expect(response.predictions).toHaveLength(3);
    response.predictions.forEach((prediction, i) => {
      const churn = prediction.outputs.churn as { probability: number; label: number };
      expect(churn.probability).toBeCloseTo((expected['churn.probability'].data as Float32Array)[i], 6);
      expect(churn.label).toBe(churn.probability >= 0.5 ? 1 : 0);
      const topic = prediction.outputs.topic as { probabilities: Record<string, number>; label: string };
      const row = Array.from((expected['topic.probabilities'].data as Float32Array).subarray(i * 3, i * 3 + 3));
      expect(Object.keys(topic.probabilities)).toEqual(['billing', 'bug', 'praise']);
      expect(Object.values(topic.probabilities).map((p) => Number(p.toFixed(6)))).toEqual(row.map((p) => Number(p.toFixed(6))));
      expect(topic.label).toBe(['billing', 'bug', 'praise'][row.indexOf(Math.max(...row))]);
      expect((prediction.outputs.ltv as { value: number }).value).toBeCloseTo((expected['ltv.value'].data as Float32Array)[i], 6);
      expect(prediction.version).toBe(response.version);
    });
    expect(new Set(response.predictions.map((p) => p.predictionId)).size).toBe(3);
    for (const prediction of response.predictions) {
      // The id itself says which version served it, and only for this project.
      expect((await ctx.predictionIds.verify('shop', prediction.predictionId)).version).toBe(response.version);
      await expect(ctx.predictionIds.verify('other', prediction.predictionId)).rejects.toMatchObject({ code: 'PREDICTION_NOT_FOUND' });
    }
    const routed = metrics.find((m) => m.RoutedRequests === 1);
    expect(routed).toMatchObject({ project: 'shop', version: String(response.version), RoutedRecords: 3 });
    expect(routed?._aws).toMatchObject({ CloudWatchMetrics: [{ Namespace: 'agentflow', Dimensions: [['project', 'version']] }] });
    await ctx.close();
  });

  it('coerces values as training data is coerced (a vector written as a JSON string)', async () => {
    const { context: ctx } = context();
    const result = await handleInferEvent(urlEvent({ project: 'shop', records: [{ features: '[0.5, -1, 2, 0.25]' }, record()] }), ctx);
    const response = JSON.parse(result.body) as InferResponse;
    expect(result.statusCode).toBe(200);
    expect(response.predictions[0].outputs).toEqual(response.predictions[1].outputs);
    await ctx.close();
  });

  it('takes a vector packed as {"b64": little-endian float32} and answers exactly as for the JSON numbers', async () => {
    const { context: ctx } = context();
    const values = [0.5, -1, 2, 0.25];
    const packed = { features: { b64: Buffer.from(Float32Array.from(values).buffer).toString('base64') } };
    const result = await handleInferEvent(urlEvent({ project: 'shop', records: [packed, record(values)] }), ctx);
    const response = JSON.parse(result.body) as InferResponse;
    // Alone, the decoded vector is the model's input as it is (a slice of a shared buffer, fed by its offset).
    const alone = await Promise.all(
      [packed, record(values)].map(
        async (r) => (JSON.parse((await handleInferEvent(urlEvent({ project: 'shop', records: [r] }), ctx)).body) as InferResponse).predictions[0].outputs,
      ),
    );
    expect(result.statusCode).toBe(200);
    expect(response.predictions[0].outputs).toEqual(response.predictions[1].outputs);
    expect(alone[0]).toEqual(alone[1]);
    expect(alone[0]).toEqual(response.predictions[0].outputs);
    await ctx.close();
  });

  it("samples drift from a features model's input, its embedding passed through, with no output added to the file", async () => {
    const clock = () => Date.parse('2026-03-01T10:00:00Z');
    const { context: ctx } = context({ drift: { sampleRate: 1, batchRecords: 100 }, clock });
    const records = [record(), record([3, -2, 1, 1])];
    const response = JSON.parse((await handleInferEvent(urlEvent({ project: 'shop', records }), ctx)).body) as InferResponse;
    const loaded = await ctx.models.get('shop', response.version);
    await ctx.close();

    expect(loaded.embedding).toEqual({ from: 'input', name: 'features' });
    expect(loaded.session.outputNames.filter((name) => name.startsWith('encoder/'))).toEqual([]);
    const [sample] = await store.list(samplePrefix('shop', hourKey(clock()), response.version));
    const batch = await store.getJson(sample.key, SampleBatch);
    expect(batch.projections).toEqual(projectRows(Float32Array.from(records.flatMap((r) => r.features)), driftProjection({ dimension: DIMENSION })));
    expect(batch.excludedFeatures).toBeUndefined();
  });

  it('writes one EMF line per routed request, its latency kept to the microsecond', () => {
    const lines: string[] = [];
    const serveMetrics = new ServeMetrics({ sink: (line) => lines.push(line), clock: () => 1_700_000_000_123 });
    serveMetrics.routed('shop', 12, 3, 0.4375);
    expect(JSON.parse(lines[0])).toEqual({
      _aws: {
        Timestamp: 1_700_000_000_123,
        CloudWatchMetrics: [
          {
            Namespace: 'agentflow',
            Dimensions: [['project', 'version']],
            Metrics: [
              { Name: 'RoutedRequests', Unit: 'Count' },
              { Name: 'RoutedRecords', Unit: 'Count' },
              { Name: 'InferLatencyMs', Unit: 'Milliseconds' },
            ],
          },
        ],
      },
      project: 'shop',
      version: '12',
      RoutedRequests: 1,
      RoutedRecords: 3,
      InferLatencyMs: 0.438,
    });
  });

  const packed = (bytes: number[] | string) => ({
    features: { b64: typeof bytes === 'string' ? bytes : Buffer.from(Float32Array.from(bytes).buffer).toString('base64') },
  });
  const tooBig = { project: 'shop', records: Array.from({ length: 40 }, () => record(Array.from({ length: DIMENSION }, () => 0.123456789))) };
  it.each([
    ['a body that is not JSON', 400, 'REQUEST_INVALID', urlEvent('{"project": "shop", records: [', { raw: true }), /body is not JSON .*send a JSON object/],
    ['an empty body', 400, 'REQUEST_INVALID', urlEvent('', { raw: true }), /body is empty/],
    ['a JSON array instead of an object', 400, 'REQUEST_INVALID', urlEvent([1, 2]), /body is \[1,2\]; send a JSON object such as/],
    ['no project', 400, 'REQUEST_INVALID', urlEvent({ records: [record()] }), /project is missing/],
    [
      'a project that is not a name',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'Shop Inc', records: [record()] }),
      /project: "Shop Inc" is not a project name/,
    ],
    ['no records', 400, 'REQUEST_INVALID', urlEvent({ project: 'shop' }), /records is missing/],
    [
      'records that are not an array',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: { features: [1] } }),
      /records: is \{"features":\[1\]\}; send an array of records/,
    ],
    ['empty records', 400, 'REQUEST_INVALID', urlEvent({ project: 'shop', records: [] }), /records is empty; send 1 to 8 records/],
    [
      'more records than allowed',
      400,
      'REQUEST_TOO_LARGE',
      urlEvent({ project: 'shop', records: Array.from({ length: 9 }, () => record()) }),
      /records has 9 records; send at most 8 per request/,
    ],
    ['a body over the byte limit', 400, 'REQUEST_TOO_LARGE', urlEvent(tooBig), /the body is \d+ bytes; send at most 1024 bytes/],
    [
      'a body under the limit in characters but over it in UTF-8 bytes',
      400,
      'REQUEST_TOO_LARGE',
      urlEvent({ project: 'shop', records: [{ features: '€'.repeat(340) }] }),
      /the body is 10\d\d bytes; send at most 1024 bytes/,
    ],
    ['an unknown top-level field', 400, 'REQUEST_INVALID', urlEvent({ project: 'shop', records: [record()], model: 3 }), /unknown field "model"/],
    [
      'a version that is not a number',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [record()], version: 'latest' }),
      /version: is "latest"; pin a version by its number/,
    ],
    [
      'a record that is not an object',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [record(), 5] }),
      /records\[1\]: is 5; each record is an object of the model's input fields \(features\)/,
    ],
    [
      'a field of the wrong type',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [{ features: 'abc' }] }),
      /records\[0\]\.features: field "features" is "abc", expected an array of 4 numbers/,
    ],
    [
      'a vector of the wrong length',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [record([1, 2])] }),
      /records\[0\]\.features: field "features" has 2 values, expected 4/,
    ],
    [
      'a vector holding text',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [record([1, 2, 3, 'x' as unknown as number])] }),
      /field "features" item 3 is "x", not a finite number/,
    ],
    [
      'a packed vector of the wrong length',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [packed([1, 2, 3])] }),
      /records\[0\]\.features: field "features"\.b64 holds 12 bytes \(3 float32 values\), expected 16 bytes for 4 values .*little-endian float32/,
    ],
    [
      'a packed vector that is not base64',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [packed('not base64!')] }),
      /field "features"\.b64 is "not base64!", not base64 text; pack the 4 values/,
    ],
    [
      'a packed vector holding NaN',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [packed([1, Number.NaN, 3, 4])] }),
      /field "features"\.b64 item 1 is NaN, not a finite number/,
    ],
    [
      'a packed vector with other keys',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [{ features: { b64: 'AAAA', dtype: 'f4' } }] }),
      /field "features" has keys "dtype" next to "b64"/,
    ],
    [
      'a missing input field',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [record(), {}] }),
      /records\[1\]\.features: field "features" is missing/,
    ],
    [
      'an unknown field in a record',
      400,
      'REQUEST_INVALID',
      urlEvent({ project: 'shop', records: [record(), { ...record(), colour: 'red' }] }),
      /records\[1\]\.colour: field "colour" is not an input of this model \(inputs: features\); remove it/,
    ],
    ['a project nobody serves', 404, 'PROJECT_NOT_SERVED', urlEvent({ project: 'nobody', records: [record()] }), /project "nobody" has no serving set/],
    [
      'a pinned version outside the serving set',
      404,
      'VERSION_NOT_SERVED',
      urlEvent({ project: 'shop', records: [record()], version: 99 }),
      /version 99 is not in the serving set of shop \(serving: 1\)/,
    ],
    ['a GET', 405, 'METHOD_NOT_ALLOWED', urlEvent({ project: 'shop', records: [record()] }, { method: 'GET' }), /GET is not allowed; infer takes POST/],
    ['an event that is not a Function URL request', 400, 'REQUEST_INVALID', { detail: {} }, /not a Function URL request/],
  ])('answers %s with a %i (%s) that says what to fix', async (_name, status, code, event, message) => {
    const { context: ctx } = context({ limits: { maxRecords: 8, maxBodyBytes: 1024 } });
    const result = await handleInferEvent(event, ctx);
    expect(result.statusCode).toBe(status);
    expect(result.headers['content-type']).toBe('application/json');
    expect(body(result).error?.code).toBe(code);
    expect(body(result).error?.message).toMatch(message);
    await ctx.close();
  });

  it('lists every bad record in one 400, by index and field', async () => {
    const { context: ctx } = context();
    const result = await handleInferEvent(urlEvent({ project: 'shop', records: [record(), { features: null }, record(), { feature: [1, 2, 3, 4] }] }), ctx);
    expect(result.statusCode).toBe(400);
    const error = body(result).error as unknown as { message: string; details: { problems: Array<{ record: number; field: string }> } };
    expect(error.message).toMatch(
      /^3 problems in the records are not valid input for shop version 1: records\[1\]\.features: .*; records\[3\]\.feature: .*; records\[3\]\.features: field "features" is missing/,
    );
    expect(error.details.problems.map((p) => [p.record, p.field])).toEqual([
      [1, 'features'],
      [3, 'feature'],
      [3, 'features'],
    ]);
    await ctx.close();
  });
});

describe('model integrity', () => {
  it('refuses a version whose file changed after registration and keeps serving the previous one', async () => {
    const [good, corrupted] = await servedProject('corrupt', 2, { share: 0.5 });
    const bytes = await store.getBytes(keys.model('corrupt', corrupted));
    bytes[bytes.length - 1] ^= 0xff;
    await store.putBytes(keys.model('corrupt', corrupted), bytes);

    const { context: ctx, logs } = context();
    const served = new Set<number>();
    for (let i = 0; i < 20; i += 1) {
      const result = await handleInferEvent(urlEvent({ project: 'corrupt', records: [record()] }), ctx);
      expect(result.statusCode).toBe(200);
      served.add((JSON.parse(result.body) as InferResponse).version);
    }
    expect([...served]).toEqual([good]);
    expect(ctx.models.isRefused('corrupt', corrupted)).toBe(true);
    const refusal = logs.find((l) => l.message === 'model version refused');
    expect(refusal?.level).toBe('error');
    expect(JSON.stringify(refusal?.extra)).toMatch(/MODEL_INTEGRITY/);

    const pinned = await handleInferEvent(urlEvent({ project: 'corrupt', records: [record()], version: corrupted }), ctx);
    expect(pinned.statusCode).toBe(503);
    expect(body(pinned).error?.message).toMatch(
      new RegExp(`corrupt version ${corrupted}: .*model.onnx has sha256 [0-9a-f]{64}, but the registry recorded [0-9a-f]{64}; .*refused`),
    );
    await ctx.close();
  });

  it('answers 503 naming the reason when no version of the serving set can be served', async () => {
    const [only] = await servedProject('broken', 1);
    const bytes = await store.getBytes(keys.model('broken', only));
    await store.putBytes(keys.model('broken', only), bytes.subarray(0, bytes.length - 10));
    const { context: ctx } = context();
    const result = await handleInferEvent(urlEvent({ project: 'broken', records: [record()] }), ctx);
    expect(result.statusCode).toBe(503);
    expect(body(result).error?.code).toBe('NO_SERVABLE_VERSION');
    expect(body(result).error?.message).toMatch(/no version of broken can be served right now \(serving set: \d+\): broken version \d+: .*sha256/);
    await ctx.close();
  });
});

describe('routing', () => {
  it('sends traffic to the version whose arm statistics are better, even when it is only a challenger', async () => {
    const [weak, strong] = await servedProject('route', 2, { share: 0.01 });
    for (let i = 0; i < 60; i += 1) {
      await rewards.recordFeedback('route', `seed-${i}`, i < 30 ? (i % 10 === 0 ? 1 : 0) : i % 10 === 0 ? 0 : 1, { version: i < 30 ? weak : strong });
    }
    const { context: ctx } = context({ statsTtlMs: 60_000 });
    const counts = new Map<number, number>();
    for (let i = 0; i < 150; i += 1) {
      const response = JSON.parse((await handleInferEvent(urlEvent({ project: 'route', records: [record()] }), ctx)).body) as InferResponse;
      counts.set(response.version, (counts.get(response.version) ?? 0) + 1);
    }
    expect((counts.get(strong) ?? 0) / 150).toBeGreaterThan(0.9);
    await ctx.close();
  });

  it('routes a simulated stream of 5000 feedback events mostly to the version with the best true reward rate', async () => {
    const versions = await servedProject('sim', 3, { share: 0.005 });
    const rates = new Map([
      [versions[0], 0.3],
      [versions[1], 0.7],
      [versions[2], 0.5],
    ]);
    let nowMs = Date.UTC(2030, 0, 1);
    const { context: ctx } = context({ statsTtlMs: 2000, clock: () => nowMs });
    const rng = createRng(99);
    const served: number[] = [];
    const concurrency = 20;
    for (let done = 0; done < 5000; done += concurrency) {
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          const inferred = await handleInferEvent(urlEvent({ project: 'sim', records: [record()] }), ctx);
          const response = JSON.parse(inferred.body) as InferResponse;
          served.push(response.version);
          const reward = rng.uniform() < rates.get(response.version)! ? 1 : 0;
          const fed = await handleFeedbackEvent(urlEvent({ project: 'sim', predictionId: response.predictions[0].predictionId, reward }), ctx);
          expect(fed.statusCode).toBe(200);
        }),
      );
      nowMs += 200; // twenty requests a fifth of a second: the cached counters refresh every 200 events
    }
    const last = served.slice(-1000);
    expect(last.filter((v) => v === versions[1]).length / last.length).toBeGreaterThanOrEqual(0.9);
    const stats = await rewards.getArmStats('sim', versions);
    expect(stats.reduce((sum, s) => sum + s.count, 0)).toBe(5000);
    await ctx.close();
  }, 240_000);
});

describe('feedback', () => {
  it('credits a reward exactly once: 200, then 409 for the same id, 404 for an unknown one', async () => {
    const { context: ctx, metrics } = context();
    const response = JSON.parse((await handleInferEvent(urlEvent({ project: 'shop', records: [record()] }), ctx)).body) as InferResponse;
    const id = response.predictions[0].predictionId;
    const [before] = await rewards.getArmStats('shop', [response.version]);

    const first = await handleFeedbackEvent(urlEvent({ project: 'shop', predictionId: id, reward: 1 }), ctx);
    expect(first.statusCode).toBe(200);
    expect(body(first)).toEqual({ project: 'shop', predictionId: id, version: response.version, reward: 1 });
    expect(metrics.find((m) => m.OnlineReward === 1)).toMatchObject({ project: 'shop', version: String(response.version) });

    const again = await handleFeedbackEvent(urlEvent({ project: 'shop', predictionId: id, reward: 0 }), ctx);
    expect(again.statusCode).toBe(409);
    expect(body(again).error?.message).toMatch(/already has reward 1 .*feedback counts once/);

    const unknown = await handleFeedbackEvent(urlEvent({ project: 'shop', predictionId: 'never-issued', reward: 1 }), ctx);
    expect(unknown.statusCode).toBe(404);
    expect(body(unknown).error?.message).toMatch(/no prediction "never-issued": it is not an id Infer returned for this project/);
    // A well-formed id with a forged signature, or a real id sent for another version, is as unknown.
    const [version, ...rest] = id.split('.');
    const forged = await handleFeedbackEvent(
      urlEvent({ project: 'shop', predictionId: [version, ...rest.slice(0, -1), 'AAAAAAAAAAAAAAAA'].join('.'), reward: 1 }),
      ctx,
    );
    const otherVersion = await handleFeedbackEvent(urlEvent({ project: 'shop', predictionId: [Number(version) + 1, ...rest].join('.'), reward: 1 }), ctx);
    expect([forged.statusCode, otherVersion.statusCode]).toEqual([404, 404]);

    const [after] = await rewards.getArmStats('shop', [response.version]);
    expect(after.count - before.count).toBe(1);
    expect(after.successes - before.successes).toBe(1);
    await ctx.close();
  });

  it.each([
    [
      'a reward that is not 0 or 1 for a bernoulli project',
      { project: 'shop', predictionId: 'x', reward: 0.5 },
      /reward 0.5 is not 0 or 1: shop routes on 0\/1 rewards .*set the project's reward kind to gaussian/,
    ],
    ['a reward sent as text', { project: 'shop', predictionId: 'x', reward: '1' }, /reward: is "1"; send the reward as a finite number/],
    ['no prediction id', { project: 'shop', reward: 1 }, /predictionId is missing/],
    ['a prediction id with "#"', { project: 'shop', predictionId: 'a#b', reward: 1 }, /predictionId: "a#b" contains "#"/],
  ])('answers %s with a 400', async (_name, request, message) => {
    const { context: ctx } = context();
    const result = await handleFeedbackEvent(urlEvent(request), ctx);
    expect(result.statusCode).toBe(400);
    expect(body(result).error?.message).toMatch(message);
    await ctx.close();
  });

  it('accepts real-valued rewards once the project routes on gaussian rewards', async () => {
    await servedProject('scores', 1);
    const { context: ctx } = context();
    await ctx.settings.put('scores', { rewardKind: 'gaussian' });
    const response = JSON.parse((await handleInferEvent(urlEvent({ project: 'scores', records: [record()] }), ctx)).body) as InferResponse;
    const result = await handleFeedbackEvent(urlEvent({ project: 'scores', predictionId: response.predictions[0].predictionId, reward: 3.25 }), ctx);
    expect(result.statusCode).toBe(200);
    const [stats] = await rewards.getArmStats('scores', [response.version]);
    expect(stats).toMatchObject({ count: 1, sum: 3.25 });
    await ctx.close();
  });
});

describe('local HTTP server', () => {
  it('serves POST /infer and POST /feedback with the Function URL shapes, and refuses other routes', async () => {
    const { context: ctx } = context({ limits: { maxBodyBytes: 2048 } });
    const server = await startServer({ context: ctx });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const post = (path: string, payload: string) =>
        fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });

      const inferred = await post('/infer', JSON.stringify({ project: 'shop', records: [record(), record([1, 1, 1, 1])] }));
      expect(inferred.status).toBe(200);
      expect(inferred.headers.get('content-type')).toBe('application/json');
      const response = (await inferred.json()) as InferResponse;
      expect(response).toMatchObject({ project: 'shop', version: 1 });
      expect(response.predictions).toHaveLength(2);
      expect(Object.keys(response.predictions[0].outputs)).toEqual(['churn', 'topic', 'ltv']);

      const fed = await post('/feedback', JSON.stringify({ project: 'shop', predictionId: response.predictions[1].predictionId, reward: 0 }));
      expect(fed.status).toBe(200);
      expect(await fed.json()).toMatchObject({ version: 1, reward: 0 });
      expect((await post('/feedback', JSON.stringify({ project: 'shop', predictionId: response.predictions[1].predictionId, reward: 0 }))).status).toBe(409);

      const badJson = await post('/infer', '{nope');
      expect(badJson.status).toBe(400);
      expect(((await badJson.json()) as { error: { message: string } }).error.message).toMatch(/not JSON/);
      const huge = await post('/infer', JSON.stringify({ project: 'shop', records: Array.from({ length: 200 }, () => record()) }));
      expect(huge.status).toBe(400);
      expect(((await huge.json()) as { error: { message: string } }).error.message).toMatch(/the body is \d+ bytes; send at most 2048 bytes/);
      expect((await fetch(`${server.url}/infer`)).status).toBe(405);
      const missing = await post('/predict', '{}');
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { message: string } }).error.message).toMatch(/use POST \/infer or POST \/feedback/);
    } finally {
      await server.close();
    }
  });
});

describe('signed prediction ids', () => {
  it('refuses feedback once the retention has passed, and shares one signing key between servers', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    // Two servers: each its own reward log over the one table.
    const server = () => ({
      rewards: new RewardLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.rewardTable }),
      clock: () => now,
      retentionDays: 2,
    });
    const first = new PredictionIds(server());
    const second = new PredictionIds(server());

    const [issued] = await first.issue('shop', 7);
    const verified = await second.verify('shop', issued);
    now += 3 * 86_400_000;
    const late = await second.verify('shop', issued).catch((error: unknown) => error);

    expect(verified).toEqual({ version: 7, issuedAt: new Date('2026-01-01T00:00:00Z') });
    expect(late).toMatchObject({ code: 'PREDICTION_NOT_FOUND', message: expect.stringMatching(/made 3 days ago; feedback is accepted for 2 days/) });
  });

  it("signs a request once: every record gets its own id, and an index past the request's count is refused", async () => {
    const ids = new PredictionIds({ rewards });
    const batch = await ids.issue('shop', 3, 40);
    expect(new Set(batch).size).toBe(40);
    for (const id of [batch[0], batch[39]]) await expect(ids.verify('shop', id)).resolves.toMatchObject({ version: 3 });
    const [version, issued, nonce, , count, mac] = batch[39].split('.');
    const unissued = (index: string, n: string) => ids.verify('shop', [version, issued, nonce, index, n, mac].join('.')).catch((error: unknown) => error);
    // Index 40 (base 36 "14") of a 40-record request was never issued; nor may the count be raised to make room for it.
    expect(await unissued('14', count)).toMatchObject({ code: 'PREDICTION_NOT_FOUND' });
    expect(await unissued('14', '15')).toMatchObject({ code: 'PREDICTION_NOT_FOUND' });
    await expect(ids.issue('shop', 3, 0)).rejects.toThrow(/count 0 is not a request's record count/);
  });

  it('signs with HMAC-SHA256 under the key kept in the reward table, so only a holder of that key can make an id', async () => {
    const ids = new PredictionIds({ rewards });
    const [id] = await ids.issue('shop', 5, 2);
    const stored = await aws.clients.dynamodb.send(
      new GetCommand({ TableName: aws.config.rewardTable, Key: { pk: 'AGENTFLOW#SERVE', sk: 'PREDICTION_SIGNING_KEY' } }),
    );
    const key = Buffer.from(stored.Item?.key as string, 'base64');
    const [version, issued, nonce, , count, mac] = id.split('.');
    const expected = createHmac('sha256', key).update(['shop', version, issued, nonce, count].join('\u0000')).digest().subarray(0, 12).toString('base64url');
    const otherKey = createHmac('sha256', randomBytes(32))
      .update(['shop', version, issued, nonce, count].join('\u0000'))
      .digest()
      .subarray(0, 12)
      .toString('base64url');

    expect(mac).toBe(expected);
    await expect(ids.verify('shop', [version, issued, nonce, '0', count, otherKey].join('.'))).rejects.toMatchObject({ code: 'PREDICTION_NOT_FOUND' });
  });
});
