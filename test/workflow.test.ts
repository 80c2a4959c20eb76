/**
 * Executes the real state machine definition on this machine: in-process test handlers that hold
 * each stage to its contract, and real child-process jobs (test/fixtures/jobs) that read their
 * environment and write their results where the workflow tells them to.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { configToEnv } from '#lib/adapters/config/index.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { runFailureOf } from '#lib/pipeline/recordFailure/recordFailure.ts';
import {
  buildDefinition,
  EmbedJobResult,
  ExportInput,
  ExportOutput,
  FAILURE_NOT_RECORDED,
  historyEventsFor,
  substitutePlaceholders,
  TrialOutcome,
  PlanInput,
  PlanOutput,
  PrepareInput,
  PrepareOutput,
  PromoteInput,
  PromoteOutput,
  RecordFailureInput,
  RecordFailureOutput,
  RewardInput,
  RewardOutput,
  TaskError,
  TrialJobResult,
  trialResultUri,
  WorkflowError,
  WorkflowOutput,
  type BatchJobName,
  type LambdaStageName,
  type Proposal,
  type JsonValue,
  type MapState,
  type State,
} from '#lib/pipeline/index.ts';
import { launchLocalJob, type JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import { JobWorkerPool } from '#lib/adapters/local/jobWorkers.ts';
import {
  localPlaceholderValues,
  runLocalWorkflow,
  type LocalJob,
  type LocalJobCommand,
  type LocalLambdaHandler,
  type RunLocalWorkflowOptions,
  type WorkflowEvent,
} from '#lib/adapters/local/workflow.ts';
import { ensurePromiseWithResolvers } from '#lib/adapters/local/workflow.ts';
import { cancelledJobCause, exitedJobCause } from './helpers/batchCauses.ts';

const BUCKET = 'agentflow-test';
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/jobs/${name}`, import.meta.url));
const tsJob = (name: string): LocalJobCommand => ({ command: [process.execPath, '--import', 'tsx', fixture(name)] });
const nodeScript = (script: string): LocalJobCommand => ({ command: [process.execPath, '-e', script] });

class ThrottledError extends Error {
  override name = 'Lambda.TooManyRequestsException';
}
class ExportError extends Error {
  override name = 'ExportError';
}

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

interface Scenario {
  generations?: number;
  proposalsPerGeneration?: number;
  maxConcurrency?: number;
  failTrials?: string[];
  trialMs?: number;
  handlers?: Partial<Record<LambdaStageName, LocalLambdaHandler>>;
  jobs?: Partial<Record<BatchJobName, LocalJob>>;
  run?: Partial<RunLocalWorkflowOptions>;
}

/** Runs the workflow with test handlers that check every event against its contract. */
async function runScenario(scenario: Scenario = {}) {
  const { generations = 2, proposalsPerGeneration = 2, maxConcurrency = 2 } = scenario;
  const root = mkdtempSync(join(tmpdir(), 'agentflow-workflow-'));
  roots.push(root);
  const read = (uri: string): unknown => JSON.parse(readFileSync(join(root, uri.slice('s3://'.length)), 'utf8'));
  const proposals = (generation: number): Proposal[] =>
    Array.from({ length: proposalsPerGeneration }, (_, i) => ({
      trialId: `g${generation}-t${i}`,
      lambda: { a: i + 1, b: 1 },
      ...(i === 0 ? { learningRate: 0.01 } : {}),
    }));

  const testHandlers: Record<LambdaStageName, LocalLambdaHandler> = {
    Prepare: async (event) => {
      const input = PrepareInput.parse(event);
      return PrepareOutput.parse({
        runUri: `s3://${BUCKET}/runs/${input.runId}`,
        manifestUri: `s3://${BUCKET}/runs/${input.runId}/manifest.json`,
        featuresUri: `s3://${BUCKET}/features/0123abcd/`,
      });
    },
    Plan: async (event) => {
      const input = PlanInput.parse(event);
      EmbedJobResult.parse(read(input.embedResultUri));
      return PlanOutput.parse({ generation: 1, proposals: proposals(1), maxConcurrency });
    },
    Reward: async (event) => {
      const input = RewardInput.parse(event);
      const results = input.trials.filter((t) => t.status === 'succeeded').map((t) => TrialJobResult.parse(read(t.resultUri)));
      if (input.generation < generations) {
        return RewardOutput.parse({
          done: false,
          generation: input.generation + 1,
          proposals: proposals(input.generation + 1),
          maxConcurrency,
          bestTrialId: null,
        });
      }
      const auc = (r: (typeof results)[number]) => (r.status === 'succeeded' ? r.metrics.a.auc : -Infinity);
      const best = results.reduce((a, b) => (auc(b) > auc(a) ? b : a));
      return RewardOutput.parse({ done: true, generation: input.generation, proposals: [], maxConcurrency, bestTrialId: best.trialId });
    },
    Export: async (event) => {
      const input = ExportInput.parse(event);
      const best = TrialJobResult.parse(read(input.bestTrialResultUri));
      expect(best.trialId).toBe(input.bestTrialId);
      return ExportOutput.parse({
        modelUri: `s3://${BUCKET}/models/${input.project}/1/model.onnx`,
        cardUri: `s3://${BUCKET}/models/${input.project}/1/card.json`,
        sha256: 'ab'.repeat(32),
        sizeBytes: 4096,
      });
    },
    Promote: async (event) => {
      PromoteInput.parse(event);
      return PromoteOutput.parse({ version: 1, promoted: true, alias: 'production', reason: 'no champion yet' });
    },
    // The production naming (runFailureOf), without the registry write that test/recordFailure.test.ts covers.
    RecordFailure: async (event) => {
      const input = RecordFailureInput.parse(event);
      const { error, cause } = runFailureOf(input);
      return RecordFailureOutput.parse({ runId: input.runId, status: 'FAILED', error, cause });
    },
  };

  const calls = Object.fromEntries(Object.keys(testHandlers).map((k) => [k, [] as unknown[]])) as Record<LambdaStageName, unknown[]>;
  const handlers = Object.fromEntries(
    (Object.keys(testHandlers) as LambdaStageName[]).map((name) => {
      const handler = scenario.handlers?.[name] ?? testHandlers[name];
      return [name, async (event: unknown) => (calls[name].push(event), handler(event))];
    }),
  ) as Record<LambdaStageName, LocalLambdaHandler>;

  const events: WorkflowEvent[] = [];
  const jobOutput: JobOutputLine[] = [];
  const input = { runId: `run-${Date.now().toString(36)}`, project: 'demo', specUri: `s3://${BUCKET}/datasets/demo/spec.json` };
  const result = await runLocalWorkflow({
    input,
    handlers,
    jobs: { embed: tsJob('embed.ts'), trial: tsJob('trial.ts'), ...scenario.jobs },
    env: {
      ...configToEnv({ region: 'us-east-1', bucket: BUCKET, registryTable: 'registry', rewardTable: 'rewards' }),
      // The state's overrides win over the job definition's environment, as in Batch.
      AGENTFLOW_RUN_ID: 'stale-run-id-from-config',
      AGENTFLOW_TEST_S3_ROOT: root,
      AGENTFLOW_TEST_FAIL_TRIALS: (scenario.failTrials ?? []).join(','),
      AGENTFLOW_TEST_TRIAL_MS: String(scenario.trialMs ?? 0),
    },
    onEvent: (event) => events.push(event),
    onJobOutput: (line) => jobOutput.push(line),
    retryIntervalMs: 0,
    timeoutMs: 60_000,
    ...scenario.run,
  });
  return { result, input, calls, events, jobOutput, read, root };
}

const entered = (events: WorkflowEvent[], state: string) => events.filter((e) => e.type === 'StateEntered' && e.state === state);

/** The most RunTrial states that were running at once, from the event stream. */
function peakTrialConcurrency(events: WorkflowEvent[]): number {
  let running = 0;
  let peak = 0;
  for (const event of events.filter((e) => e.state === 'RunTrial')) {
    if (event.type === 'StateEntered') peak = Math.max(peak, ++running);
    if (event.type === 'StateExited' || event.type === 'StateCaught') running--;
  }
  return peak;
}

/**
 * The Step Functions history events behind the local runner's events: a Task state is entered,
 * scheduled, started (a `.sync` job also submitted), succeeds and is exited; a Map is entered,
 * started, succeeds and is exited; every other state is entered and exited; Map iterations and
 * the execution's start and end are one event each. For a run without retries or failures.
 */
function awsHistoryEvents(events: WorkflowEvent[], definition: ReturnType<typeof buildDefinition>): number {
  const states = new Map<string, State>();
  const collect = (scope: Record<string, State>) => {
    for (const [name, state] of Object.entries(scope)) {
      states.set(name, state);
      if (state.Type === 'Map') collect(state.ItemProcessor.States);
    }
  };
  collect(definition.States);
  let count = 0;
  for (const event of events) {
    const state = event.state === undefined ? undefined : states.get(event.state);
    switch (event.type) {
      case 'StateEntered':
        count += state?.Type === 'Task' ? (state.Resource.endsWith('.sync') ? 4 : 3) : state?.Type === 'Map' ? 2 : 1;
        break;
      case 'StateExited':
        count += state?.Type === 'Task' || state?.Type === 'Map' ? 2 : 1;
        break;
      case 'ExecutionStarted':
      case 'ExecutionSucceeded':
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
        count += 1;
        break;
      default:
        throw new Error(`${event.type} is not part of a run without retries or failures`);
    }
  }
  return count;
}

describe('a local workflow run', () => {
  it('runs every stage through two generations of trials and promotes the best one', async () => {
    const { result, input, calls, events, jobOutput } = await runScenario({ generations: 2, proposalsPerGeneration: 2 });

    expect(result.status).toBe('SUCCEEDED');
    const output = WorkflowOutput.parse(result.output);
    expect(output).toMatchObject({ runId: input.runId, plan: { done: true, generation: 2, bestTrialId: 'g2-t1' }, promotion: { version: 1, promoted: true } });
    expect(calls.Prepare).toEqual([{ ...input, executionId: result.executionId }]);

    const rewards = calls.Reward.map((e) => RewardInput.parse(e));
    expect(rewards.map((r) => r.generation)).toEqual([1, 2]);
    const runUri = `s3://${BUCKET}/runs/${input.runId}`;
    expect(rewards[1].trials).toEqual([
      { trialId: 'g2-t0', status: 'succeeded', jobId: expect.stringMatching(/^local-/), resultUri: trialResultUri(runUri, 'g2-t0') },
      { trialId: 'g2-t1', status: 'succeeded', jobId: expect.stringMatching(/^local-/), resultUri: trialResultUri(runUri, 'g2-t1') },
    ]);
    expect(ExportInput.parse(calls.Export[0]).bestTrialId).toBe('g2-t1');
    expect(calls.RecordFailure).toEqual([]);

    // Jobs ran as child processes with the run's own environment, their output prefixed by job name.
    expect(jobOutput).toContainEqual({ jobName: `agentflow-embed-${input.runId}`, stream: 'stdout', line: `embedding for run ${input.runId}` });
    expect(jobOutput).toContainEqual({
      jobName: `agentflow-trial-${input.runId}-g1-t1`,
      stream: 'stdout',
      line: 'trial g1-t1: generation 1, lambda {"a":2,"b":1}',
    });

    // The event stream saw every state of the successful path, each one exited as often as entered.
    const states = new Set(events.flatMap((e) => (e.type === 'StateEntered' && e.state ? [e.state] : [])));
    expect(states).toEqual(
      new Set(['Prepare', 'Embed', 'Plan', 'Trials', 'RunTrial', 'TrialSucceeded', 'Reward', 'IsTuningDone', 'Export', 'Promote', 'Succeeded']),
    );
    for (const state of states) {
      expect(events.filter((e) => e.type === 'StateExited' && e.state === state).length, state).toBe(entered(events, state).length);
    }
    expect(entered(events, 'Trials')).toHaveLength(2);
    expect(
      entered(events, 'RunTrial')
        .map((e) => e.index)
        .sort(),
    ).toEqual([0, 0, 1, 1]);
    expect(events[0].type).toBe('ExecutionStarted');
    expect(events.at(-1)).toMatchObject({ type: 'ExecutionSucceeded', detail: { output: result.output } });
    expect(events.every((e) => !Number.isNaN(Date.parse(e.at)))).toBe(true);
  });

  it('runs its jobs in warm workers: one per trial running at once, reused across generations, a failing trial reported as a fresh process reports it', async () => {
    const workers = new JobWorkerPool({ command: [process.execPath, '--import', 'tsx', fixture('host.ts')] });
    try {
      const { result, calls, events, jobOutput, input } = await runScenario({
        generations: 2,
        proposalsPerGeneration: 2,
        failTrials: ['g2-t0'],
        jobs: { embed: { workers, job: 'embed' }, trial: { workers, job: 'trial' } },
      });

      expect(result.status).toBe('SUCCEEDED');
      // Embed's worker, then a second for the two trials at once; generation 2 reuses both.
      expect(workers.stats()).toMatchObject({ started: 2, alive: 2 });
      expect(jobOutput).toContainEqual({ jobName: `agentflow-embed-${input.runId}`, stream: 'stdout', line: `embedding for run ${input.runId}` });
      expect(jobOutput).toContainEqual({
        jobName: `agentflow-trial-${input.runId}-g2-t1`,
        stream: 'stdout',
        line: 'trial g2-t1: generation 2, lambda {"a":2,"b":1}',
      });
      expect(RewardInput.parse(calls.Reward[1]).trials.map((t) => t.status)).toEqual(['failed', 'succeeded']);
      const failure = events.find((e) => e.type === 'StateFailed' && e.state === 'RunTrial');
      const cause = JSON.parse(String(failure?.detail?.cause)) as { Container: { ExitCode: number }; LogTail: string[] };
      expect(cause).toMatchObject({ Container: { ExitCode: 3 }, LogTail: ['trial g2-t0: loss became NaN at step 3'] });
    } finally {
      await workers.close();
    }
  });

  it('writes as many history events as the execution history budget counts for its generations and trials', async () => {
    const { result, events } = await runScenario({ generations: 3, proposalsPerGeneration: 2 });

    expect(result.status).toBe('SUCCEEDED');
    expect(events.filter((e) => e.type === 'MapIterationStarted')).toHaveLength(6);
    expect(awsHistoryEvents(events, buildDefinition())).toBe(historyEventsFor({ generations: 3, population: 2 }));
  });

  it.each([1, 2])('runs at most %i trial job(s) at a time, as the plan asks', async (maxConcurrency) => {
    const { result, events } = await runScenario({ generations: 1, proposalsPerGeneration: 3, maxConcurrency, trialMs: 300 });

    expect(result.status).toBe('SUCCEEDED');
    expect(entered(events, 'RunTrial')).toHaveLength(3);
    expect(peakTrialConcurrency(events)).toBe(maxConcurrency);
  });

  it('reports a trial job that exits non-zero as a failed trial and carries on', async () => {
    const { result, calls, events, read } = await runScenario({ generations: 1, proposalsPerGeneration: 2, failTrials: ['g1-t1'] });

    expect(result.status).toBe('SUCCEEDED');
    const reward = RewardInput.parse(calls.Reward[0]);
    expect(reward.trials[0]).toMatchObject({ trialId: 'g1-t0', status: 'succeeded' });
    expect(reward.trials[1]).toEqual({
      trialId: 'g1-t1',
      status: 'failed',
      error: 'States.TaskFailed',
      resultUri: expect.stringMatching(/trials\/g1-t1\/result\.json$/),
    });
    // The job explained itself in its result file before exiting.
    expect(TrialJobResult.parse(read(reward.trials[1].resultUri))).toMatchObject({ status: 'failed', reason: 'loss became NaN at step 3' });
    const failure = events.find((e) => e.type === 'StateFailed' && e.state === 'RunTrial');
    expect(failure).toMatchObject({ index: 1, detail: { error: 'States.TaskFailed' } });
    const cause = JSON.parse(String(failure?.detail?.cause)) as { Container: { ExitCode: number }; LogTail: string[] };
    expect(cause.Container.ExitCode).toBe(3);
    expect(cause.LogTail).toContain('trial g1-t1: loss became NaN at step 3');
    expect(WorkflowOutput.parse(result.output).plan.bestTrialId).toBe('g1-t0');
    expect(calls.RecordFailure).toEqual([]);
  });

  it('fails a trial that outlives its TimeoutSeconds with States.Timeout and kills its job', async () => {
    const { result, calls } = await runScenario({
      generations: 1,
      proposalsPerGeneration: 2,
      jobs: { trial: nodeScript('setTimeout(() => {}, 60_000)') },
      handlers: { Reward: async (event) => RewardInput.parse(event) && Promise.reject(new ExportError('all trials failed')) },
      run: { definition: buildDefinition({ timeoutSeconds: { RunTrial: 1 } }) },
    });

    const reward = RewardInput.parse(calls.Reward[0]);
    expect(reward.trials.map((t) => t.status === 'failed' && t.error)).toEqual(['States.Timeout', 'States.Timeout']);
    expect(result).toMatchObject({ status: 'FAILED', error: 'ExportError', cause: 'Reward failed: all trials failed' });
  });

  it('retries a Lambda stage that is throttled once, then goes on', async () => {
    let throttled = false;
    const plan: LocalLambdaHandler = async (event) => {
      if (!throttled) {
        throttled = true;
        throw new ThrottledError('Rate exceeded');
      }
      const input = PlanInput.parse(event);
      return { generation: 1, proposals: [{ trialId: 'g1-t0', lambda: { a: 1 } }], maxConcurrency: 1, ignored: input.runId };
    };
    const { result, calls, events } = await runScenario({ generations: 1, handlers: { Plan: plan } });

    expect(result.status).toBe('SUCCEEDED');
    expect(calls.Plan).toHaveLength(2);
    expect(calls.Plan[1]).toEqual(calls.Plan[0]);
    expect(events.find((e) => e.type === 'StateFailed' && e.state === 'Plan')?.detail?.error).toBe('Lambda.TooManyRequestsException');
    expect(events.filter((e) => e.type === 'StateRetried' && e.state === 'Plan')).toEqual([
      expect.objectContaining({ detail: { attempt: 1, errorEquals: expect.arrayContaining(['Lambda.TooManyRequestsException']) } }),
    ]);
    // Only the contract's fields travel on.
    expect(WorkflowOutput.parse(result.output).trials).toHaveLength(1);
    expect(JSON.stringify(result.output)).not.toContain('ignored');
  });

  it.each([
    {
      case: 'a domain error in Export is recorded at once, without retries',
      scenario: { generations: 1, handlers: { Export: async () => Promise.reject(new ExportError('best trial has no weights')) } },
      stage: 'Export' as const,
      attempts: 1,
      caught: 'ExportError',
      error: 'ExportError',
      cause: 'Export failed: best trial has no weights',
    },
    {
      case: 'a Prepare that stays throttled is retried, then recorded',
      scenario: { handlers: { Prepare: async () => Promise.reject(new ThrottledError('Rate exceeded')) } },
      stage: 'Prepare' as const,
      attempts: 7,
      caught: 'Lambda.TooManyRequestsException',
      error: 'Lambda.TooManyRequestsException',
      cause: 'Prepare failed: Rate exceeded',
    },
    {
      case: 'an Embed job that crashes is recorded with its exit, as Agentflow.JobFailed',
      scenario: { jobs: { embed: nodeScript('console.error("out of GPU memory"); process.exit(2)') } },
      stage: 'Embed' as const,
      attempts: 0,
      caught: 'States.TaskFailed',
      error: 'Agentflow.JobFailed',
      cause: 'Embed failed: Essential container in task exited with code 2\nout of GPU memory',
    },
    {
      case: 'an Embed job outlives its TimeoutSeconds, as Agentflow.Timeout',
      scenario: { jobs: { embed: nodeScript('setInterval(() => {}, 1000)') }, run: { definition: buildDefinition({ timeoutSeconds: { Embed: 1 } }) } },
      stage: 'Embed' as const,
      attempts: 0,
      caught: 'States.Timeout',
      error: 'Agentflow.Timeout',
      cause: expect.stringMatching(/^Embed failed: it ran past its TimeoutSeconds \(States\.Timeout/),
    },
  ])('ends FAILED when $case', async ({ scenario, stage, attempts, caught, error, cause }) => {
    const { result, calls, events } = await runScenario(scenario);

    expect(result).toMatchObject({ status: 'FAILED', error, cause });
    // AWS reserves States.* for its own errors: the execution never ends with one.
    expect(result.error).not.toMatch(/^States\./);
    if (stage !== 'Embed') expect(calls[stage]).toHaveLength(attempts);
    expect(calls.RecordFailure).toHaveLength(1);
    const recorded = RecordFailureInput.parse(calls.RecordFailure[0]);
    expect(recorded).toMatchObject({ failedState: stage, error: { Error: caught } });
    expect(calls.Promote).toEqual([]);
    const enteredStates = events.filter((e) => e.type === 'StateEntered').map((e) => e.state);
    expect(enteredStates.slice(-3)).toEqual([`${stage}Failed`, 'RecordFailure', 'RunFailed']);
    expect(events.at(-1)).toMatchObject({ type: 'ExecutionFailed', detail: { error, cause } });
  });

  it('still ends FAILED, as Agentflow.FailureNotRecorded, when RecordFailure itself fails', async () => {
    const { result, calls } = await runScenario({
      handlers: {
        Prepare: async () => Promise.reject(new ExportError('spec is missing')),
        RecordFailure: async () => Promise.reject(new Error('registry table is gone')),
      },
    });

    expect(result).toMatchObject({ status: 'FAILED', error: FAILURE_NOT_RECORDED, cause: expect.stringMatching(/RecordFailure could not record it/) });
    expect(calls.RecordFailure).toHaveLength(1);
  });

  it('fails the run with States.Runtime, as Step Functions does, when a handler breaks its output contract', async () => {
    const { result, calls } = await runScenario({ handlers: { Prepare: async () => ({ runUri: `s3://${BUCKET}/runs/x` }) } });

    expect(result).toMatchObject({ status: 'FAILED', error: 'States.Runtime', cause: expect.stringMatching(/\$\.Payload\.manifestUri/) });
    // States.Runtime cannot be caught: handlers must honour their contract (parse their output with it).
    expect(calls.RecordFailure).toEqual([]);
  });

  it('gives up after timeoutMs with a clear error and kills the running job', async () => {
    const root = mkdtempSync(join(tmpdir(), 'agentflow-hang-'));
    roots.push(root);
    const pidFile = join(root, 'pid');
    const hang = nodeScript(`require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`);

    const run = runScenario({ jobs: { embed: hang }, run: { timeoutMs: 4_000 } });

    await expect(run).rejects.toThrow(WorkflowError);
    await expect(run).rejects.toMatchObject({
      code: 'WORKFLOW_TIMEOUT',
      message: expect.stringMatching(/did not finish within 4000 ms \(last states entered: Prepare, Embed\)/),
    });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await sleep(500);
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  });

  it('refuses to start without a handler for every Lambda stage', async () => {
    const run = runLocalWorkflow({
      input: { runId: 'r1', project: 'demo', specUri: `s3://${BUCKET}/spec.json` },
      handlers: { Prepare: async () => ({}) } as unknown as Record<LambdaStageName, LocalLambdaHandler>,
      jobs: { embed: tsJob('embed.ts'), trial: tsJob('trial.ts') },
    });
    await expect(run).rejects.toMatchObject({ code: 'HANDLER_MISSING', message: expect.stringMatching(/Plan, Reward, Export, Promote, RecordFailure/) });
  });

  it('refuses an input that is not a run context', async () => {
    const run = runLocalWorkflow({
      input: { runId: 'has spaces', project: 'demo', specUri: 'spec.json' },
      handlers: {} as Record<LambdaStageName, LocalLambdaHandler>,
      jobs: {} as Record<BatchJobName, LocalJobCommand>,
    });
    await expect(run).rejects.toMatchObject({ code: 'INPUT_INVALID', message: expect.stringMatching(/runId: .*specUri: /) });
  });
});

describe('a GPU job the queue cancelled for want of capacity', () => {
  /** Runs (part of) the real definition on aws-local-stepfunctions, Task states answered by `handlers`. */
  function runStates(
    states: { StartAt: string; States: Record<string, State> },
    input: JsonValue,
    handlers: Record<string, (input: JsonValue) => Promise<JsonValue>>,
  ) {
    ensurePromiseWithResolvers();
    const machine = new StateMachine(states as unknown as ConstructorParameters<typeof StateMachine>[0], {
      validationOptions: { checkArn: true, checkPaths: true },
    });
    return machine.run(input, {
      overrides: { taskResourceLocalHandlers: handlers },
      context: { Execution: { Id: 'local:execution:agentflow:r1', Name: 'r1' } },
    }).result;
  }
  const definition = () => substitutePlaceholders(buildDefinition(), localPlaceholderValues());

  /** The real Trials iterator, its RunTrial failing with `caught` as Step Functions would catch it. */
  async function runIterator(caught: { Error: string; Cause?: string }) {
    const iterator = (definition().States.Trials as MapState).ItemProcessor;
    const input = {
      runId: 'r1',
      project: 'demo',
      generation: 1,
      manifestUri: 's3://agentflow-test/runs/r1/manifest.json',
      featuresUri: 's3://agentflow-test/features/f/',
      proposal: { trialId: 'g1-t0', lambda: { a: 1 } },
      resultUri: 's3://agentflow-test/runs/r1/trials/g1-t0/result.json',
    };
    const output = await runStates({ StartAt: iterator.StartAt, States: iterator.States }, input, {
      RunTrial: async () => {
        throw new TaskError(caught.Error, caught.Cause ?? '');
      },
    });
    return TrialOutcome.parse(output);
  }

  it('fails the run at Embed as Agentflow.GpuCapacity, with the wait, the fix and what Batch said', async () => {
    const lambda = (payload: JsonValue) => async () => ({ Payload: payload, StatusCode: 200 });
    const run = runStates(
      definition(),
      { runId: 'r1', project: 'demo', specUri: 's3://agentflow-test/runs/r1/spec.json' },
      {
        Prepare: lambda({
          runUri: 's3://agentflow-test/runs/r1',
          manifestUri: 's3://agentflow-test/runs/r1/manifest.json',
          featuresUri: 's3://agentflow-test/features/f/',
        }),
        Embed: async () => {
          throw new TaskError('States.TaskFailed', cancelledJobCause('CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', 30));
        },
        RecordFailure: async (input) => {
          const { error, cause } = runFailureOf(RecordFailureInput.parse((input as { Payload: unknown }).Payload));
          return { Payload: { runId: 'r1', status: 'FAILED', error, cause }, StatusCode: 200 };
        },
      },
    );

    const failure = await run.then(
      () => undefined,
      (error: Error) => (error.cause instanceof Error ? error.cause : error),
    );
    expect(failure?.name).toBe('Agentflow.GpuCapacity');
    expect(failure?.message).toMatch(
      /^Embed failed: its GPU job waited 30 minutes in RUNNABLE without starting .*"All G and VT Spot Instance Requests".*Batch said: Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY$/s,
    );
  });

  it('is reported to Reward as Agentflow.GpuCapacity, named from the StatusReason inside the Cause', async () => {
    const outcome = await runIterator({ Error: 'States.TaskFailed', Cause: cancelledJobCause('CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', 30) });

    expect(outcome).toEqual({
      trialId: 'g1-t0',
      status: 'failed',
      error: 'Agentflow.GpuCapacity',
      resultUri: 's3://agentflow-test/runs/r1/trials/g1-t0/result.json',
    });
  });

  it.each([
    ['a job that ran and exited non-zero', { Error: 'States.TaskFailed', Cause: exitedJobCause() }, 'States.TaskFailed'],
    [
      'a job whose log quotes the cancellation',
      {
        Error: 'States.TaskFailed',
        Cause: JSON.stringify({
          StatusReason: 'Essential container in task exited',
          LogTail: ['"StatusReason":"Canceled by JobStateTimeLimit action due to reason: x"'],
        }),
      },
      'States.TaskFailed',
    ],
    ['a timeout without a Cause', { Error: 'States.Timeout' }, 'States.Timeout'],
  ])('leaves %s as it was caught', async (_case, caught, error) => {
    const outcome = await runIterator(caught);

    expect(outcome).toMatchObject({ status: 'failed', error });
  });
});

describe('launchLocalJob', () => {
  it('runs the command with the given variables over the parent environment and resolves like a Batch job', async () => {
    process.env.AGENTFLOW_TEST_LAYER = 'parent';
    process.env.AGENTFLOW_TEST_PARENT_ONLY = 'kept';
    const lines: JobOutputLine[] = [];
    try {
      const result = await launchLocalJob({
        command: [process.execPath, '-e', 'console.log(process.env.AGENTFLOW_TEST_LAYER); process.stdout.write(process.env.AGENTFLOW_TEST_PARENT_ONLY)'],
        env: { AGENTFLOW_TEST_LAYER: 'job' },
        jobName: 'echo-env',
        onOutput: (line) => lines.push(line),
      });
      expect(result).toEqual({ JobId: expect.stringMatching(/^local-/), JobName: 'echo-env', Status: 'SUCCEEDED' });
    } finally {
      delete process.env.AGENTFLOW_TEST_LAYER;
      delete process.env.AGENTFLOW_TEST_PARENT_ONLY;
    }
    expect(lines).toEqual([
      { jobName: 'echo-env', stream: 'stdout', line: 'job' },
      { jobName: 'echo-env', stream: 'stdout', line: 'kept' },
    ]);
  });

  it('rejects a non-zero exit as States.TaskFailed with the exit code and the last stderr lines', async () => {
    const run = launchLocalJob({
      command: [process.execPath, '-e', 'for (let i = 0; i < 30; i++) console.error("line " + i); process.exit(7)'],
      jobName: 'crash',
      onOutput: () => {},
    });
    const error = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TaskError);
    expect((error as TaskError).name).toBe('States.TaskFailed');
    const cause = JSON.parse((error as TaskError).message) as { Status: string; StatusReason: string; Container: { ExitCode: number }; LogTail: string[] };
    expect(cause).toMatchObject({ Status: 'FAILED', StatusReason: 'Essential container in task exited with code 7', Container: { ExitCode: 7 } });
    expect(cause.LogTail).toHaveLength(20);
    expect(cause.LogTail.at(-1)).toBe('line 29');
  });

  it('kills a job that outlives its timeout and rejects with States.Timeout', async () => {
    const started = Date.now();
    const run = launchLocalJob({ command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], jobName: 'stuck', timeoutMs: 300, onOutput: () => {} });
    await expect(run).rejects.toMatchObject({ name: 'States.Timeout' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects a command that cannot start as States.TaskFailed', async () => {
    const run = launchLocalJob({ command: [join(tmpdir(), 'no-such-agentflow-job')], jobName: 'missing', onOutput: () => {} });
    await expect(run).rejects.toMatchObject({ name: 'States.TaskFailed', message: expect.stringMatching(/CannotStartContainerError/) });
    expect(existsSync(join(tmpdir(), 'no-such-agentflow-job'))).toBe(false);
  });
});
