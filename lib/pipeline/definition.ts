/**
 * The training loop (DESIGN §1) as one Amazon States Language definition, produced by a pure
 * function. CDK deploys it with `definitionSubstitutions` for the `${Placeholders}`; the local
 * runner substitutes local names and executes the same JSON with aws-local-stepfunctions.
 *
 *   Prepare ─▶ Embed ─▶ Plan ─▶ Trials (Map: RunTrial per proposal) ─▶ Reward ─▶ IsTuningDone
 *                                 ▲                                                │ no
 *                                 └────────────────────────────────────────────────┘
 *                                                                                  │ yes
 *                                                        Export ─▶ Promote ─▶ Succeeded
 *   any stage ─▶ <Stage>Failed ─▶ RecordFailure ─▶ RunFailed
 *
 * The state keeps the run context (`runId`, `project`, `specUri`) at the root and each stage's
 * small result under its own key (`prepared`, `embed`, `plan`, `trials`, `exported`, `promotion`).
 * Every stage input is an explicit `Payload`/`Environment` template built from the contracts, and
 * every Lambda result is read back field by field with `ResultSelector`, so a stage sees exactly its
 * contract and nothing grows between generations.
 */
import type { z } from 'zod';
import type {
  Catcher,
  FailState,
  JsonValue,
  MapState,
  PassState,
  PayloadTemplate,
  Retrier,
  State,
  StateMachineDefinition,
  TaskState,
} from '#lib/pipeline/asl.ts';
import {
  EMBED_RESULT_PATH,
  EmbedJobEnv,
  ExportInput,
  ExportOutput,
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
  TRIAL_RESULT_PATH,
  TrialJobEnv,
} from '#lib/pipeline/contracts.ts';
import { FAILURE_NAMES, WorkflowError } from '#lib/pipeline/errors.ts';
import { GPU_WAIT } from '#lib/pipeline/gpuWait.ts';
import { JOB_QUEUE_PLACEHOLDER, PARTITION_PLACEHOLDER, STAGES, stageOf, type BatchStageName, type LambdaStageName } from '#lib/pipeline/stages.ts';

export type { StateMachineDefinition } from '#lib/pipeline/asl.ts';

/** Every `${Placeholder}` in the definition: one per Lambda function and job definition, the job queue, and the partition. */
export const PLACEHOLDERS: readonly string[] = [...STAGES.map((s) => s.placeholder), JOB_QUEUE_PLACEHOLDER, PARTITION_PLACEHOLDER];

// Service integration ARNs carry the partition: `arn:aws:` is refused in aws-cn and aws-us-gov.
export const LAMBDA_INVOKE = `arn:\${${PARTITION_PLACEHOLDER}}:states:::lambda:invoke`;
export const BATCH_SUBMIT_JOB_SYNC = `arn:\${${PARTITION_PLACEHOLDER}}:states:::batch:submitJob.sync`;

/** Errors the Lambda service itself raises (throttling, service faults): worth retrying with backoff. */
export const LAMBDA_TRANSIENT_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
];
/** Errors from the Batch API while submitting or polling a job (429 throttling, 5xx). */
export const BATCH_TRANSIENT_ERRORS = ['Batch.AWSBatchException', 'Batch.TooManyRequestsException', 'Batch.ServerException'];

/** The error of a run whose failure RecordFailure could not record (every other failure is named by RecordFailure). */
export const FAILURE_NOT_RECORDED = 'Agentflow.FailureNotRecorded';

/** Names of the states that are not stages of STAGES. */
export const STATE_NAMES = {
  trials: 'Trials',
  trialSucceeded: 'TrialSucceeded',
  trialFailed: 'TrialFailed',
  whyTrialFailed: 'WhyTrialFailed',
  trialWithoutGpu: 'TrialWithoutGpu',
  isTuningDone: 'IsTuningDone',
  succeeded: 'Succeeded',
  runFailed: 'RunFailed',
  failureNotRecorded: 'FailureNotRecorded',
} as const;

/** The Pass state that labels a failure of `state` before RecordFailure. */
export function failedStateName(state: string): string {
  return `${state}Failed`;
}

export interface DefinitionOptions {
  /** Task timeouts in seconds by state name, over the STAGES defaults (e.g. longer trials on a CPU-only machine). */
  timeoutSeconds?: Partial<Record<LambdaStageName | BatchStageName, number>>;
}

const placeholder = (name: string) => '${' + name + '}';

/** `{ "a.$": "$.x.a", … }` for each field of a zod object: the state reads back exactly the contract's fields. */
function select(schema: z.ZodObject, from: string): PayloadTemplate {
  return Object.fromEntries(Object.keys(schema.shape).map((field) => [`${field}.$`, `${from}.${field}`]));
}

/** Builds a template and checks it covers exactly the contract's fields, so the two cannot drift apart. */
function template(schema: z.ZodObject, fields: Record<string, string | JsonValue>, what: string): PayloadTemplate {
  const given = Object.keys(fields).map((k) => k.replace(/\.\$$/, ''));
  const expected = Object.keys(schema.shape);
  const missing = expected.filter((k) => !given.includes(k));
  const extra = given.filter((k) => !expected.includes(k));
  if (missing.length || extra.length) {
    throw new WorkflowError(`${what} does not match its contract: missing [${missing.join(', ')}], unexpected [${extra.join(', ')}]`, {
      code: 'CONTRACT_MISMATCH',
      context: { what, missing, extra },
    });
  }
  return fields as PayloadTemplate;
}

function batchEnvironment(schema: z.ZodObject, values: Record<string, string>, what: string): JsonValue[] {
  template(schema, values, what);
  return Object.entries(values).map(([name, path]) => ({ Name: name, 'Value.$': path }));
}

const lambdaRetry = (): Retrier[] => [
  { ErrorEquals: [...LAMBDA_TRANSIENT_ERRORS], IntervalSeconds: 2, MaxAttempts: 6, BackoffRate: 2, MaxDelaySeconds: 60, JitterStrategy: 'FULL' },
  // A stuck invocation (cold start loading a large model) is worth one more try; stages are idempotent.
  { ErrorEquals: ['States.Timeout'], IntervalSeconds: 5, MaxAttempts: 1 },
];

// No retry on States.Timeout or States.TaskFailed for jobs: a GPU job that timed out or exited non-zero
// would most likely do it again at the same cost. Host failures (spot reclaim) are retried by the job
// definition's own retry strategy inside Batch.
const batchRetry = (): Retrier[] => [
  { ErrorEquals: [...BATCH_TRANSIENT_ERRORS], IntervalSeconds: 5, MaxAttempts: 5, BackoffRate: 2, MaxDelaySeconds: 120, JitterStrategy: 'FULL' },
];

const toRecordFailure = (state: string): Catcher[] => [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: failedStateName(state) }];

function lambdaTask(
  state: LambdaStageName,
  options: DefinitionOptions,
  io: { payload: PayloadTemplate; output: z.ZodObject; resultPath: string; next: string; catch?: Catcher[] },
): TaskState {
  const stage = stageOf(state);
  return {
    Type: 'Task',
    Comment: stage.description,
    Resource: LAMBDA_INVOKE,
    Parameters: { FunctionName: placeholder(stage.placeholder), Payload: io.payload },
    ResultSelector: select(io.output, '$.Payload'),
    ResultPath: io.resultPath,
    TimeoutSeconds: options.timeoutSeconds?.[state] ?? stage.timeoutSeconds,
    Retry: lambdaRetry(),
    Catch: io.catch ?? toRecordFailure(state),
    Next: io.next,
  };
}

function batchTask(
  state: BatchStageName,
  options: DefinitionOptions,
  io: { jobName: string; environment: JsonValue[]; resultPath: string; next: string; catch: Catcher[] },
): TaskState {
  const stage = stageOf(state);
  return {
    Type: 'Task',
    Comment: stage.description,
    Resource: BATCH_SUBMIT_JOB_SYNC,
    Parameters: {
      'JobName.$': io.jobName,
      JobDefinition: placeholder(stage.placeholder),
      JobQueue: placeholder(JOB_QUEUE_PLACEHOLDER),
      ContainerOverrides: { Environment: io.environment },
    },
    // The .sync result is the whole job description; only the id is worth keeping in the state.
    ResultSelector: { 'jobId.$': '$.JobId' },
    ResultPath: io.resultPath,
    TimeoutSeconds: options.timeoutSeconds?.[state] ?? stage.timeoutSeconds,
    Retry: batchRetry(),
    Catch: io.catch,
    Next: io.next,
  };
}

const labelFailure = (state: string): PassState => ({
  Type: 'Pass',
  Comment: `name the failing state for RecordFailure`,
  Result: state,
  ResultPath: '$.failedState',
  Next: 'RecordFailure',
});

const embedResultUri = `States.Format('{}${EMBED_RESULT_PATH}', $.prepared.runUri)`;

/** The whole state machine. Pure: the same options give the same JSON. */
export function buildDefinition(options: DefinitionOptions = {}): StateMachineDefinition {
  const trialsIterator: MapState['ItemProcessor'] = {
    ProcessorConfig: { Mode: 'INLINE' },
    StartAt: 'RunTrial',
    States: {
      RunTrial: batchTask('RunTrial', options, {
        jobName: "States.Format('agentflow-trial-{}-{}', $.runId, $.proposal.trialId)",
        environment: batchEnvironment(
          TrialJobEnv,
          {
            AGENTFLOW_RUN_ID: '$.runId',
            AGENTFLOW_PROJECT: '$.project',
            // Environment values must be strings.
            AGENTFLOW_GENERATION: "States.Format('{}', $.generation)",
            AGENTFLOW_TRIAL_ID: '$.proposal.trialId',
            AGENTFLOW_PROPOSAL: 'States.JsonToString($.proposal)',
            AGENTFLOW_MANIFEST_URI: '$.manifestUri',
            AGENTFLOW_FEATURES_URI: '$.featuresUri',
            AGENTFLOW_OUTPUT_URI: '$.resultUri',
          },
          'RunTrial environment',
        ),
        resultPath: '$.job',
        next: STATE_NAMES.trialSucceeded,
        // A failed trial is a result for Reward to learn from, not a failed run.
        catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE_NAMES.whyTrialFailed }],
      }),
      // Batch reports a job the queue cancelled for want of GPU capacity as a plain States.TaskFailed,
      // with the reason only inside the Cause (the job description). Name it here, so Reward can say
      // why and how to fix it; the Cause itself is too large to carry for every trial.
      [STATE_NAMES.whyTrialFailed]: {
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$.error.Cause', IsPresent: true },
              // The job's own StatusReason, as the compact job description JSON writes it (not a log line that quotes it).
              { Variable: '$.error.Cause', StringMatches: `*"StatusReason":"${GPU_WAIT.cancelledStatusPrefix.replace(/[*\\]/g, '\\$&')}*` },
            ],
            Next: STATE_NAMES.trialWithoutGpu,
          },
        ],
        Default: STATE_NAMES.trialFailed,
      },
      [STATE_NAMES.trialWithoutGpu]: {
        Type: 'Pass',
        Parameters: { 'trialId.$': '$.proposal.trialId', status: 'failed', error: FAILURE_NAMES.gpuCapacity, 'resultUri.$': '$.resultUri' },
        End: true,
      },
      [STATE_NAMES.trialSucceeded]: {
        Type: 'Pass',
        Parameters: { 'trialId.$': '$.proposal.trialId', status: 'succeeded', 'jobId.$': '$.job.jobId', 'resultUri.$': '$.resultUri' },
        End: true,
      },
      [STATE_NAMES.trialFailed]: {
        Type: 'Pass',
        Parameters: { 'trialId.$': '$.proposal.trialId', status: 'failed', 'error.$': '$.error.Error', 'resultUri.$': '$.resultUri' },
        End: true,
      },
    },
  };

  const trials: MapState = {
    Type: 'Map',
    Comment: 'one trial job per proposal; MaxConcurrency comes from Plan/Reward',
    ItemsPath: '$.plan.proposals',
    MaxConcurrencyPath: '$.plan.maxConcurrency',
    ItemSelector: {
      'runId.$': '$.runId',
      'project.$': '$.project',
      'generation.$': '$.plan.generation',
      'manifestUri.$': '$.prepared.manifestUri',
      'featuresUri.$': '$.prepared.featuresUri',
      'proposal.$': '$$.Map.Item.Value',
      'resultUri.$': `States.Format('{}${TRIAL_RESULT_PATH}', $.prepared.runUri, $$.Map.Item.Value.trialId)`,
    },
    ItemProcessor: trialsIterator,
    ResultPath: '$.trials',
    Catch: toRecordFailure(STATE_NAMES.trials),
    Next: 'Reward',
  };

  const states: Record<string, State> = {
    Prepare: lambdaTask('Prepare', options, {
      payload: template(
        PrepareInput,
        { 'runId.$': '$.runId', 'project.$': '$.project', 'specUri.$': '$.specUri', 'executionId.$': '$$.Execution.Id' },
        'Prepare payload',
      ),
      output: PrepareOutput,
      resultPath: '$.prepared',
      next: 'Embed',
    }),
    Embed: batchTask('Embed', options, {
      jobName: "States.Format('agentflow-embed-{}', $.runId)",
      environment: batchEnvironment(
        EmbedJobEnv,
        {
          AGENTFLOW_RUN_ID: '$.runId',
          AGENTFLOW_PROJECT: '$.project',
          AGENTFLOW_MANIFEST_URI: '$.prepared.manifestUri',
          AGENTFLOW_FEATURES_URI: '$.prepared.featuresUri',
          AGENTFLOW_OUTPUT_URI: embedResultUri,
        },
        'Embed environment',
      ),
      resultPath: '$.embed',
      next: 'Plan',
      catch: toRecordFailure('Embed'),
    }),
    Plan: lambdaTask('Plan', options, {
      payload: template(
        PlanInput,
        {
          'runId.$': '$.runId',
          'project.$': '$.project',
          'runUri.$': '$.prepared.runUri',
          'manifestUri.$': '$.prepared.manifestUri',
          'featuresUri.$': '$.prepared.featuresUri',
          'embedResultUri.$': embedResultUri,
        },
        'Plan payload',
      ),
      output: PlanOutput,
      resultPath: '$.plan',
      next: STATE_NAMES.trials,
    }),
    [STATE_NAMES.trials]: trials,
    Reward: lambdaTask('Reward', options, {
      payload: template(
        RewardInput,
        {
          'runId.$': '$.runId',
          'project.$': '$.project',
          'runUri.$': '$.prepared.runUri',
          'manifestUri.$': '$.prepared.manifestUri',
          'generation.$': '$.plan.generation',
          'proposals.$': '$.plan.proposals',
          'trials.$': '$.trials',
        },
        'Reward payload',
      ),
      output: RewardOutput,
      // Replaces the plan: the next generation (or the verdict) is all the loop needs.
      resultPath: '$.plan',
      next: STATE_NAMES.isTuningDone,
    }),
    [STATE_NAMES.isTuningDone]: {
      Type: 'Choice',
      Choices: [{ Variable: '$.plan.done', BooleanEquals: true, Next: 'Export' }],
      Default: STATE_NAMES.trials,
    },
    Export: lambdaTask('Export', options, {
      payload: template(
        ExportInput,
        {
          'runId.$': '$.runId',
          'project.$': '$.project',
          'runUri.$': '$.prepared.runUri',
          'manifestUri.$': '$.prepared.manifestUri',
          'bestTrialId.$': '$.plan.bestTrialId',
          'bestTrialResultUri.$': `States.Format('{}${TRIAL_RESULT_PATH}', $.prepared.runUri, $.plan.bestTrialId)`,
        },
        'Export payload',
      ),
      output: ExportOutput,
      resultPath: '$.exported',
      next: 'Promote',
    }),
    Promote: lambdaTask('Promote', options, {
      payload: template(
        PromoteInput,
        {
          'runId.$': '$.runId',
          'project.$': '$.project',
          'manifestUri.$': '$.prepared.manifestUri',
          'modelUri.$': '$.exported.modelUri',
          'cardUri.$': '$.exported.cardUri',
          'sha256.$': '$.exported.sha256',
        },
        'Promote payload',
      ),
      output: PromoteOutput,
      resultPath: '$.promotion',
      next: STATE_NAMES.succeeded,
    }),
    [STATE_NAMES.succeeded]: { Type: 'Succeed' },

    ...Object.fromEntries(['Prepare', 'Embed', 'Plan', STATE_NAMES.trials, 'Reward', 'Export', 'Promote'].map((s) => [failedStateName(s), labelFailure(s)])),
    RecordFailure: lambdaTask('RecordFailure', options, {
      payload: template(
        RecordFailureInput,
        { 'runId.$': '$.runId', 'project.$': '$.project', 'failedState.$': '$.failedState', 'error.$': '$.error' },
        'RecordFailure payload',
      ),
      output: RecordFailureOutput,
      resultPath: '$.failure',
      next: STATE_NAMES.runFailed,
      // Keep `$.error` (the run's failure) intact; the recording failure goes beside it.
      catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.recordFailureError', Next: STATE_NAMES.failureNotRecorded }],
    }),
    // RecordFailureOutput.error is never `States.*` (its contract refuses it), so neither is this Fail state's.
    [STATE_NAMES.runFailed]: {
      Type: 'Fail',
      Comment: 'the failure is recorded on the run',
      ErrorPath: '$.failure.error',
      CausePath: '$.failure.cause',
    } satisfies FailState,
    // A fixed name: the caught error may be a `States.*` one, which a Fail state must not raise.
    [STATE_NAMES.failureNotRecorded]: {
      Type: 'Fail',
      Comment: 'the stage failed and so did RecordFailure',
      Error: FAILURE_NOT_RECORDED,
      Cause: 'the run failed and RecordFailure could not record it; the execution history has both errors',
    } satisfies FailState,
  };

  return {
    Comment: 'agentflow: prepare, embed, tune task weights over generations of GPU trials, export, promote',
    StartAt: 'Prepare',
    States: states,
  };
}

/** Every `${Name}` in a JSON value, in order of first appearance. */
export function placeholdersIn(value: unknown): string[] {
  const found = new Set<string>();
  for (const match of JSON.stringify(value).matchAll(/\$\{([A-Za-z0-9_]+)\}/g)) found.add(match[1]);
  return [...found];
}

/**
 * Replaces every `${Name}` with `values[Name]`, like CDK's `definitionSubstitutions`.
 * Fails when a placeholder has no value, so nothing reaches a runtime half-substituted.
 */
export function substitutePlaceholders(definition: StateMachineDefinition, values: Readonly<Record<string, string>>): StateMachineDefinition {
  const missing = placeholdersIn(definition).filter((name) => values[name] === undefined);
  if (missing.length) {
    throw new WorkflowError(`no value for placeholder(s) ${missing.map((m) => '${' + m + '}').join(', ')}; pass one for each of PLACEHOLDERS`, {
      code: 'PLACEHOLDER_MISSING',
      context: { missing },
    });
  }
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return value.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) => values[name]);
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    return value;
  };
  return walk(definition) as StateMachineDefinition;
}
