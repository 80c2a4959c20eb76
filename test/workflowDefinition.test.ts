import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  BATCH_STAGES,
  BATCH_SUBMIT_JOB_SYNC,
  buildDefinition,
  EmbedJobEnv,
  EXECUTION_HISTORY,
  historyEventsFor,
  historyEventsOf,
  FAILURE_NOT_RECORDED,
  ExportInput,
  ExportOutput,
  JOB_QUEUE_PLACEHOLDER,
  PARTITION_PLACEHOLDER,
  LAMBDA_INVOKE,
  LAMBDA_STAGES,
  parseTrialJobEnv,
  PLACEHOLDERS,
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
  STAGES,
  substitutePlaceholders,
  TrialJobEnv,
  trialResultUri,
  embedResultUri,
  WorkflowError,
  type LambdaStageName,
  type MapState,
  type PassState,
  type State,
  type StateMachineDefinition,
  type TaskState,
} from '#lib/pipeline/index.ts';

type AslValidator = (
  definition: unknown,
  options?: { checkArn?: boolean; checkPaths?: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };
// asl-validator 4 ships no type declarations.
const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;

const dummyArns = Object.fromEntries(
  PLACEHOLDERS.map((name) => [
    name,
    name === PARTITION_PLACEHOLDER
      ? 'aws'
      : name === JOB_QUEUE_PLACEHOLDER
        ? 'arn:aws:batch:us-east-1:123456789012:job-queue/agentflow-gpu'
        : name.endsWith('FunctionArn')
          ? `arn:aws:lambda:us-east-1:123456789012:function:agentflow-${name}`
          : `arn:aws:batch:us-east-1:123456789012:job-definition/agentflow-${name}:1`,
  ]),
);

/** Every state, Map iterators included, with the States object it lives in. */
function everyState(definition: { States: Record<string, State> }): { name: string; state: State; scope: Record<string, State> }[] {
  return Object.entries(definition.States).flatMap(([name, state]) => [
    { name, state, scope: definition.States },
    ...(state.Type === 'Map' ? everyState(state.ItemProcessor) : []),
  ]);
}
const tasks = (definition: StateMachineDefinition) =>
  everyState(definition).filter((s): s is { name: string; state: TaskState; scope: Record<string, State> } => s.state.Type === 'Task');

const definition = buildDefinition();

describe('the workflow definition', () => {
  it('is accepted by asl-validator once its placeholders are substituted with ARNs', () => {
    // The validator annotates what it is given; hand it a copy.
    const result = aslValidator(structuredClone(substitutePlaceholders(definition, dummyArns)), { checkArn: true, checkPaths: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('is plain JSON well under the 1 MB definition limit', () => {
    const json = JSON.stringify(definition);
    expect(JSON.parse(json)).toEqual(definition);
    expect(Buffer.byteLength(json, 'utf8')).toBeLessThan(1024 * 1024);
  });

  it('uses only what aws-local-stepfunctions runs: JSONPath, no Assign, no JSONata, no ItemReader', () => {
    const json = JSON.stringify(definition);
    for (const banned of ['"Assign"', '"QueryLanguage"', '"ItemReader"', '"Arguments"', '{%']) expect(json).not.toContain(banned);
  });

  it('declares exactly the placeholders it uses', () => {
    const found = new Set([...JSON.stringify(definition).matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]));
    expect(found).toEqual(new Set(PLACEHOLDERS));
    expect(JSON.stringify(substitutePlaceholders(definition, dummyArns))).not.toMatch(/\$\{/);
  });

  it('refuses to substitute when a placeholder has no value', () => {
    const { JobQueueArn: _dropped, ...partial } = dummyArns;
    expect(() => substitutePlaceholders(definition, partial)).toThrow(WorkflowError);
    expect(() => substitutePlaceholders(definition, partial)).toThrow(/\$\{JobQueueArn\}/);
  });

  it('is a pure function of its options', () => {
    expect(buildDefinition()).toEqual(buildDefinition());
    const slow = buildDefinition({ timeoutSeconds: { RunTrial: 86_400 } });
    const runTrial = tasks(slow).find((t) => t.name === 'RunTrial')!.state;
    expect(runTrial.TimeoutSeconds).toBe(86_400);
    expect(tasks(definition).find((t) => t.name === 'RunTrial')!.state.TimeoutSeconds).toBe(4 * 3600);
  });

  it.each(tasks(definition).map((t) => [t.name, t] as const))('Task %s has an explicit timeout, retries with backoff and a catcher', (_name, { state }) => {
    expect(Number.isInteger(state.TimeoutSeconds)).toBe(true);
    expect(state.TimeoutSeconds).toBeGreaterThan(0);
    expect(state.Retry?.length).toBeGreaterThan(0);
    for (const retrier of state.Retry!) {
      expect(retrier.ErrorEquals.length).toBeGreaterThan(0);
      expect(retrier.IntervalSeconds).toBeGreaterThan(0);
      expect(retrier.MaxAttempts).toBeGreaterThan(0);
      // A retrier may not swallow everything: domain errors must reach the catcher at once.
      expect(retrier.ErrorEquals).not.toContain('States.ALL');
      expect(retrier.ErrorEquals).not.toContain('States.TaskFailed');
    }
    expect(state.Retry!.some((r) => (r.BackoffRate ?? 1) > 1)).toBe(true);
    expect(state.Catch?.map((c) => c.ErrorEquals)).toEqual([['States.ALL']]);
  });

  it('routes every failing top-level stage through a label to RecordFailure, and RecordFailure to a Fail state', () => {
    const topLevel = Object.entries(definition.States).filter(([, s]) => s.Type === 'Task' || s.Type === 'Map');
    expect(topLevel.map(([n]) => n).sort()).toEqual(['Embed', 'Export', 'Plan', 'Prepare', 'Promote', 'RecordFailure', 'Reward', 'Trials']);
    for (const [name, state] of topLevel) {
      const catcher = (state as TaskState | MapState).Catch![0];
      const target = definition.States[catcher.Next];
      if (name === 'RecordFailure') {
        expect(target.Type).toBe('Fail');
        // The original error stays at $.error for the Fail state.
        expect(catcher.ResultPath).not.toBe('$.error');
        continue;
      }
      expect(catcher.ResultPath).toBe('$.error');
      expect(target).toMatchObject({ Type: 'Pass', Result: name, ResultPath: '$.failedState', Next: 'RecordFailure' } satisfies Partial<PassState>);
    }
    const recordFailure = definition.States.RecordFailure as TaskState;
    expect(definition.States[recordFailure.Next!]).toMatchObject({ Type: 'Fail', ErrorPath: '$.failure.error', CausePath: '$.failure.cause' });
  });

  it('has no Fail state that can raise a States.* error, which AWS reserves for its own', () => {
    const fails = everyState(definition).filter(({ state }) => state.Type === 'Fail');
    expect(fails.map((f) => f.name).sort()).toEqual(['FailureNotRecorded', 'RunFailed']);
    for (const { name, state } of fails) {
      if (state.Type !== 'Fail') continue;
      if (state.Error !== undefined) {
        expect(state.Error, name).not.toMatch(/^States\./);
        continue;
      }
      // A Fail state that reads its error may read only RecordFailure's, whose contract names it.
      expect(state.ErrorPath, name).toBe('$.failure.error');
      const producers = everyState(definition).filter(({ state: s }) => s.Type === 'Task' && s.ResultPath === '$.failure');
      expect(producers.map((p) => p.name)).toEqual(['RecordFailure']);
      expect((producers[0].state as TaskState).ResultSelector).toMatchObject({ 'error.$': '$.Payload.error' });
    }
    expect(definition.States.FailureNotRecorded).toMatchObject({ Type: 'Fail', Error: FAILURE_NOT_RECORDED });
    // The contract is what keeps RunFailed's error out of States.*: the handler's output is parsed with it.
    for (const reserved of ['States.TaskFailed', 'States.Timeout', 'States.Runtime']) {
      const parsed = RecordFailureOutput.safeParse({ runId: 'r1', status: 'FAILED', error: reserved, cause: 'Embed failed' });
      expect(parsed.success, reserved).toBe(false);
      expect(parsed.error?.issues[0].message).toMatch(/reserves/);
    }
    expect(RecordFailureOutput.parse({ runId: 'r1', status: 'FAILED', error: 'Agentflow.JobFailed', cause: 'Embed failed' }).error).toBe('Agentflow.JobFailed');
  });

  it.each([
    [1, 2],
    [2, 3],
    [3, 6],
    [60, 100],
  ])('costs as many history events for %i generations of %i trials as the budget Plan and the spec check use', (generations, population) => {
    expect(historyEventsOf(definition, { generations, population })).toBe(historyEventsFor({ generations, population }));
  });

  it('costs 30 events outside the loop, 11 per generation and 10 per trial', () => {
    const cost = (generations: number, population: number) => historyEventsOf(definition, { generations, population });
    const perTrial = cost(1, 2) - cost(1, 1);
    const perGeneration = cost(2, 1) - cost(1, 1) - perTrial;
    expect({ fixed: cost(1, 1) - perGeneration - perTrial, perGeneration, perTrial }).toEqual({
      fixed: EXECUTION_HISTORY.fixed,
      perGeneration: EXECUTION_HISTORY.perGeneration,
      perTrial: EXECUTION_HISTORY.perTrial,
    });
  });

  it('retries transient Lambda errors on Lambda stages and Batch throttling on Batch stages', () => {
    for (const { name, state } of tasks(definition)) {
      const retried = state.Retry!.flatMap((r) => r.ErrorEquals);
      if (state.Resource === LAMBDA_INVOKE) {
        expect(retried, name).toEqual(expect.arrayContaining(['Lambda.ServiceException', 'Lambda.TooManyRequestsException', 'States.Timeout']));
      } else {
        expect(state.Resource).toBe(BATCH_SUBMIT_JOB_SYNC);
        expect(retried, name).toEqual(expect.arrayContaining(['Batch.TooManyRequestsException', 'Batch.AWSBatchException']));
        // A GPU job that timed out would time out again at the same cost.
        expect(retried, name).not.toContain('States.Timeout');
      }
    }
  });

  it('wires each stage of STAGES to its resource and placeholder', () => {
    const byName = new Map(tasks(definition).map((t) => [t.name, t.state]));
    expect([...byName.keys()].sort()).toEqual(STAGES.map((s) => s.state).sort());
    for (const stage of LAMBDA_STAGES) {
      const state = byName.get(stage.state)!;
      expect(state.Resource).toBe(LAMBDA_INVOKE);
      expect(state.Parameters?.FunctionName).toBe('${' + stage.placeholder + '}');
      expect(state.TimeoutSeconds).toBeLessThanOrEqual(900);
    }
    for (const stage of BATCH_STAGES) {
      const state = byName.get(stage.state)!;
      expect(state.Resource).toBe(BATCH_SUBMIT_JOB_SYNC);
      expect(state.Parameters).toMatchObject({ JobDefinition: '${' + stage.placeholder + '}', JobQueue: '${' + JOB_QUEUE_PLACEHOLDER + '}' });
      expect(state.Parameters?.['JobName.$']).toMatch(/^States\.Format\('agentflow-/);
    }
  });

  const lambdaContracts: [LambdaStageName, { shape: object }, { shape: object }][] = [
    ['Prepare', PrepareInput, PrepareOutput],
    ['Plan', PlanInput, PlanOutput],
    ['Reward', RewardInput, RewardOutput],
    ['Export', ExportInput, ExportOutput],
    ['Promote', PromoteInput, PromoteOutput],
    ['RecordFailure', RecordFailureInput, RecordFailureOutput],
  ];
  it.each(lambdaContracts)('%s gets exactly its input contract as Payload and reads back exactly its output contract', (name, input, output) => {
    const state = definition.States[name] as TaskState;
    const payload = (state.Parameters as { Payload: Record<string, unknown> }).Payload;
    expect(
      Object.keys(payload)
        .map((k) => k.replace(/\.\$$/, ''))
        .sort(),
    ).toEqual(Object.keys(input.shape).sort());
    expect(state.ResultSelector).toEqual(Object.fromEntries(Object.keys(output.shape).map((k) => [`${k}.$`, `$.Payload.${k}`])));
  });

  it.each([
    ['Embed', EmbedJobEnv],
    ['RunTrial', TrialJobEnv],
  ] as const)('%s passes exactly its job environment contract as ContainerOverrides', (name, env) => {
    const state = tasks(definition).find((t) => t.name === name)!.state;
    const environment = (state.Parameters as { ContainerOverrides: { Environment: { Name: string }[] } }).ContainerOverrides.Environment;
    expect(environment.map((e) => e.Name).sort()).toEqual(Object.keys(env.shape).sort());
  });

  it('maps over the proposals with the concurrency the plan asks for, catching failed trials inside the iterator', () => {
    const trials = definition.States.Trials as MapState;
    expect(trials).toMatchObject({ ItemsPath: '$.plan.proposals', MaxConcurrencyPath: '$.plan.maxConcurrency', ResultPath: '$.trials', Next: 'Reward' });
    expect(trials.MaxConcurrency).toBeUndefined();
    const runTrial = trials.ItemProcessor.States.RunTrial as TaskState;
    expect(runTrial.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'WhyTrialFailed' }]);
    // A caught trial is told apart only by whether the queue cancelled it for want of GPU capacity.
    expect(trials.ItemProcessor.States.WhyTrialFailed).toMatchObject({ Type: 'Choice', Default: 'TrialFailed', Choices: [{ Next: 'TrialWithoutGpu' }] });
    expect(trials.ItemProcessor.States.TrialFailed).toMatchObject({ Type: 'Pass', End: true, Parameters: { status: 'failed', 'error.$': '$.error.Error' } });
    expect(trials.ItemProcessor.States.TrialWithoutGpu).toMatchObject({
      Type: 'Pass',
      End: true,
      Parameters: { status: 'failed', error: 'Agentflow.GpuCapacity' },
    });
  });

  it('loops from Reward back to Trials until Reward says done, then exports', () => {
    expect((definition.States.Reward as TaskState).Next).toBe('IsTuningDone');
    expect(definition.States.IsTuningDone).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.plan.done', BooleanEquals: true, Next: 'Export' }],
      Default: 'Trials',
    });
    expect((definition.States.Promote as TaskState).Next).toBe('Succeeded');
    expect(definition.States.Succeeded).toEqual({ Type: 'Succeed' });
  });
});

describe('the stage contracts', () => {
  it('place job results under the run, where the store keeps run files', () => {
    expect(trialResultUri('s3://bkt-1/runs/r1', 'g1-t0')).toBe('s3://bkt-1/runs/r1/trials/g1-t0/result.json');
    expect(embedResultUri('s3://bkt-1/runs/r1')).toBe('s3://bkt-1/runs/r1/embed/result.json');
  });

  it.each([
    ['done without a best trial', { done: true, generation: 2, proposals: [], maxConcurrency: 2, bestTrialId: null }, /bestTrialId/],
    ['not done without proposals', { done: false, generation: 2, proposals: [], maxConcurrency: 2, bestTrialId: null }, /proposals/],
    [
      'duplicate trial ids',
      {
        done: false,
        generation: 2,
        proposals: [
          { trialId: 'x', lambda: { a: 1 } },
          { trialId: 'x', lambda: { a: 2 } },
        ],
        maxConcurrency: 2,
        bestTrialId: null,
      },
      /unique/,
    ],
  ])('reject a Reward output that is %s', (_case, output, message) => {
    const parsed = RewardOutput.safeParse(output);
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toMatch(message);
  });

  const trialEnv = {
    AGENTFLOW_RUN_ID: 'r1',
    AGENTFLOW_PROJECT: 'demo',
    AGENTFLOW_GENERATION: '2',
    AGENTFLOW_TRIAL_ID: 'g2-t0',
    AGENTFLOW_PROPOSAL: JSON.stringify({ trialId: 'g2-t0', lambda: { a: 1.5, b: 0.5 }, learningRate: 0.001 }),
    AGENTFLOW_MANIFEST_URI: 's3://bkt-1/runs/r1/manifest.json',
    AGENTFLOW_FEATURES_URI: 's3://bkt-1/features/abc/',
    AGENTFLOW_OUTPUT_URI: 's3://bkt-1/runs/r1/trials/g2-t0/result.json',
  };

  it('parse a trial job environment into typed inputs', () => {
    expect(parseTrialJobEnv(trialEnv)).toEqual({
      runId: 'r1',
      project: 'demo',
      generation: 2,
      proposal: { trialId: 'g2-t0', lambda: { a: 1.5, b: 0.5 }, learningRate: 0.001 },
      manifestUri: 's3://bkt-1/runs/r1/manifest.json',
      featuresUri: 's3://bkt-1/features/abc/',
      outputUri: 's3://bkt-1/runs/r1/trials/g2-t0/result.json',
    });
  });

  it.each([
    ['a proposal that is not JSON', { AGENTFLOW_PROPOSAL: '{lambda' }, /not JSON/],
    ['a proposal for another trial', { AGENTFLOW_TRIAL_ID: 'g2-t9' }, /AGENTFLOW_TRIAL_ID is g2-t9/],
    ['a missing output URI', { AGENTFLOW_OUTPUT_URI: undefined }, /AGENTFLOW_OUTPUT_URI/],
  ])('reject a trial job environment with %s', (_case, change, message) => {
    expect(() => parseTrialJobEnv({ ...trialEnv, ...change })).toThrow(message);
  });
});
