/**
 * The local stand-in for an AWS Batch job: the job's command as a child process, with the
 * environment the Batch job definition and the state's `ContainerOverrides` would give it.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { TaskError, WorkflowError } from '#lib/pipeline/errors.ts';

export interface JobOutputLine {
  jobName: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface LocalJobOptions {
  /** The program and its arguments, e.g. `[process.execPath, '--import', 'tsx', 'functions/jobs/trial.ts']`. */
  command: readonly string[];
  /** Variables set over `process.env`: the config (`configToEnv`), then the state's `ContainerOverrides.Environment`. */
  env?: Readonly<Record<string, string>>;
  /** The Batch job name; prefixes every output line. */
  jobName: string;
  /** Kill the job after this long and fail with `States.Timeout` (the state's TimeoutSeconds). */
  timeoutMs?: number;
  /** Kill the job when this aborts (the run was abandoned). */
  signal?: AbortSignal;
  /** Receives each output line; by default lines go to this process's stdout/stderr, prefixed with the job name. */
  onOutput?: (line: JobOutputLine) => void;
  /** How long a killed job gets between SIGTERM and SIGKILL. */
  killGraceMs?: number;
  cwd?: string;
}

/** What `batch:submitJob.sync` returns, reduced to what a local job can honestly say. */
export interface LocalJobResult {
  JobId: string;
  JobName: string;
  Status: 'SUCCEEDED';
}

/** How many stderr lines a failed job's Cause carries. */
const LOG_TAIL_LINES = 20;

/** Where job output goes when the caller gives no `onOutput`: this process's streams, prefixed with the job name. */
export function defaultOutput({ jobName, stream, line }: JobOutputLine): void {
  (stream === 'stderr' ? process.stderr : process.stdout).write(`[${jobName}] ${line}\n`);
}

/** Keeps the last LOG_TAIL_LINES lines pushed. */
export function pushTail(tail: string[], line: string): void {
  tail.push(line);
  if (tail.length > LOG_TAIL_LINES) tail.shift();
}

/**
 * A failed job as `batch:submitJob.sync` reports it: the error name (`States.TaskFailed`,
 * `States.Timeout`) and, as the Cause, JSON shaped like a Batch job description plus `LogTail`.
 */
export function jobFailure(
  errorName: string,
  job: { jobId: string; jobName: string; statusReason: string; exitCode: number | null; logTail: readonly string[] },
): TaskError {
  const cause = {
    JobId: job.jobId,
    JobName: job.jobName,
    Status: 'FAILED',
    StatusReason: job.statusReason,
    Container: { ExitCode: job.exitCode },
    LogTail: job.logTail,
  };
  return new TaskError(errorName, JSON.stringify(cause), { jobId: job.jobId, jobName: job.jobName, exitCode: job.exitCode });
}

/** Batch's wording for a job whose container ended on its own with a non-zero code or a signal. */
export function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `Essential container in task exited: killed by ${signal}` : `Essential container in task exited with code ${code}`;
}

/** Batch's wording for a job killed at the state's timeout. */
export function timeoutReason(timeoutMs: number | undefined, signal: NodeJS.Signals | null): string {
  return `Job attempt duration exceeded timeout (${timeoutMs} ms); killed with ${signal ?? 'exit'}`;
}

/** Batch's own wording for a container that never started. */
export function cannotStartReason(program: string, error: Error): string {
  return `CannotStartContainerError: ${program}: ${error.message}`;
}

/** What a job's promise rejects with when the run is abandoned: not a Batch failure, the run is over. */
export function jobAborted(jobName: string, context: { jobId?: string; started: boolean; why?: string }): WorkflowError {
  const why = context.why ?? 'the run was aborted';
  return new WorkflowError(context.started ? `job ${jobName} was stopped: ${why}` : `job ${jobName} was not started: ${why}`, {
    code: 'JOB_ABORTED',
    context: { jobName, ...(context.jobId ? { jobId: context.jobId } : {}) },
  });
}

/** Splits a stream into lines, handing each complete line on as it arrives. */
export function lines(onLine: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
  let pending = '';
  return {
    push(chunk) {
      pending += chunk.toString('utf8');
      const parts = pending.split(/\r?\n/);
      pending = parts.pop() ?? '';
      for (const part of parts) onLine(part);
    },
    end() {
      if (pending) onLine(pending);
      pending = '';
    },
  };
}

/**
 * Runs one job to completion. Resolves like a succeeded Batch job; rejects with a `TaskError`
 * named `States.TaskFailed` (non-zero exit, signal, command not found) or `States.Timeout`, whose
 * message (the catcher's Cause) is JSON shaped like a Batch job description: `Status`,
 * `StatusReason`, `Container.ExitCode`, plus `LogTail` with the last stderr lines.
 */
export function launchLocalJob(options: LocalJobOptions): Promise<LocalJobResult> {
  const { command, jobName } = options;
  if (command.length === 0) {
    return Promise.reject(
      new WorkflowError(`job ${jobName}: the command is empty; give the program and its arguments`, { code: 'JOB_COMMAND_EMPTY', context: { jobName } }),
    );
  }
  const jobId = `local-${randomUUID()}`;
  const onOutput = options.onOutput ?? defaultOutput;
  const killGraceMs = options.killGraceMs ?? 5_000;
  const stderrTail: string[] = [];

  return new Promise<LocalJobResult>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(jobAborted(jobName, { started: false }));
      return;
    }
    const child = spawn(command[0], command.slice(1), {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let settled = false;
    let stoppedBecause: 'timeout' | 'aborted' | undefined;
    let timer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const fail = (errorName: string, statusReason: string, exitCode: number | null) =>
      reject(jobFailure(errorName, { jobId, jobName, statusReason, exitCode, logTail: stderrTail }));
    const stop = (reason: 'timeout' | 'aborted') => {
      if (settled || stoppedBecause) return;
      stoppedBecause = reason;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), killGraceMs);
      killTimer.unref();
    };
    const onAbort = () => stop('aborted');

    const out = lines((line) => onOutput({ jobName, stream: 'stdout', line }));
    const err = lines((line) => {
      pushTail(stderrTail, line);
      onOutput({ jobName, stream: 'stderr', line });
    });
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));

    if (options.timeoutMs !== undefined) timer = setTimeout(() => stop('timeout'), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = () => {
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      out.end();
      err.end();
    };

    child.on('error', (error) => {
      if (settled) return;
      finish();
      fail('States.TaskFailed', cannotStartReason(command[0], error), null);
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      finish();
      if (stoppedBecause === 'timeout') {
        fail('States.Timeout', timeoutReason(options.timeoutMs, signal), code);
      } else if (stoppedBecause === 'aborted') {
        reject(jobAborted(jobName, { jobId, started: true }));
      } else if (code === 0) {
        resolve({ JobId: jobId, JobName: jobName, Status: 'SUCCEEDED' });
      } else {
        fail('States.TaskFailed', exitReason(code, signal), code);
      }
    });
  });
}
