/**
 * The local runtime for the workflow: the same definition CDK deploys, executed by
 * aws-local-stepfunctions, with Lambda stages routed to in-process handlers and Batch stages to
 * warm job workers (`JobWorkerPool`) or fresh child processes (`launchLocalJob`). Handlers and
 * jobs are the production code; only the transport differs, so a local run is a real test of the
 * deployed workflow.
 */
import { StateMachine, type RunOptions, type StateMachineDefinition as LocalDefinition } from 'aws-local-stepfunctions';
import type { JsonValue, State, StateMachineDefinition } from '#lib/pipeline/asl.ts';
import { RunContext, executionName } from '#lib/pipeline/contracts.ts';
import { buildDefinition, PLACEHOLDERS, substitutePlaceholders } from '#lib/pipeline/definition.ts';
import { TaskError, WorkflowError } from '#lib/pipeline/errors.ts';
import { launchLocalJob, type JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import type { JobWorkerPool } from '#lib/adapters/local/jobWorkers.ts';
import { BATCH_STAGES, JOB_QUEUE_PLACEHOLDER, LAMBDA_STAGES, PARTITION_PLACEHOLDER, type BatchJobName, type LambdaStageName } from '#lib/pipeline/stages.ts';

/** A Lambda handler as the runner calls it: the event is what the state's `Payload` template built. */
export type LocalLambdaHandler = (event: unknown) => unknown;

/** A job run as a fresh child process per attempt, as the job image runs its command. */
export interface LocalJobCommand {
  /** The program and its arguments, e.g. `[process.execPath, '--import', 'tsx', 'functions/jobs/trial.ts']`. */
  command: string[];
}

/** A job run in a warm worker of `workers`, whose host knows it as `job`. */
export interface WarmLocalJob {
  workers: JobWorkerPool;
  job: BatchJobName;
}

export type LocalJob = LocalJobCommand | WarmLocalJob;

const isRunnable = (job: LocalJob | undefined): boolean => (job === undefined ? false : 'command' in job ? job.command?.length > 0 : Boolean(job.workers));

export type WorkflowEventType =
  | 'ExecutionStarted'
  | 'StateEntered'
  | 'StateExited'
  | 'StateFailed'
  | 'StateRetried'
  | 'StateCaught'
  | 'MapIterationStarted'
  | 'MapIterationSucceeded'
  | 'MapIterationFailed'
  | 'ExecutionSucceeded'
  | 'ExecutionFailed';

/** A step of a local execution, for progress display. */
export interface WorkflowEvent {
  type: WorkflowEventType;
  /** The state's name (the Map's, on Map iteration events); absent on execution events. */
  state?: string;
  /** The Map iteration (proposal index) for states inside the Trials iterator. */
  index?: number;
  /** ISO 8601 time of the event. */
  at: string;
  /**
   * StateExited/ExecutionSucceeded: `{ output }`; StateFailed/ExecutionFailed: `{ error, cause }`;
   * StateRetried: `{ attempt, errorEquals }`; StateCaught: `{ errorEquals, next }`.
   */
  detail?: Record<string, unknown>;
}

export interface RunLocalWorkflowOptions {
  /** Defaults to `buildDefinition()`; placeholders are substituted with local names. */
  definition?: StateMachineDefinition;
  /** The execution input: the run context. */
  input: RunContext;
  handlers: Record<LambdaStageName, LocalLambdaHandler>;
  jobs: Record<BatchJobName, LocalJob>;
  /** The config variables (`configToEnv`) every job gets, as the Batch job definitions set them in AWS. */
  env?: Readonly<Record<string, string>>;
  onEvent?: (event: WorkflowEvent) => void;
  /** Job output lines; by default printed with the job name as prefix. */
  onJobOutput?: (line: JobOutputLine) => void;
  /** The whole run's limit; past it the run is abandoned, jobs are killed and the promise rejects. Default 6 h. */
  timeoutMs?: number;
  /** Replaces every Retry pause (e.g. 0 in tests) instead of the definition's backoff. */
  retryIntervalMs?: number;
  /** Working directory of the jobs. */
  cwd?: string;
}

export interface LocalWorkflowResult {
  status: 'SUCCEEDED' | 'FAILED';
  executionId: string;
  /** The final state (see `WorkflowOutput`), when the run succeeded. */
  output?: unknown;
  /** The execution's error name and cause, when it failed (from RecordFailure when it could record them). */
  error?: string;
  cause?: string;
}

const DEFAULT_TIMEOUT_MS = 6 * 3600 * 1000;

/** The names the local runtime substitutes for the definition's placeholders. */
export function localPlaceholderValues(): Record<string, string> {
  const values: Record<string, string> = { [JOB_QUEUE_PLACEHOLDER]: 'local:batch:job-queue', [PARTITION_PLACEHOLDER]: 'aws' };
  for (const stage of LAMBDA_STAGES) values[stage.placeholder] = `local:lambda:${stage.state}`;
  for (const stage of BATCH_STAGES) values[stage.placeholder] = `local:batch:job-definition:${stage.job}`;
  for (const name of PLACEHOLDERS) {
    if (!values[name]) throw new WorkflowError(`no local value for placeholder \${${name}}`, { code: 'PLACEHOLDER_MISSING', context: { name } });
  }
  return values;
}

/** aws-local-stepfunctions 3 uses `Promise.withResolvers` (Node 22+); Node 20 needs it supplied. */
export function ensurePromiseWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: unknown };
  if (typeof P.withResolvers === 'function') return;
  P.withResolvers = function withResolvers<T>() {
    let resolve!: (value: T | PromiseLike<T>) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

/** Every state of the definition, Map iterators included, by name. */
function allStates(definition: { States: Record<string, State> }): Map<string, State> {
  const found = new Map<string, State>();
  for (const [name, state] of Object.entries(definition.States)) {
    found.set(name, state);
    if (state.Type === 'Map') for (const [n, s] of allStates(state.ItemProcessor)) found.set(n, s);
  }
  return found;
}

/**
 * A thrown handler error as Step Functions' `lambda:invoke` reports it: the error name is the
 * function's `errorType` (its `name`, so `Retry` on `Lambda.TooManyRequestsException` or `Catch`
 * on a domain error match by name), and the Cause is the runtime's JSON error document.
 */
function lambdaFailure(state: string, error: unknown): TaskError {
  const errorType = error instanceof Error ? error.name : 'Error';
  const errorMessage = error instanceof Error ? error.message : String(error);
  const trace = error instanceof Error && error.stack ? error.stack.split('\n') : [];
  return new TaskError(errorType, JSON.stringify({ errorType, errorMessage, trace }), { state }, error);
}

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** The job's environment from `ContainerOverrides.Environment`, checked as Batch's SubmitJob would. */
function containerEnvironment(state: string, parameters: Record<string, unknown>): { jobName: string; env: Record<string, string> } {
  const jobName = parameters.JobName;
  if (typeof jobName !== 'string' || !JOB_NAME.test(jobName)) {
    throw new TaskError(
      'Batch.ClientException',
      `JobName ${JSON.stringify(jobName)} is invalid: up to 128 letters, digits, "-" or "_", starting with a letter or digit`,
      { state },
    );
  }
  const overrides = (parameters.ContainerOverrides ?? {}) as { Environment?: unknown };
  const environment = overrides.Environment ?? [];
  if (!Array.isArray(environment)) throw new TaskError('Batch.ClientException', 'ContainerOverrides.Environment must be a list of { Name, Value }', { state });
  const env: Record<string, string> = {};
  for (const entry of environment as { Name?: unknown; Value?: unknown }[]) {
    if (typeof entry?.Name !== 'string' || typeof entry.Value !== 'string') {
      throw new TaskError('Batch.ClientException', `environment entry ${JSON.stringify(entry)} must have a string Name and a string Value`, { state });
    }
    env[entry.Name] = entry.Value;
  }
  return { jobName, env };
}

interface LocalEventLog {
  type: string;
  timestamp: number;
  index?: number;
  state?: { name: string; output?: unknown };
  parentState?: { name: string };
  Error?: string;
  Cause?: unknown;
  output?: unknown;
  retry?: { retrier: { ErrorEquals: string[] }; attempt: number };
  catch?: { catcher: { ErrorEquals: string[]; Next: string } };
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined || cause === null) return undefined;
  if (typeof cause === 'string') return cause;
  if (cause instanceof Error) return cause.message;
  return JSON.stringify(cause);
}

function toWorkflowEvent(event: LocalEventLog): WorkflowEvent | undefined {
  const at = new Date(event.timestamp).toISOString();
  const base = { at, ...(event.state ? { state: event.state.name } : {}), ...(event.index !== undefined ? { index: event.index } : {}) };
  switch (event.type) {
    case 'ExecutionStarted':
    case 'StateEntered':
      return { type: event.type, ...base };
    case 'StateExited':
      return { type: 'StateExited', ...base, detail: { output: event.state?.output } };
    case 'ExecutionSucceeded':
      return { type: 'ExecutionSucceeded', ...base, detail: { output: event.output } };
    case 'StateFailed':
    case 'ExecutionFailed':
      return { type: event.type, ...base, detail: { error: event.Error, cause: causeText(event.Cause) } };
    case 'StateRetried':
      return { type: 'StateRetried', ...base, detail: { attempt: event.retry?.attempt, errorEquals: event.retry?.retrier.ErrorEquals } };
    case 'StateCaught':
      return { type: 'StateCaught', ...base, detail: { errorEquals: event.catch?.catcher.ErrorEquals, next: event.catch?.catcher.Next } };
    // Step Functions writes these to the history too, so they count against its event limit (lib/pipeline/history.ts).
    case 'MapIterationStarted':
    case 'MapIterationSucceeded':
    case 'MapIterationFailed':
      return {
        type: event.type,
        at,
        ...(event.parentState ? { state: event.parentState.name } : {}),
        ...(event.index !== undefined ? { index: event.index } : {}),
      };
    default:
      // Parallel branch bookkeeping (no Parallel state in the definition).
      return undefined;
  }
}

/**
 * Executes the workflow on this machine. Resolves with the execution's outcome (a failed stage is
 * a `FAILED` result, recorded by the RecordFailure handler); rejects only when the run could not
 * be carried out: bad wiring, an invalid definition, or `timeoutMs` passing.
 */
export async function runLocalWorkflow(options: RunLocalWorkflowOptions): Promise<LocalWorkflowResult> {
  ensurePromiseWithResolvers();
  const input = RunContext.safeParse(options.input);
  if (!input.success) {
    throw new WorkflowError(`the run input is invalid: ${input.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, {
      code: 'INPUT_INVALID',
      context: { input: options.input },
      cause: input.error,
    });
  }
  const missingHandlers = LAMBDA_STAGES.filter((s) => typeof options.handlers[s.state] !== 'function').map((s) => s.state);
  const missingJobs = BATCH_STAGES.filter((s) => !isRunnable(options.jobs[s.job])).map((s) => s.job);
  if (missingHandlers.length || missingJobs.length) {
    throw new WorkflowError(
      `the local runner needs a handler for every Lambda stage and a command or job workers for every job; missing handlers [${missingHandlers.join(', ')}], jobs [${missingJobs.join(', ')}]`,
      { code: 'HANDLER_MISSING', context: { missingHandlers, missingJobs } },
    );
  }

  const definition = substitutePlaceholders(options.definition ?? buildDefinition(), localPlaceholderValues());
  const states = allStates(definition);
  const timeoutSecondsOf = (state: string): number | undefined => {
    const s = states.get(state);
    return s?.Type === 'Task' ? s.TimeoutSeconds : undefined;
  };
  const executionId = `local:execution:agentflow:${input.data.runId}`;
  const jobsAbort = new AbortController();

  const taskResourceLocalHandlers: Record<string, (input: JsonValue) => Promise<JsonValue>> = {};
  for (const stage of LAMBDA_STAGES) {
    const handler = options.handlers[stage.state];
    taskResourceLocalHandlers[stage.state] = async (taskInput) => {
      const event = (taskInput as { Payload?: unknown }).Payload ?? null;
      let result: unknown;
      try {
        result = await handler(event);
      } catch (error) {
        throw lambdaFailure(stage.state, error);
      }
      // Lambda serializes the result to JSON; so does this, so a Date or an undefined field behaves the same.
      const payload = result === undefined ? null : (JSON.parse(JSON.stringify(result)) as JsonValue);
      return { Payload: payload, StatusCode: 200, ExecutedVersion: '$LATEST' };
    };
  }
  for (const stage of BATCH_STAGES) {
    const job = options.jobs[stage.job];
    taskResourceLocalHandlers[stage.state] = async (taskInput) => {
      const { jobName, env } = containerEnvironment(stage.state, taskInput as Record<string, unknown>);
      const timeoutSeconds = timeoutSecondsOf(stage.state);
      const attempt = {
        jobName,
        timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
        signal: jobsAbort.signal,
        onOutput: options.onJobOutput,
        cwd: options.cwd,
      };
      // As in AWS: the job definition's environment (the config) under the state's overrides.
      const result =
        'command' in job
          ? await launchLocalJob({ ...attempt, command: job.command, env: { ...options.env, ...env } })
          : await job.workers.run({ ...attempt, job: job.job, definitionEnv: options.env, env });
      return { JobId: result.JobId, JobName: result.JobName, Status: result.Status };
    };
  }

  const retryIntervalOverrides: Record<string, number> = {};
  if (options.retryIntervalMs !== undefined) {
    for (const [name, state] of states) if ('Retry' in state && state.Retry) retryIntervalOverrides[name] = options.retryIntervalMs;
  }

  let machine: StateMachine;
  try {
    machine = new StateMachine(definition as unknown as LocalDefinition, { validationOptions: { checkArn: true, checkPaths: true } });
  } catch (error) {
    throw new WorkflowError(`the workflow definition is invalid: ${error instanceof Error ? error.message : String(error)}`, {
      code: 'DEFINITION_INVALID',
      cause: error,
    });
  }
  const runOptions: RunOptions = {
    overrides: { taskResourceLocalHandlers, retryIntervalOverrides },
    context: { Execution: { Id: executionId, Name: executionName({ runId: input.data.runId }) } },
  };
  const execution = machine.run(input.data as unknown as JsonValue, runOptions);

  const entered: string[] = [];
  let onEventError: unknown;
  const pump = (async () => {
    for await (const raw of execution.eventLogs) {
      const event = toWorkflowEvent(raw as unknown as LocalEventLog);
      if (!event) continue;
      if (event.type === 'StateEntered' && event.state) entered.push(event.index === undefined ? event.state : `${event.state}[${event.index}]`);
      if (options.onEvent && onEventError === undefined) {
        try {
          options.onEvent(event);
        } catch (error) {
          onEventError = error;
        }
      }
    }
  })();

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });

  let result: LocalWorkflowResult;
  try {
    const outcome = await Promise.race([
      execution.result.then(
        (output) => ({ output }),
        (error: unknown) => ({ error }),
      ),
      timedOut,
    ]);
    if (outcome === 'timeout') {
      jobsAbort.abort();
      execution.abort();
      const last = entered.slice(-3).join(', ') || 'none';
      throw new WorkflowError(
        `local run ${input.data.runId} did not finish within ${timeoutMs} ms (last states entered: ${last}); its jobs were killed. Raise timeoutMs if the run is just slow.`,
        { code: 'WORKFLOW_TIMEOUT', context: { runId: input.data.runId, timeoutMs, lastStates: entered.slice(-3) } },
      );
    }
    if ('output' in outcome) {
      result = { status: 'SUCCEEDED', executionId, output: outcome.output };
    } else {
      // ExecutionError wraps the state machine's own error: its name is the execution's Error, its message the Cause.
      const failure = outcome.error instanceof Error && outcome.error.cause instanceof Error ? outcome.error.cause : outcome.error;
      if (!(failure instanceof Error)) throw failure;
      result = { status: 'FAILED', executionId, error: failure.name, cause: failure.message };
    }
  } finally {
    clearTimeout(timer);
  }
  // The event stream closes with the execution; give forwarded Map events a moment to arrive.
  await Promise.race([pump, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  if (onEventError !== undefined) {
    throw new WorkflowError('the onEvent callback threw; the run finished but its progress was not all reported', {
      code: 'ON_EVENT_FAILED',
      cause: onEventError,
      context: { status: result.status },
    });
  }
  return result;
}
