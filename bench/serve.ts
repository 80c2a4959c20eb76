/**
 * Serving speed and routing quality. Run: `npx tsx bench/serve.ts`.
 *
 * - warm latency (p50/p99) of 1- and 64-record requests through the infer handler in-process and
 *   through the local HTTP server, against local dynalite/s3rver started in a temp folder, with
 *   the overhead ratio against a bare ORT `session.run` on the same input;
 * - cold start of a demo-sized model (download + sha256 + session create);
 * - the router's cumulative regret over a simulated stream, as a ratio of a uniform split's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { makeClients, type AwsClients } from '#lib/adapters/config/index.ts';
import type { CardTask } from '#lib/domain/run/index.ts';
import { encoderFeeds } from '#lib/domain/encoders/index.ts';
import { startLocalAws } from '#lib/adapters/local/standIns.ts';
import type { ServingSet } from '#lib/adapters/registry/index.ts';
import { chooseArm, emptyStats, recordReward, type Arm } from '#lib/domain/route/index.ts';
import { createRng } from '#lib/domain/random/index.ts';
import {
  createServeContext,
  handleFeedbackEvent,
  handleInferEvent,
  servingSessionOptions,
  startServer,
  type ServeContext,
  type ServeOptions,
} from '#lib/serve/index.ts';
import { stageDependencies } from '#lib/pipeline/dependencies.ts';
import { buildFeaturesModel, publishModel, urlEvent } from '../test/helpers/servingModels.ts';

// ── routing simulation ────────────────────────────────────────────────────────────────────────

/** Cumulative regret of Thompson sampling (batched: posteriors refreshed every `refreshEvery` requests, like the TTL cache) vs a uniform split. */
export function simulateRegret(options: { rates: number[]; events: number; refreshEvery: number; seed: number }): {
  thompson: number;
  uniform: number;
  bestShare: number;
} {
  const rng = createRng(options.seed);
  const best = Math.max(...options.rates);
  let live = options.rates.map(() => emptyStats());
  let seen = live.map((s) => ({ ...s }));
  let regret = 0;
  let bestCount = 0;
  for (let i = 0; i < options.events; i += 1) {
    if (i % options.refreshEvery === 0) seen = live.map((s) => ({ ...s }));
    const arms: Arm[] = options.rates.map((_, a) => ({ version: String(a), kind: 'bernoulli', stats: seen[a] }));
    const a = Number(chooseArm(arms, rng));
    const reward = rng.uniform() < options.rates[a] ? 1 : 0;
    live = live.map((s, j) => (j === a ? recordReward(s, 'bernoulli', reward) : s));
    regret += best - options.rates[a];
    if (options.rates[a] === best) bestCount += 1;
  }
  const uniform = options.events * (best - options.rates.reduce((s, r) => s + r, 0) / options.rates.length);
  return { thompson: regret, uniform, bestShare: bestCount / options.events };
}

// ── the benchmark ─────────────────────────────────────────────────────────────────────────────

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function time(iterations: number, run: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < Math.min(50, iterations); i += 1) await run();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i += 1) {
    const start = performance.now();
    await run();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
}

/**
 * Times several operations in alternating rounds (warmed first, so the JIT has settled), so a
 * change in the machine's load touches each alike; the bare run and the handler are compared
 * from the same stretch of time. The warm-up is unrecorded rounds for at least `warmupMs`: V8
 * optimizes the infer path's functions only after 1,000 to 4,500 requests (`--trace-opt`), which
 * two rounds' few hundred calls did not reach, so the figures were of half-optimized code.
 */
async function timeInterleaved<K extends string>(
  rounds: number,
  perRound: number,
  runs: Record<K, () => Promise<unknown>>,
  options: { warmupMs?: number } = {},
): Promise<Record<K, { p50: number; p99: number }>> {
  const names = Object.keys(runs) as K[];
  const samples = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  const warmupMs = options.warmupMs ?? 2000;
  const warmupStarted = performance.now();
  for (let round = 0; round < 2 || performance.now() - warmupStarted < warmupMs; round += 1) {
    for (const name of names) for (let i = 0; i < perRound; i += 1) await runs[name]();
  }
  for (let round = 0; round < rounds; round += 1) {
    for (const name of names) {
      for (let i = 0; i < perRound; i += 1) {
        const start = performance.now();
        await runs[name]();
        samples[name].push(performance.now() - start);
      }
    }
  }
  return Object.fromEntries(
    names.map((name) => {
      const sorted = samples[name].sort((a, b) => a - b);
      return [name, { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }];
    }),
  ) as Record<K, { p50: number; p99: number }>;
}

export async function benchServe(options: { iterations?: number } = {}): Promise<Record<string, number>> {
  const iterations = options.iterations ?? 400;
  const dir = await mkdtemp(join(tmpdir(), 'agentflow-bench-serve-'));
  const local = await startLocalAws({ dir });
  const clients: AwsClients = makeClients(local.config);
  const deps = stageDependencies(local.config, clients);
  const { registry, rewards, store } = deps;
  const contexts: ServeContext[] = [];
  const newContext = (extra: ServeOptions = {}) => {
    const context = createServeContext(deps, { metricsSink: () => {}, logger: { info() {}, warn() {}, error() {} }, ...extra });
    contexts.push(context);
    return context;
  };
  const rows: Array<[string, string]> = [];
  const result: Record<string, number> = {};
  try {
    const dimension = 384;
    const tasks: CardTask[] = [
      { name: 'churn', type: 'binary', metric: 'auc' },
      { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c', 'd'], metric: 'macroF1' },
      { name: 'ltv', type: 'regression', metric: 'rmse' },
    ];
    const { model, encoder } = buildFeaturesModel({ dimension, hidden: 256, tasks, seed: 3 });
    const project = 'bench';
    const { version } = await publishModel({ registry, store, project, runId: 'bench-run-1', model, encoder, tasks });
    await registry.setServingSet(project, { production: version, challengers: [] } satisfies ServingSet, { expectedRevision: 0 });

    const rng = createRng(5);
    const record = () => ({ features: Array.from({ length: dimension }, () => rng.normal()) });
    const one = { project, records: [record()] };
    const batch = { project, records: Array.from({ length: 64 }, record) };

    // Cold start: a fresh context per load.
    const coldSamples: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const context = newContext();
      const started = performance.now();
      await context.models.get(project, version);
      coldSamples.push(performance.now() - started);
      await context.close();
    }
    coldSamples.sort((a, b) => a - b);
    result.coldStartMs = coldSamples[2];
    result.modelBytes = model.byteLength;

    // Bare ORT on the same inputs, with the session options the handler's sessions get.
    const session = await ort.InferenceSession.create(model, servingSessionOptions());
    const bareRows = (records: Array<{ features: number[] }>) => records.map((r) => ({ input: r, labels: {} }));
    const feeds1 = encoderFeeds(encoder, bareRows(one.records));
    const feeds64 = encoderFeeds(encoder, bareRows(batch.records));

    const context = newContext({ drift: { sampleRate: 0.05 } });
    // The events are built once: the client's JSON.stringify is not the handler's cost.
    const event1 = urlEvent(one);
    const event64 = urlEvent(batch);
    // The same records with their vectors packed (`{"b64": …}`, little-endian float32): no number parsing.
    const packed = (r: { features: number[] }) => ({ features: { b64: Buffer.from(Float32Array.from(r.features).buffer).toString('base64') } });
    const eventPacked1 = urlEvent({ project, records: one.records.map(packed) });
    const eventPacked64 = urlEvent({ project, records: batch.records.map(packed) });
    const single = await timeInterleaved(10, Math.ceil(iterations / 2), {
      bare: () => session.run(feeds1),
      json: () => handleInferEvent(event1, context),
      packed: () => handleInferEvent(eventPacked1, context),
    });
    const batched = await timeInterleaved(10, Math.ceil(iterations / 16), {
      bare: () => session.run(feeds64),
      json: () => handleInferEvent(event64, context),
      packed: () => handleInferEvent(eventPacked64, context),
    });
    // The same model where the spec keeps feedback as data: every request adds one batched write of its records.
    const loggedProject = 'bench-logged';
    const logged = await publishModel({
      registry,
      store,
      project: loggedProject,
      runId: 'bench-run-logged',
      model,
      encoder,
      tasks,
      serving: {
        unknownInputs: 'impute',
        categories: {},
        feedback: {
          tasks: [
            { name: 'churn', type: 'binary' },
            { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c', 'd'] },
            { name: 'ltv', type: 'regression' },
          ],
        },
      },
    });
    await registry.setServingSet(loggedProject, { production: logged.version, challengers: [] } satisfies ServingSet, { expectedRevision: 0 });
    const loggedEvent1 = urlEvent({ project: loggedProject, records: one.records.map(packed) });
    const loggedEvent64 = urlEvent({ project: loggedProject, records: batch.records.map(packed) });
    const keeping = await timeInterleaved(5, Math.ceil(iterations / 4), {
      plain1: () => handleInferEvent(eventPacked1, context),
      logged1: () => handleInferEvent(loggedEvent1, context),
      plain64: () => handleInferEvent(eventPacked64, context),
      logged64: () => handleInferEvent(loggedEvent64, context),
    });
    const [bare1, handler1, packed1] = [single.bare, single.json, single.packed];
    const [bare64, handler64, packed64] = [batched.bare, batched.json, batched.packed];

    const server = await startServer({ context: newContext() });
    const post = (body: unknown) =>
      fetch(`${server.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
    const http1 = await time(iterations, () => post(one));
    const http64 = await time(Math.ceil(iterations / 4), () => post(batch));
    await server.close();

    // For comparison with the old design, which awaited one prediction write per record before answering.
    const writeOnly = await time(iterations, () => rewards.recordFeedback(`${project}-writes`, `w-${Math.random()}`, 1, { version }));

    const fb = newContext();
    const inferred = JSON.parse((await handleInferEvent(urlEvent(one), fb)).body) as { predictions: Array<{ predictionId: string }> };
    let feedbackLatency = { p50: 0, p99: 0 };
    {
      const ids: string[] = [inferred.predictions[0].predictionId];
      for (let i = 0; i < iterations; i += 1) {
        const r = JSON.parse((await handleInferEvent(urlEvent(one), fb)).body) as { predictions: Array<{ predictionId: string }> };
        ids.push(r.predictions[0].predictionId);
      }
      let next = 0;
      feedbackLatency = await time(iterations - 50, () => handleFeedbackEvent(urlEvent({ project, predictionId: ids[next++], reward: 1 }), fb));
    }

    const simulation = simulateRegret({ rates: [0.1, 0.12, 0.15], events: 20_000, refreshEvery: 50, seed: 11 });

    Object.assign(result, {
      bareRun1P50Ms: bare1.p50,
      bareRun64P50Ms: bare64.p50,
      handler1P50Ms: handler1.p50,
      handler1P99Ms: handler1.p99,
      handler64P50Ms: handler64.p50,
      handler64P99Ms: handler64.p99,
      http1P50Ms: http1.p50,
      http1P99Ms: http1.p99,
      http64P50Ms: http64.p50,
      http64P99Ms: http64.p99,
      oneDynamoWriteP50Ms: writeOnly.p50,
      feedbackP50Ms: feedbackLatency.p50,
      packed1P50Ms: packed1.p50,
      packed1P99Ms: packed1.p99,
      packed64P50Ms: packed64.p50,
      packed64P99Ms: packed64.p99,
      handler1OverBare: handler1.p50 / bare1.p50,
      packed1OverBare: packed1.p50 / bare1.p50,
      packed64OverBare: packed64.p50 / bare64.p50,
      handler64OverBare: handler64.p50 / bare64.p50,
      keptInputs1OverPlain: keeping.logged1.p50 / keeping.plain1.p50,
      keptInputs64OverPlain: keeping.logged64.p50 / keeping.plain64.p50,
      regretThompson: simulation.thompson,
      regretUniform: simulation.uniform,
      regretRatio: simulation.thompson / simulation.uniform,
      bestShare: simulation.bestShare,
    });
    const ms = (v: number) => `${v.toFixed(3)} ms`;
    rows.push(
      ['cold start (download + sha256 + session), median of 5', `${ms(result.coldStartMs)} for ${(model.byteLength / 1024).toFixed(0)} KiB`],
      ['bare session.run, 1 / 64 records (p50)', `${ms(bare1.p50)} / ${ms(bare64.p50)}`],
      ['handler in-process, 1 record p50 / p99', `${ms(handler1.p50)} / ${ms(handler1.p99)}`],
      ['handler in-process, 64 records p50 / p99', `${ms(handler64.p50)} / ${ms(handler64.p99)}`],
      ['handler, packed vectors {"b64"}, 1 record p50 / p99', `${ms(packed1.p50)} / ${ms(packed1.p99)}`],
      ['handler, packed vectors {"b64"}, 64 records p50 / p99', `${ms(packed64.p50)} / ${ms(packed64.p99)}`],
      ['local HTTP server, 1 record p50 / p99', `${ms(http1.p50)} / ${ms(http1.p99)}`],
      ['local HTTP server, 64 records p50 / p99', `${ms(http64.p50)} / ${ms(http64.p99)}`],
      ['one conditional write to dynalite (p50; infer no longer awaits one)', ms(writeOnly.p50)],
      ['feedback handler (p50)', ms(feedbackLatency.p50)],
      ['handler / bare run, 1 record, packed vector (goal < 1.5)', `${result.packed1OverBare.toFixed(2)}x`],
      ['handler / bare run, 1 record, JSON numbers', `${result.handler1OverBare.toFixed(2)}x`],
      ['handler / bare run, 64 records, packed / JSON numbers', `${result.packed64OverBare.toFixed(2)}x / ${result.handler64OverBare.toFixed(2)}x`],
      [
        'infer keeping its records for feedback (datasets.feedback) / not, 1 / 64 records (p50)',
        `${result.keptInputs1OverPlain.toFixed(2)}x / ${result.keptInputs64OverPlain.toFixed(2)}x`,
      ],
      [
        'regret Thompson / uniform, 20k events, rates .10/.12/.15 (goal <= 0.3)',
        `${result.regretRatio.toFixed(3)} (best arm share ${(simulation.bestShare * 100).toFixed(1)}%)`,
      ],
    );
    await session.release();
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
    clients.s3.destroy();
    clients.dynamodb.destroy();
    await local.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const width = Math.max(...rows.map(([name]) => name.length));
  for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
  console.log(JSON.stringify({ bench: 'serve', ...Object.fromEntries(Object.entries(result).map(([k, v]) => [k, Number(v.toFixed(4))])) }));
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchServe();
}
