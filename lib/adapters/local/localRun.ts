import * as z from 'zod';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CALLER_PRINCIPAL, configToEnv, makeClients, type AgentflowConfig } from '#lib/adapters/config/index.ts';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import { parseSpec, type Spec } from '#lib/domain/spec/index.ts';
import { DEFAULT_LOCAL_DIR, startLocalAws, type LocalAws } from '#lib/adapters/local/standIns.ts';
import { readHolder } from './holder.ts';
import { createStageHandlers } from '#lib/pipeline/handlers.ts';
import { stageDependencies, type StageDependencies } from '#lib/pipeline/dependencies.ts';
import { LAMBDA_STAGES, type BatchJobName } from '#lib/pipeline/index.ts';
import { runLocalWorkflow, type LocalJobCommand, type LocalWorkflowResult, type WarmLocalJob, type WorkflowEvent } from '#lib/adapters/local/workflow.ts';
import { type JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import { JobWorkerPool } from '#lib/adapters/local/jobWorkers.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { stageRunInputs, type StagedRun } from './stageInputs.ts';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The embedded local AWS with the stage dependencies on top: what every local command works against. */
export interface LocalSession {
  aws: LocalAws;
  /** The local services' config, with `sdkCallLog` when the session records SDK calls. */
  config: AgentflowConfig;
  /** The CLI's own dependencies (the caller's, in AWS terms). */
  deps: StageDependencies;
  /**
   * The dependencies of one function or job. When recording, each principal gets its own clients
   * so its calls are tagged with it (the stages share one process here, each has its role in AWS);
   * otherwise every principal shares `deps`.
   */
  depsFor(principal: string): StageDependencies;
  /** The warm processes the session's Batch jobs run in: started as a run begins (or on a job), stopped by `close`. */
  workers: JobWorkerPool;
  close(): Promise<void>;
}

export interface OpenLocalSessionOptions {
  dir?: string;
  /** Record every SDK call, per principal, to this JSONL file (see `AgentflowConfig.sdkCallLog`). */
  sdkCallLog?: string;
  /**
   * When `agentflow up` holds the folder, work through its stand-ins instead of failing with
   * LOCAL_DIR_BUSY (see holder.ts). Commands that must own the folder (`serve`, `up`) leave it off.
   */
  attach?: boolean;
}

export async function openLocalSession(options: OpenLocalSessionOptions = {}): Promise<LocalSession> {
  const aws = options.attach
    ? await startOrAttach(options.dir ?? DEFAULT_LOCAL_DIR)
    : await startLocalAws(options.dir === undefined ? {} : { dir: options.dir });
  const config: AgentflowConfig = { ...aws.config, ...(options.sdkCallLog ? { sdkCallLog: options.sdkCallLog } : {}) };
  const deps = stageDependencies(config, makeClients(config, { principal: CALLER_PRINCIPAL }));
  const byPrincipal = new Map<string, StageDependencies>();
  const depsFor = (principal: string): StageDependencies => {
    if (!config.sdkCallLog) return deps;
    let found = byPrincipal.get(principal);
    if (!found) {
      found = stageDependencies(config, makeClients(config, { principal }));
      byPrincipal.set(principal, found);
    }
    return found;
  };
  const workers = new JobWorkerPool({ command: jobHostCommand() });
  return {
    aws,
    config,
    deps,
    depsFor,
    workers,
    async close() {
      await workers.close();
      for (const { clients } of [deps, ...byPrincipal.values()]) {
        clients.s3.destroy();
        clients.dynamodb.destroy();
      }
      await aws.stop();
    },
  };
}

/**
 * The folder's own stand-ins, or, when a running `agentflow up` holds it, that process's: the
 * same data through its endpoints. Stopping an attached session leaves the holder's services alone.
 */
async function startOrAttach(dir: string): Promise<LocalAws> {
  try {
    return await startLocalAws({ dir });
  } catch (error) {
    if (!(error instanceof AgentflowError && error.code === 'LOCAL_DIR_BUSY')) throw error;
    const holder = await readHolder(dir);
    // The pid check keeps a file left by a dead `up` from pointing at a stranger's ports.
    if (!holder?.aws || holder.pid !== error.context.pid) throw error;
    return { config: holder.aws, dir: resolve(dir), stop: async () => undefined };
  }
}

/** What a Lambda stage of a local run throws once the run was asked to stop: the run fails there, recorded, and resumes from there. */
export class RunInterruptedError extends AgentflowError {
  constructor(state: string, runId: string | undefined) {
    super(`stopped before ${state}, as asked${runId ? `; \`agentflow resume ${runId} -p <project>\` continues from here` : ''}`, {
      code: 'RUN_INTERRUPTED',
      context: { state, runId },
    });
    this.name = 'RunInterrupted';
  }
}

/**
 * The stage handlers of a session, each stage with its own principal's dependencies. Once
 * `signal` aborts, every stage but RecordFailure refuses to start, so the run stops between
 * stages with its failure recorded, and `resume` picks it up where it stopped.
 */
export function localStageHandlers(session: LocalSession, options: { trigger?: string; signal?: AbortSignal } = {}): ReturnType<typeof createStageHandlers> {
  const { signal, ...stageOptions } = options;
  const handlers = createStageHandlers(session.deps, stageOptions);
  for (const stage of LAMBDA_STAGES) {
    const handler = createStageHandlers(session.depsFor(stage.handler), stageOptions)[stage.state] as (event: unknown) => Promise<unknown>;
    const guarded = async (event: unknown) => {
      if (signal?.aborted && stage.state !== 'RecordFailure') throw new RunInterruptedError(stage.state, (event as { runId?: string } | null)?.runId);
      return handler(event);
    };
    (handlers as Record<string, unknown>)[stage.state] = signal ? guarded : handler;
  }
  return handlers;
}

/** `functions/jobs/<script>.ts` run from this checkout's sources. */
const jobScript = (script: string): string[] => [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'functions', 'jobs', `${script}.ts`)];

/** The Batch jobs as a fresh child process each: the same commands the job image runs in AWS. */
export function localJobCommands(): Record<BatchJobName, LocalJobCommand> {
  return { embed: { command: jobScript('embed') }, trial: { command: jobScript('trial') } };
}

/** The program of a warm job worker: the host that runs the same job bodies as the commands above. */
export function jobHostCommand(): string[] {
  return jobScript('host');
}

/** The Batch jobs in the warm workers of `workers`: what local runs use, one start-up per worker instead of per job. */
export function warmLocalJobs(workers: JobWorkerPool): Record<BatchJobName, WarmLocalJob> {
  return { embed: { workers, job: 'embed' }, trial: { workers, job: 'trial' } };
}

/** `run-20261129-020512-a1b2`: sortable, unique enough, and valid as a Batch job name and S3 key part. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `run-${stamp}-${randomBytes(2).toString('hex')}`;
}

export interface LocalRunOptions {
  specPath: string;
  runId?: string;
  trigger?: string;
  onEvent?: (event: WorkflowEvent) => void;
  onJobOutput?: (line: JobOutputLine) => void;
  /** Stops the run between stages (see localStageHandlers); the run is then resumable. */
  signal?: AbortSignal;
  /** Extra environment for the jobs (e.g. `AGENTFLOW_DEVICE`). */
  jobEnv?: Record<string, string>;
  /**
   * `warm` (default): Batch jobs run in the session's warm job workers. `fresh`: one new process
   * per job, exactly the image's command; what `bench e2e` measures the warm workers against.
   */
  jobProcesses?: 'warm' | 'fresh';
  timeoutMs?: number;
}

export interface LocalRunResult {
  runId: string;
  staged: StagedRun;
  result: LocalWorkflowResult;
}

/**
 * One pipeline run on this machine: uploads the spec's local files, then executes the real state
 * machine definition with the stage handlers in-process and the Batch jobs in the session's warm
 * job workers.
 */
export async function runPipelineLocally(session: LocalSession, options: LocalRunOptions): Promise<LocalRunResult> {
  const runId = options.runId ?? newRunId();
  const staged = await stageRunInputs(options.specPath, runId, session.deps.store);
  const result = await executeLocally(session, { runId, project: staged.spec.project, specUri: staged.specUri }, options, {
    trialsAtOnce: trialsAtOnceOf(staged.spec),
  });
  return { runId, staged, result };
}

/**
 * A run from a spec already in the bucket, such as production's copy under `models/<p>/<v>/spec.json`
 * (datasets as S3 URIs): what the monitor retrains from when no local spec file is known.
 */
export async function runStoredSpecLocally(
  session: LocalSession,
  options: Omit<LocalRunOptions, 'specPath' | 'runId'> & { project: string; specUri: string; runId?: string },
): Promise<{ runId: string; result: LocalWorkflowResult }> {
  const runId = options.runId ?? newRunId();
  const stored = await session.deps.store.getJson(options.specUri, z.unknown());
  const specUri = (await session.deps.store.putJson(keys.runFile(runId, 'spec.json'), stored)).uri;
  return { runId, result: await executeLocally(session, { runId, project: options.project, specUri }, options, storedTrialsAtOnce(stored)) };
}

/**
 * Continues a failed or interrupted run from where it stopped: the same execution input runs the
 * definition again, and every stage finds what it already did (Prepare's manifest, Embed's
 * content-addressed shards, Plan's and Reward's generation files, trial results, the registered
 * version) and returns it instead of doing it twice. Only unfinished work runs.
 */
export async function resumePipelineLocally(
  session: LocalSession,
  options: Omit<LocalRunOptions, 'specPath' | 'runId'> & { project: string; runId: string },
): Promise<LocalWorkflowResult> {
  const run = await session.deps.runLog.reopenRun(options.project, options.runId);
  const specUri = run.specUri ?? session.deps.store.uri(`runs/${options.runId}/spec.json`);
  // A read that fails here fails again in Prepare, which records it on the run.
  const stored = await session.deps.store.findJson(specUri, z.unknown()).catch(() => undefined);
  return executeLocally(
    session,
    { runId: options.runId, project: options.project, specUri },
    { ...options, trigger: options.trigger ?? 'resume' },
    storedTrialsAtOnce(stored),
  );
}

/** How many trials a spec trains at once: the Trials Map's concurrency, at most a generation. */
function trialsAtOnceOf(spec: Pick<Spec, 'tuning'>): number {
  return Math.min(spec.tuning.maxConcurrency, spec.tuning.population);
}

/**
 * The same for a spec read back from the bucket. One that is missing or does not parse gives no
 * figure: Prepare reads it again and fails the run saying why.
 */
function storedTrialsAtOnce(document: unknown): { trialsAtOnce?: number } {
  try {
    return { trialsAtOnce: trialsAtOnceOf(parseSpec(document)) };
  } catch {
    return {};
  }
}

/**
 * Each of the trials that train at once gets its share of this machine's cores as ONNX Runtime's
 * intra-op threads. Left to ORT, every trial takes all the cores, and concurrent trials' spinning
 * threads then contend for them. In AWS each Batch job has its own vCPUs and ORT's default is right;
 * `AGENTFLOW_INTRA_OP_THREADS` (environment or `jobEnv`) still wins.
 */
export function localTrialThreads(trialsAtOnce: number | undefined, cores = availableParallelism()): { AGENTFLOW_INTRA_OP_THREADS?: string } {
  if (trialsAtOnce === undefined) return {};
  return { AGENTFLOW_INTRA_OP_THREADS: String(Math.max(1, Math.floor(cores / trialsAtOnce))) };
}

async function executeLocally(
  session: LocalSession,
  input: { runId: string; project: string; specUri: string },
  options: Omit<LocalRunOptions, 'specPath' | 'runId'>,
  expected: { trialsAtOnce?: number } = {},
): Promise<LocalWorkflowResult> {
  // The SDK's Node 20 notice would print once per job process; the Lambda runtime is Node 22 anyway.
  const quiet = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  const passThrough = Object.fromEntries(
    ['AGENTFLOW_DEVICE', 'AGENTFLOW_INTRA_OP_THREADS', 'AGENTFLOW_EMBED_BATCH_SIZE'].flatMap((name) => (process.env[name] ? [[name, process.env[name]!]] : [])),
  );
  const env = { ...configToEnv(session.config), ...quiet, ...localTrialThreads(expected.trialsAtOnce), ...passThrough, ...options.jobEnv };
  const warm = options.jobProcesses !== 'fresh';
  // The workers start loading while Prepare runs, and the Map's trials find one each instead of waiting for a start-up.
  if (warm) session.workers.prestart({ definitionEnv: env, cwd: REPO_ROOT, workers: Math.max(1, expected.trialsAtOnce ?? 1) });
  return runLocalWorkflow({
    input,
    handlers: localStageHandlers(session, { trigger: options.trigger ?? 'cli', ...(options.signal ? { signal: options.signal } : {}) }),
    jobs: warm ? warmLocalJobs(session.workers) : localJobCommands(),
    env,
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    ...(options.onJobOutput ? { onJobOutput: options.onJobOutput } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    cwd: REPO_ROOT,
  });
}
