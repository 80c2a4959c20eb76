/**
 * Local Batch jobs in warm worker processes. A fresh `node --import tsx functions/jobs/<job>.ts`
 * spends most of a second transpiling and loading modules before the job starts, once per trial;
 * the pool instead keeps job hosts (jobHost.ts) alive across the jobs of a session and sends each
 * job to an idle one. Everything else is what `launchLocalJob` does for a fresh process: the same
 * environment, output lines attributed to the job that printed them, a Batch-shaped Cause with the
 * stderr tail, `States.Timeout`, abort on run abandonment, exit codes with the same meaning.
 *
 * A worker whose job times out or is aborted is killed (whatever the job left running dies with
 * it), and one that dies while running a job (a native abort, running out of memory,
 * `process.exit`) fails that job alone; either way the next job gets a new worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { canonicalJson } from '#lib/domain/spec/index.ts';
import { WorkflowError } from '#lib/pipeline/errors.ts';
import {
  cannotStartReason,
  defaultOutput,
  exitReason,
  jobAborted,
  jobFailure,
  lines,
  pushTail,
  timeoutReason,
  type JobOutputLine,
  type LocalJobResult,
} from '#lib/adapters/local/batchJob.ts';
import { HostMessage, JOB_END_MARKER, parseJobEnd, type JobRequest } from '#lib/adapters/local/jobHost.ts';

export interface JobWorkerPoolOptions {
  /** The host program and its arguments, e.g. `[process.execPath, '--import', 'tsx', 'functions/jobs/host.ts']`. */
  command: readonly string[];
  /**
   * The most workers alive at once. The pool grows on demand, so it holds as many workers as jobs
   * were asked for at once (the Map's concurrency); past this cap a job waits for a free worker,
   * as a Batch job waits in RUNNABLE for capacity. Default 8.
   */
  maxWorkers?: number;
  /** How long a killed worker gets between SIGTERM and SIGKILL. */
  killGraceMs?: number;
  /**
   * How long a worker may sit idle before it is stopped. A run's jobs follow each other within
   * seconds; `up` retrains hours apart, and an idle worker holds its memory. Default one minute.
   */
  idleMs?: number;
}

export interface WarmJobOptions {
  /** The job the host runs: a key of its job table, e.g. `trial`. */
  job: string;
  /** The Batch job name; attributes every output line. */
  jobName: string;
  /**
   * The job definition's environment (the config variables): the worker process's environment,
   * over this process's. Jobs share a worker only when this (and `cwd`) is the same.
   */
  definitionEnv?: Readonly<Record<string, string>>;
  /** The state's `ContainerOverrides.Environment`: this job's variables, over the worker's environment. */
  env?: Readonly<Record<string, string>>;
  /** Kill the job's worker after this long and fail with `States.Timeout` (the state's TimeoutSeconds). */
  timeoutMs?: number;
  /** Kill the job's worker when this aborts (the run was abandoned). */
  signal?: AbortSignal;
  /** Receives each output line; by default lines go to this process's stdout/stderr, prefixed with the job name. */
  onOutput?: (line: JobOutputLine) => void;
  cwd?: string;
}

export interface WarmJobResult extends LocalJobResult {
  /** The worker process that ran the job: the same pid for jobs that shared a worker. */
  workerPid: number;
}

export interface JobWorkerStats {
  /** Workers started since the pool was made. */
  started: number;
  /** Workers alive now, busy or idle. */
  alive: number;
  /** Per started worker that became ready: milliseconds from spawn to ready (modules loaded). */
  readyMs: number[];
}

const DEFAULT_MAX_WORKERS = 8;
const DEFAULT_IDLE_MS = 60_000;

interface Attempt {
  id: string;
  options: WarmJobOptions;
  key: string;
  stderrTail: string[];
  ended: { stdout: boolean; stderr: boolean };
  exitCode?: number;
  worker?: Worker;
  stoppedBecause?: 'timeout' | 'aborted' | 'closed';
  settled: boolean;
  timer?: NodeJS.Timeout;
  onAbort: () => void;
  resolve: (result: WarmJobResult) => void;
  reject: (error: Error) => void;
}

interface Worker {
  child: ChildProcess;
  key: string;
  spawnedAt: number;
  ready: boolean;
  /** Being killed: takes no more jobs. */
  retiring: boolean;
  attempt?: Attempt;
  idleTimer?: NodeJS.Timeout;
  exited: Promise<void>;
}

/** Jobs share a worker only when the worker's own environment and folder would be the same for a fresh process. */
function workerKey(options: Pick<WarmJobOptions, 'definitionEnv' | 'cwd'>): string {
  return canonicalJson({ cwd: options.cwd ?? null, env: options.definitionEnv ?? {} });
}

/** Whether the worker's handles keep this process alive: only while it runs a job, so a forgotten idle pool never holds up exit. */
function holdOpen(child: ChildProcess, hold: boolean): void {
  for (const handle of [child, child.channel, child.stdout as Socket | null, child.stderr as Socket | null]) {
    if (hold) handle?.ref();
    else handle?.unref();
  }
}

/**
 * The warm workers of one session. `run` resolves like a succeeded Batch job and rejects as
 * `launchLocalJob` does; `close` kills every worker and waits for them to exit.
 */
export class JobWorkerPool {
  readonly #command: readonly string[];
  readonly #maxWorkers: number;
  readonly #killGraceMs: number;
  readonly #idleMs: number;
  readonly #workers = new Set<Worker>();
  readonly #queue: Attempt[] = [];
  readonly #readyMs: number[] = [];
  #started = 0;
  #closed = false;

  constructor(options: JobWorkerPoolOptions) {
    if (options.command.length === 0) {
      throw new WorkflowError('the job worker command is empty; give the host program and its arguments', { code: 'JOB_COMMAND_EMPTY' });
    }
    const maxWorkers = options.maxWorkers ?? DEFAULT_MAX_WORKERS;
    if (!Number.isInteger(maxWorkers) || maxWorkers < 1) {
      throw new WorkflowError(`maxWorkers ${maxWorkers} is not a positive integer; pass at least 1`, { code: 'JOB_WORKERS_INVALID', context: { maxWorkers } });
    }
    this.#command = options.command;
    this.#maxWorkers = maxWorkers;
    this.#killGraceMs = options.killGraceMs ?? 5_000;
    this.#idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  }

  stats(): JobWorkerStats {
    return { started: this.#started, alive: this.#workers.size, readyMs: [...this.#readyMs] };
  }

  run(options: WarmJobOptions): Promise<WarmJobResult> {
    const { jobName } = options;
    if (this.#closed) return Promise.reject(jobAborted(jobName, { started: false, why: 'the job workers were closed with their session' }));
    if (options.signal?.aborted) return Promise.reject(jobAborted(jobName, { started: false }));
    return new Promise<WarmJobResult>((resolve, reject) => {
      const attempt: Attempt = {
        id: `local-${randomUUID()}`,
        options,
        key: workerKey(options),
        stderrTail: [],
        ended: { stdout: false, stderr: false },
        settled: false,
        onAbort: () => this.#stop(attempt, 'aborted'),
        resolve,
        reject,
      };
      if (options.timeoutMs !== undefined) attempt.timer = setTimeout(() => this.#stop(attempt, 'timeout'), options.timeoutMs);
      options.signal?.addEventListener('abort', attempt.onAbort, { once: true });
      this.#queue.push(attempt);
      this.#pump();
    });
  }

  /**
   * Starts workers ahead of the jobs, up to `workers` of this environment (counting busy ones),
   * so that the jobs a Map will ask for at once do not each wait for a worker's start-up. A worker
   * started here and never used stops after `idleMs`, as an idle one does.
   */
  prestart(options: Pick<WarmJobOptions, 'definitionEnv' | 'cwd'> & { workers: number }): void {
    if (this.#closed) return;
    const key = workerKey(options);
    let alike = [...this.#workers].filter((w) => w.key === key && !w.retiring).length;
    while (alike < Math.min(options.workers, this.#maxWorkers) && this.#workers.size < this.#maxWorkers) {
      const worker = this.#spawn({ key, definitionEnv: options.definitionEnv, cwd: options.cwd });
      holdOpen(worker.child, false);
      this.#idle(worker);
      alike += 1;
    }
  }

  /** Kills every worker (jobs still running fail as aborted) and resolves once all have exited. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const attempt of this.#queue.splice(0)) {
      this.#settle(attempt, () =>
        attempt.reject(jobAborted(attempt.options.jobName, { started: false, why: 'the job workers were closed with their session' })),
      );
    }
    const exits = [...this.#workers].map((worker) => {
      if (worker.attempt) worker.attempt.stoppedBecause ??= 'closed';
      this.#kill(worker);
      return worker.exited;
    });
    await Promise.all(exits);
  }

  /** Gives each waiting job an idle worker of its kind, a new worker while under the cap, or makes room. */
  #pump(): void {
    if (this.#closed) return;
    for (const attempt of [...this.#queue]) {
      const idle = [...this.#workers].find((w) => !w.attempt && !w.retiring && w.key === attempt.key);
      if (idle) {
        this.#assign(idle, attempt);
      } else if (this.#workers.size < this.#maxWorkers) {
        this.#assign(this.#spawn({ key: attempt.key, definitionEnv: attempt.options.definitionEnv, cwd: attempt.options.cwd }), attempt);
      } else {
        // At the cap: an idle worker made for another environment gives its place up.
        const other = [...this.#workers].find((w) => !w.attempt && !w.retiring);
        if (other) this.#kill(other);
      }
    }
  }

  #assign(worker: Worker, attempt: Attempt): void {
    this.#queue.splice(this.#queue.indexOf(attempt), 1);
    clearTimeout(worker.idleTimer);
    worker.attempt = attempt;
    attempt.worker = worker;
    holdOpen(worker.child, true);
    if (worker.ready) this.#send(worker, attempt);
  }

  #send(worker: Worker, attempt: Attempt): void {
    const request: JobRequest = { type: 'run', id: attempt.id, job: attempt.options.job, env: { ...attempt.options.env } };
    // A failed send means the worker is gone; its exit fails the job.
    worker.child.send(request, (error) => {
      if (error) this.#kill(worker);
    });
  }

  #spawn(placement: { key: string; definitionEnv?: Readonly<Record<string, string>> | undefined; cwd?: string | undefined }): Worker {
    const child = spawn(this.#command[0], this.#command.slice(1), {
      cwd: placement.cwd,
      env: { ...process.env, ...placement.definitionEnv },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.#started += 1;
    let exited!: () => void;
    const worker: Worker = { child, key: placement.key, spawnedAt: performance.now(), ready: false, retiring: false, exited: new Promise((r) => (exited = r)) };
    this.#workers.add(worker);

    const out = lines((line) => this.#line(worker, 'stdout', line));
    const err = lines((line) => this.#line(worker, 'stderr', line));
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('message', (message: unknown) => {
      if (worker.ready || !HostMessage.safeParse(message).success) return;
      worker.ready = true;
      this.#readyMs.push(performance.now() - worker.spawnedAt);
      if (worker.attempt) this.#send(worker, worker.attempt);
    });
    let gone = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null, startError?: Error) => {
      if (gone) return;
      gone = true;
      out.end();
      err.end();
      this.#workers.delete(worker);
      const running = worker.attempt;
      if (running && !running.settled) this.#ended(worker, running, { code, signal, startError });
      exited();
      this.#pump();
    };
    // A program that cannot start emits 'error' and may never emit 'close'.
    child.on('error', (error) => {
      if (child.pid === undefined) onGone(null, null, error);
    });
    child.on('close', (code, signal) => onGone(code, signal));
    return worker;
  }

  /** One output line of a worker: an end marker, or a line of the job it runs. */
  #line(worker: Worker, stream: 'stdout' | 'stderr', line: string): void {
    const at = line.indexOf(JOB_END_MARKER);
    const text = at < 0 ? line : line.slice(0, at);
    // The job's last line may lack its newline; the marker then follows it on the same line.
    if (at < 0 || text) this.#deliver(worker, stream, text);
    if (at < 0) return;
    const end = parseJobEnd(line.slice(at + JOB_END_MARKER.length));
    const attempt = worker.attempt;
    if (!attempt || end.id !== attempt.id) return;
    attempt.ended[stream] = true;
    if (stream === 'stdout') attempt.exitCode = end.exitCode;
    if (attempt.ended.stdout && attempt.ended.stderr && !attempt.stoppedBecause) this.#finished(worker, attempt);
  }

  #deliver(worker: Worker, stream: 'stdout' | 'stderr', line: string): void {
    const attempt = worker.attempt;
    if (!attempt || attempt.ended[stream]) {
      // A line printed while the worker runs no job (a finished job's stray timer) belongs to no job.
      defaultOutput({ jobName: `job-worker-${worker.child.pid}`, stream, line });
      return;
    }
    if (stream === 'stderr') pushTail(attempt.stderrTail, line);
    (attempt.options.onOutput ?? defaultOutput)({ jobName: attempt.options.jobName, stream, line });
  }

  /** The job returned: the worker goes back to the pool and the job resolves or fails by its exit code. */
  #finished(worker: Worker, attempt: Attempt): void {
    worker.attempt = undefined;
    holdOpen(worker.child, false);
    this.#idle(worker);
    const code = attempt.exitCode ?? null;
    this.#settle(attempt, () => {
      if (code === 0) attempt.resolve(this.#succeeded(attempt, worker));
      else attempt.reject(this.#failure(attempt, 'States.TaskFailed', exitReason(code, null), code));
    });
    this.#pump();
  }

  /** The worker ended while the job was its own: stopped by the pool, or died. */
  #ended(worker: Worker, attempt: Attempt, how: { code: number | null; signal: NodeJS.Signals | null; startError?: Error }): void {
    const { jobName, timeoutMs } = attempt.options;
    const pid = worker.child.pid;
    this.#settle(attempt, () => {
      if (how.startError) {
        attempt.reject(this.#failure(attempt, 'States.TaskFailed', cannotStartReason(this.#command[0], how.startError), null));
      } else if (attempt.stoppedBecause === 'timeout') {
        attempt.reject(this.#failure(attempt, 'States.Timeout', timeoutReason(timeoutMs, how.signal), how.code));
      } else if (attempt.stoppedBecause === 'aborted') {
        attempt.reject(jobAborted(jobName, { jobId: attempt.id, started: true }));
      } else if (attempt.stoppedBecause === 'closed') {
        attempt.reject(jobAborted(jobName, { jobId: attempt.id, started: true, why: 'the job workers were closed with their session' }));
      } else if (how.code === 0 && how.signal === null && worker.ready) {
        // The job ended the process itself with success, as a fresh job process may.
        attempt.resolve(this.#succeeded(attempt, worker));
      } else {
        const stage = worker.ready ? 'while running this job' : 'before it was ready to run this job';
        attempt.reject(
          this.#failure(
            attempt,
            'States.TaskFailed',
            `${exitReason(how.code, how.signal)}: its warm job worker (pid ${pid}) ended ${stage}; the next job gets a new worker`,
            how.code,
          ),
        );
      }
    });
  }

  #succeeded(attempt: Attempt, worker: Worker): WarmJobResult {
    return { JobId: attempt.id, JobName: attempt.options.jobName, Status: 'SUCCEEDED', workerPid: worker.child.pid! };
  }

  #failure(attempt: Attempt, errorName: string, statusReason: string, exitCode: number | null): Error {
    return jobFailure(errorName, { jobId: attempt.id, jobName: attempt.options.jobName, statusReason, exitCode, logTail: attempt.stderrTail });
  }

  /** Timeout or abort: a waiting job just fails; a running one takes its worker down with it. */
  #stop(attempt: Attempt, reason: 'timeout' | 'aborted'): void {
    if (attempt.settled || attempt.stoppedBecause) return;
    const { jobName, timeoutMs } = attempt.options;
    if (!attempt.worker) {
      this.#queue.splice(this.#queue.indexOf(attempt), 1);
      this.#settle(attempt, () =>
        attempt.reject(
          reason === 'aborted'
            ? jobAborted(jobName, { started: false })
            : this.#failure(attempt, 'States.Timeout', `Job attempt duration exceeded timeout (${timeoutMs} ms) while waiting for a free job worker`, null),
        ),
      );
      return;
    }
    attempt.stoppedBecause = reason;
    this.#kill(attempt.worker);
  }

  /** A worker without a job: it stops if none comes within idleMs. */
  #idle(worker: Worker): void {
    worker.idleTimer = setTimeout(() => this.#kill(worker), this.#idleMs);
    worker.idleTimer.unref();
  }

  #kill(worker: Worker): void {
    if (worker.retiring) return;
    worker.retiring = true;
    clearTimeout(worker.idleTimer);
    // Held open until it has exited, so whoever awaits `close` sees it go.
    holdOpen(worker.child, true);
    worker.child.kill('SIGTERM');
    const timer = setTimeout(() => worker.child.kill('SIGKILL'), this.#killGraceMs);
    timer.unref();
    void worker.exited.then(() => clearTimeout(timer));
  }

  #settle(attempt: Attempt, outcome: () => void): void {
    if (attempt.settled) return;
    attempt.settled = true;
    clearTimeout(attempt.timer);
    attempt.options.signal?.removeEventListener('abort', attempt.onAbort);
    outcome();
  }
}
