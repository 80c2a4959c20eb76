import { Logger } from '@aws-lambda-powertools/logger';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { cardServingOf, type CardTask } from '#lib/domain/run/index.ts';
import { fitEncoder } from '#lib/domain/encoders/index.ts';
import type { TabularBaseModelSpec } from '#lib/domain/spec/index.ts';
import { createRng } from '#lib/domain/random/index.ts';
import {
  createServeContext,
  ServeSettingsStore,
  handleFeedbackEvent,
  handleInferEvent,
  type InferResponse,
  type ServeContext,
  type ServeDependencies,
  type ServeOptions,
} from '#lib/serve/index.ts';
import { buildFeaturesModel, publishModel, urlEvent } from './helpers/servingModels.ts';
import { stageDependencies } from '#lib/pipeline/dependencies.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
const TASKS: CardTask[] = [
  { name: 'churn', type: 'binary', metric: 'auc' },
  { name: 'ltv', type: 'regression', metric: 'rmse' },
];
const DIMENSION = 3;
let deps: ServeDependencies;

function context(options: ServeOptions = {}): ServeContext {
  const quiet = () => undefined;
  return createServeContext(deps, { drift: false, rng: createRng(3), logger: { info: quiet, warn: quiet, error: quiet }, metricsSink: quiet, ...options });
}

const answer = (result: { body: string }) => JSON.parse(result.body) as Record<string, unknown> & { error?: { code: string; message: string } };

beforeAll(async () => {
  deps = stageDependencies(aws.config, aws.clients);
  const { registry, store } = deps;
  const { model, encoder } = buildFeaturesModel({ dimension: DIMENSION, tasks: TASKS, seed: 5, bias: 0 });
  const { version } = await publishModel({ registry, store, project: 'hard', runId: 'hard-run-0', model, encoder, tasks: TASKS });
  await registry.setServingSet('hard', { production: version, challengers: [] }, { expectedRevision: 0 });
  // The same model under a project that routes on real-valued rewards.
  const gauss = await publishModel({ registry, store, project: 'gauss', runId: 'gauss-run-0', model, encoder, tasks: TASKS });
  await registry.setServingSet('gauss', { production: gauss.version, challengers: [] }, { expectedRevision: 0 });
  await new ServeSettingsStore({ rewards: deps.rewards }).put('gauss', { rewardKind: 'gaussian' });

  // Two tabular projects, one per unknown-inputs policy: age (numeric), plan (categorical: free, pro).
  const tabular: TabularBaseModelSpec = { kind: 'tabular', numeric: ['age'], categorical: ['plan'], maxCategories: 5 };
  const train = [
    { age: 30, plan: 'free' },
    { age: 41, plan: 'pro' },
    { age: 25, plan: 'free' },
  ];
  const encoderOf = () =>
    fitEncoder(tabular, async function* () {
      for (const input of train) yield { input, labels: {} };
    });
  for (const unknownInputs of ['impute', 'reject'] as const) {
    const fitted = await encoderOf();
    const built = buildFeaturesModel({ dimension: fitted.dimension, tasks: TASKS, seed: 9, encoder: fitted });
    const serving = cardServingOf({ serving: { unknownInputs } }, fitted.summary);
    const project = `tab-${unknownInputs}`;
    const published = await publishModel({
      registry,
      store,
      project,
      runId: `${project}-run`,
      model: built.model,
      encoder: built.encoder,
      tasks: TASKS,
      serving,
    });
    await registry.setServingSet(project, { production: published.version, challengers: [] }, { expectedRevision: 0 });
  }
});

async function predictionId(ctx: ServeContext, project = 'hard'): Promise<string> {
  const result = await handleInferEvent(urlEvent({ project, records: [{ features: [1, 2, 3] }] }), ctx);
  expect(result.statusCode).toBe(200);
  return (JSON.parse(result.body) as InferResponse).predictions[0].predictionId;
}

describe('prediction ids', () => {
  it('accept feedback for a prediction once, whichever way its index is written (0, 00, 000)', async () => {
    const ctx = context();
    const id = await predictionId(ctx);
    const parts = id.split('.');
    expect(parts[3]).toBe('0');
    const spelled = (index: string) => [...parts.slice(0, 3), index, ...parts.slice(4)].join('.');
    const first = await handleFeedbackEvent(urlEvent({ project: 'hard', predictionId: spelled('0'), reward: 1 }), ctx);
    expect(first.statusCode).toBe(200);
    for (const index of ['00', '000', '0000']) {
      const again = await handleFeedbackEvent(urlEvent({ project: 'hard', predictionId: spelled(index), reward: 1 }), ctx);
      expect(again.statusCode, `index ${index}`).toBeGreaterThanOrEqual(400);
      expect(again.statusCode, `index ${index}`).toBeLessThan(500);
      expect(answer(again).error?.code).toMatch(/PREDICTION_NOT_FOUND|FEEDBACK_DUPLICATE/);
    }
    const duplicate = await handleFeedbackEvent(urlEvent({ project: 'hard', predictionId: spelled('0'), reward: 1 }), ctx);
    expect(answer(duplicate).error?.code).toBe('FEEDBACK_DUPLICATE');
  });
});

describe('gaussian rewards', () => {
  it.each([1e100, -1e100, 1e-100, 5e-324, 1e13])('refuses %s, which the arm counters cannot keep, with a 400 and no reward row', async (reward) => {
    const ctx = context();
    const id = await predictionId(ctx, 'gauss');
    const result = await handleFeedbackEvent(urlEvent({ project: 'gauss', predictionId: id, reward }), ctx);
    expect(result.statusCode, result.body).toBe(400);
    expect(answer(result).error?.message).toMatch(/reward .* (beyond|too close to zero)/);
    const retry = await handleFeedbackEvent(urlEvent({ project: 'gauss', predictionId: id, reward: 2.5 }), ctx);
    expect(retry.statusCode, retry.body).toBe(200);
  });
});

describe('numbers beyond float32', () => {
  it.each([1e39, -1e39, 1e300, 3.5e38])('refuses %s in a feature vector with a 400 naming the record, field and fix', async (value) => {
    const result = await handleInferEvent(urlEvent({ project: 'hard', records: [{ features: [0, 1, 2] }, { features: [0, value, 2] }] }), context());
    expect(result.statusCode).toBe(400);
    const message = answer(result).error?.message ?? '';
    expect(message).toContain('records[1].features');
    expect(message).toContain('float32');
    expect(message).toMatch(/3\.4028234\d*e\+?38/);
  });

  it('accepts the largest float32 and numbers that only lose precision', async () => {
    const result = await handleInferEvent(
      urlEvent({ project: 'hard', records: [{ features: [3.4028234663852886e38, 1e-50, -1.2345678901234567] }] }),
      context(),
    );
    expect(result.statusCode).toBe(200);
  });
});

describe('inputs the model has no value for', () => {
  const records = [{ age: 33, plan: 'pro' }, { age: 52 }, { plan: 'enterprise' }, { age: '', plan: null }];

  it('are imputed and counted in the served metrics under the default policy', async () => {
    const lines: Record<string, unknown>[] = [];
    const ctx = context({ metricsSink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const result = await handleInferEvent(urlEvent({ project: 'tab-impute', records }), ctx);
    expect(result.statusCode, result.body).toBe(200);
    // record 1 lacks plan; record 2 lacks age and has a category the model does not know; record 3 lacks both.
    const imputed = lines.filter((line) => 'ImputedInputs' in line);
    expect(imputed).toHaveLength(1);
    expect(imputed[0]).toMatchObject({ ImputedInputs: 5, project: 'tab-impute' });
    const clean = await handleInferEvent(urlEvent({ project: 'tab-impute', records: [records[0]] }), ctx);
    expect(clean.statusCode).toBe(200);
    expect(lines.filter((line) => 'ImputedInputs' in line)).toHaveLength(1);
  });

  it('are a 400 naming the record and field when the project rejects them', async () => {
    const result = await handleInferEvent(urlEvent({ project: 'tab-reject', records }), context());
    expect(result.statusCode).toBe(400);
    const message = answer(result).error?.message ?? '';
    expect(message).toContain('records[1].plan: field "plan" is missing');
    expect(message).toContain('serving.unknownInputs "reject"');
    expect(message).toContain('records[2].plan: field "plan" is "enterprise", not a category the model knows (free, pro)');
    expect(message).toContain('records[2].age');
    expect(message).toContain('records[3].age');
    expect(message).not.toContain('records[0]');
    const clean = await handleInferEvent(urlEvent({ project: 'tab-reject', records: [records[0]] }), context());
    expect(clean.statusCode).toBe(200);
  });
});

describe('deeply nested JSON', () => {
  const nested = (depth: number, leaf = '1') => `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;

  it.each([
    ['a record', (deep: string) => `{"project":"hard","records":[${deep}]}`],
    ['a feature vector', (deep: string) => `{"project":"hard","records":[{"features":${deep}}]}`],
    ['the records field', (deep: string) => `{"project":"hard","records":${deep}}`],
    ['the project field', (deep: string) => `{"project":${deep},"records":[]}`],
  ])('in %s of /infer is a 400', async (_where, body) => {
    const result = await handleInferEvent(urlEvent(body(nested(200_000)), { raw: true }), context());
    expect(result.statusCode).toBe(400);
    expect(answer(result).error?.code).toBe('REQUEST_INVALID');
  });

  it.each([
    ['the reward', (deep: string) => `{"project":"hard","predictionId":"1.a.b.0.1.c","reward":${deep}}`],
    ['the prediction id', (deep: string) => `{"project":"hard","predictionId":${deep},"reward":1}`],
    ['an unknown field', (deep: string) => `{"project":"hard","predictionId":"x","reward":1,"extra":${deep}}`],
  ])('in %s of /feedback is a 400', async (_where, body) => {
    const result = await handleFeedbackEvent(urlEvent(body(nested(200_000)), { raw: true }), context());
    expect(result.statusCode).toBe(400);
    expect(answer(result).error?.code).toBe('REQUEST_INVALID');
  });
});

describe('500 logs', () => {
  afterEach(() => vi.restoreAllMocks());

  it("keep the error's name, message, stack and cause in the Powertools Logger's line", async () => {
    const lines: string[] = [];
    // The Logger writes errors through a Console over process.stderr (other levels: stdout).
    for (const stream of [process.stdout, process.stderr]) {
      vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        lines.push(String(chunk));
        return true;
      });
    }
    const ctx = createServeContext(deps, { drift: false, logger: new Logger({ serviceName: 'agentflow-serve-test' }), metricsSink: () => undefined });
    // A fault the local services cannot produce: the routing read throws something unexpected.
    const fault = new RangeError('offset out of range', { cause: new Error('the counter item is corrupt') });
    vi.spyOn(ctx.routing, 'get').mockRejectedValue(fault);
    vi.spyOn(ctx.routing, 'current').mockReturnValue(undefined);
    const result = await handleInferEvent(urlEvent({ project: 'hard', records: [{ features: [1, 2, 3] }] }), ctx);
    vi.restoreAllMocks();

    expect(result.statusCode).toBe(500);
    expect(answer(result).error?.message).toContain('offset out of range');
    const logged = lines
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.message === 'infer failed');
    expect(logged).toBeDefined();
    const error = logged!.error as { name: string; message: string; stack: string; cause: { message: string } };
    expect(error.name).toBe('RangeError');
    expect(error.message).toBe('offset out of range');
    expect(error.stack).toContain('RangeError: offset out of range');
    expect(error.cause.message).toBe('the counter item is corrupt');
  });
});

describe('arbitrary JSON at the handlers', () => {
  /** JSON values with odd numbers, odd keys, long strings and some depth. */
  const oddKey = fc.oneof(
    fc.string(),
    fc.constantFrom('__proto__', 'constructor', 'toString', 'project', 'records', 'features', 'b64', 'reward', 'predictionId', 'version', ''),
  );
  const oddNumber = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(0, -0, 1e39, -1e39, 1e300, 5e-324, Number.MAX_SAFE_INTEGER + 2, 3.4028235e38, 2.5, 1),
    fc.integer(),
  );
  const value = fc.letrec((tie) => ({
    any: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      oddNumber,
      fc.string({ maxLength: 40 }),
      tie('array'),
      tie('object'),
    ),
    array: fc.array(tie('any'), { maxLength: 5 }),
    object: fc.dictionary(oddKey, tie('any'), { maxKeys: 5 }),
  })).any;
  const record = fc.oneof(
    value,
    fc.record(
      { features: fc.oneof(value, fc.array(oddNumber, { minLength: 3, maxLength: 3 }), fc.record({ b64: fc.oneof(fc.base64String(), value) })) },
      { requiredKeys: [] },
    ),
  );
  const inferBody = fc.oneof(
    value,
    fc.record(
      { project: fc.oneof(fc.constant('hard'), value), records: fc.oneof(fc.array(record, { maxLength: 4 }), value), version: fc.oneof(oddNumber, value) },
      { requiredKeys: [] },
    ),
  );
  const feedbackBody = fc.oneof(
    value,
    fc.record(
      {
        project: fc.oneof(fc.constant('hard'), value),
        predictionId: fc.oneof(fc.string(), fc.constantFrom('1.a.b.0.1.c', '1.0.000000000000.0.1.0000000000000000'), value),
        reward: fc.oneof(oddNumber, value),
      },
      { requiredKeys: [] },
    ),
  );
  /** Text that is not what JSON.stringify makes: deep nesting, huge numbers, long strings, duplicate keys. */
  const rawText = fc.oneof(
    fc.integer({ min: 1, max: 50_000 }).map((depth) => `{"project":"hard","records":[${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}]}`),
    fc.integer({ min: 1, max: 50_000 }).map((depth) => `{"project":"hard","predictionId":"p","reward":${'['.repeat(depth)}${']'.repeat(depth)}}`),
    fc.constantFrom(
      '1e999',
      '-1e999',
      '{"project":"hard","records":[{"features":[1e999,0,0]}]}',
      '{"project":"hard","records":[{"features":[1,2,3]}],"records":[]}',
      '{"__proto__":{"records":[1]}}',
    ),
    fc.integer({ min: 1, max: 200_000 }).map((length) => `{"project":"hard","records":[{"features":"${'x'.repeat(length)}"}]}`),
    fc.string(),
  );

  const neverFails = async (result: { statusCode: number; body: string }) => {
    expect(result.statusCode, result.body.slice(0, 300)).toBeLessThan(500);
    expect(() => JSON.parse(result.body)).not.toThrow();
  };

  it('/feedback for real predictions of bernoulli and gaussian projects answers every reward with a 2xx or 4xx', async () => {
    const ctx = context();
    const ids: [string, string][] = [];
    for (const project of ['hard', 'gauss']) {
      const result = await handleInferEvent(urlEvent({ project, records: Array.from({ length: 150 }, () => ({ features: [1, 2, 3] })) }), ctx);
      for (const prediction of (JSON.parse(result.body) as InferResponse).predictions) ids.push([project, prediction.predictionId]);
    }
    const rewards = fc.oneof(oddNumber, fc.double({ min: -1e7, max: 1e7, noNaN: true }), fc.constantFrom(0, 1, 0.5, -1e-10, 1e-9, 1e6, -1e6, 1e6 + 1));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ids), rewards, async ([project, predictionId], reward) =>
        neverFails(await handleFeedbackEvent(urlEvent({ project, predictionId, reward }), ctx)),
      ),
      { numRuns: 300, seed: 15 },
    );
  });

  it.each([
    ['/infer', handleInferEvent, inferBody],
    ['/feedback', handleFeedbackEvent, feedbackBody],
  ] as const)('%s answers every body with a 2xx or 4xx, never a 500', async (_path, handler, bodies) => {
    const ctx = context();
    await fc.assert(
      fc.asyncProperty(bodies as fc.Arbitrary<unknown>, async (body) => neverFails(await handler(urlEvent(body), ctx))),
      { numRuns: 1000, seed: 15 },
    );
    await fc.assert(
      fc.asyncProperty(rawText, async (text) => neverFails(await handler(urlEvent(text, { raw: true }), ctx))),
      { numRuns: 60, seed: 15 },
    );
  });
});
