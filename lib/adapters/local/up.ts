import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import { createServeContext, runMonitor, startServer, type MonitorOptions, type MonitorReport, type ServeOptions } from '#lib/serve/index.ts';
import { parseSpecJson, type ScheduleSpec } from '#lib/domain/spec/index.ts';
import type { JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import type { LocalWorkflowResult, WorkflowEvent } from '#lib/adapters/local/workflow.ts';
import { removeHolder, writeHolder } from './holder.ts';
import { newRunId, runPipelineLocally, runStoredSpecLocally, type LocalSession } from './localRun.ts';
import { nextFireTime } from './schedule.ts';

export class UpError extends AgentflowError {
  constructor(message: string, options: { code: 'UP_SPEC_INVALID' | 'UP_INTERVAL_INVALID'; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'UpError';
  }
}

/** One retraining or scheduled run `up` carried out. */
export interface UpRun {
  project: string;
  runId: string;
  trigger: string;
  reason: string;
  startedAt: Date;
  endedAt: Date;
  result: LocalWorkflowResult;
}

export interface UpOptions {
  /** Specs `up` knows by file: their schedules fire, and their retraining re-reads their files (so new rows are picked up). Other served projects retrain from production's stored spec. */
  specPaths?: readonly string[];
  port?: number;
  host?: string;
  /** How often the monitor checks every served project; 0 turns it off. */
  monitorEveryMs: number;
  /** Monitor settings beyond the spec's thresholds (e.g. fewer feedback events per window in a demo). */
  monitor?: Omit<MonitorOptions, 'startRun' | 'now'>;
  serve?: Omit<ServeOptions, 'metricsSink'>;
  /** Extra environment for the Batch jobs, and a run's time limit. */
  jobEnv?: Record<string, string>;
  runTimeoutMs?: number;
  onMonitor?: (report: MonitorReport) => void;
  onRunStart?: (run: Pick<UpRun, 'project' | 'runId' | 'trigger' | 'reason' | 'startedAt'>) => void;
  onRunEnd?: (run: UpRun) => void;
  onEvent?: (event: WorkflowEvent) => void;
  onJobOutput?: (line: JobOutputLine) => void;
  onError?: (error: unknown) => void;
}

export interface RunningUp {
  /** Where /infer and /feedback answer. */
  url: string;
  /** Every run so far, in the order they ended. */
  readonly runs: readonly UpRun[];
  /** The runs waiting to start. */
  readonly queued: number;
  /** Stops between stages of work: no new monitor pass or run starts, a run in flight stops before its next stage (failed, resumable with `agentflow resume`), then the server closes and the folder is released to other processes. */
  stop(): Promise<void>;
}

const silentLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

interface QueuedRun {
  project: string;
  trigger: string;
  reason: string;
  runId: string;
  specPath?: string;
  specUri?: string;
}

/**
 * `agentflow up`: on one machine, what the deployed stack does at once. It serves /infer and
 * /feedback (the Function URLs), runs the monitor on its interval (the scheduled monitor Lambda),
 * fires the specs' schedules (EventBridge Scheduler) and runs the retraining pipelines they and
 * the monitor ask for (Step Functions executions) in this process tree. Promotions reach the
 * router without a restart: the serving context re-reads the serving set and arm counters every
 * few seconds (ServeOptions.statsTtlMs). Other commands work on the same folder through the
 * holder file it writes (holder.ts).
 */
export async function startUp(session: LocalSession, options: UpOptions): Promise<RunningUp> {
  if (!Number.isFinite(options.monitorEveryMs) || options.monitorEveryMs < 0) {
    throw new UpError(
      `the monitor interval ${options.monitorEveryMs} ms is not a duration; give 0 (no monitor) or a positive number (on the command line: --monitor-every <minutes>, e.g. 0.5)`,
      { code: 'UP_INTERVAL_INVALID', context: { monitorEveryMs: options.monitorEveryMs } },
    );
  }
  const specs = await Promise.all(
    (options.specPaths ?? []).map(async (path) => ({ path, spec: parseSpecJson(await readFile(path, 'utf8'), { source: path }) })),
  );
  const specOf = new Map<string, string>();
  for (const { path, spec } of specs) {
    const other = specOf.get(spec.project);
    if (other)
      throw new UpError(`${path} and ${other} are both specs of project "${spec.project}"; give one spec per project`, {
        code: 'UP_SPEC_INVALID',
        context: { project: spec.project },
      });
    specOf.set(spec.project, path);
  }
  const schedules = specs.flatMap(({ path, spec }) =>
    spec.schedule ? [{ path, project: spec.project, schedule: spec.schedule as Pick<ScheduleSpec, 'cron' | 'rate'>, next: new Date(0) }] : [],
  );
  // A bad expression fails now, not at its first fire time.
  for (const entry of schedules) entry.next = nextFireTime(entry.schedule, new Date());

  const context = createServeContext(
    session.deps,
    // Embedded-metric lines are for Lambda's log stream; on a terminal they would bury the command's own lines.
    { ...options.serve, metricsSink: () => undefined },
  );
  const server = await startServer({ context, ...(options.port === undefined ? {} : { port: options.port }), ...(options.host ? { host: options.host } : {}) });
  await writeHolder(session.aws.dir, { url: server.url, pid: process.pid, aws: { ...session.aws.config, endpoints: session.aws.config.endpoints! } });

  const runs: UpRun[] = [];
  const queue: QueuedRun[] = [];
  const stopping = new AbortController();
  const monitorDeps = session.depsFor('monitor');

  const monitorPass = async () => {
    const report = await runMonitor(monitorDeps, {
      // What a pass found is reported through onMonitor; the monitor Lambda's JSON log lines would bury a terminal.
      logger: silentLogger,
      metricsSink: () => undefined,
      ...options.monitor,
      startRun: async (request) => {
        // The monitor's run id names its window; runs here are named like any other, and the claim records which.
        const runId = newRunId();
        const specPath = specOf.get(request.project);
        queue.push({
          project: request.project,
          trigger: request.trigger,
          reason: request.reason,
          runId,
          ...(specPath ? { specPath } : request.specUri ? { specUri: request.specUri } : {}),
        });
        return { runId };
      },
    });
    options.onMonitor?.(report);
  };

  const runOne = async (queued: QueuedRun) => {
    const startedAt = new Date();
    options.onRunStart?.({ project: queued.project, runId: queued.runId, trigger: queued.trigger, reason: queued.reason, startedAt });
    const common = {
      runId: queued.runId,
      trigger: queued.trigger,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.onJobOutput ? { onJobOutput: options.onJobOutput } : {}),
      ...(options.jobEnv ? { jobEnv: options.jobEnv } : {}),
      ...(options.runTimeoutMs ? { timeoutMs: options.runTimeoutMs } : {}),
      // Stopping `up` stops a run in flight at its next stage, resumable from there.
      signal: stopping.signal,
    };
    const { result } = queued.specPath
      ? await runPipelineLocally(session, { ...common, specPath: queued.specPath })
      : await runStoredSpecLocally(session, { ...common, project: queued.project, specUri: queued.specUri! });
    const run: UpRun = { ...queued, startedAt, endedAt: new Date(), result };
    runs.push(run);
    options.onRunEnd?.(run);
  };

  const loop = (async () => {
    let nextMonitor = options.monitorEveryMs > 0 ? Date.now() + options.monitorEveryMs : Infinity;
    while (!stopping.signal.aborted) {
      const wakeAt = Math.min(nextMonitor, ...schedules.map((s) => s.next.getTime()));
      if (wakeAt === Infinity) {
        await new Promise((resolve) => stopping.signal.addEventListener('abort', resolve, { once: true }));
        break;
      }
      try {
        await sleep(Math.max(0, wakeAt - Date.now()), undefined, { signal: stopping.signal });
      } catch {
        break;
      }
      try {
        if (Date.now() >= nextMonitor) {
          await monitorPass();
          nextMonitor = Date.now() + options.monitorEveryMs;
        }
        for (const entry of schedules) {
          if (Date.now() < entry.next.getTime()) continue;
          const fired = entry.next;
          queue.push({
            project: entry.project,
            trigger: 'schedule',
            reason: entry.schedule.cron ? `cron ${entry.schedule.cron}` : `every ${entry.schedule.rate}`,
            runId: newRunId(),
            specPath: entry.path,
          });
          entry.next = nextFireTime(entry.schedule, new Date(), fired);
        }
        while (queue.length > 0 && !stopping.signal.aborted) await runOne(queue.shift()!);
      } catch (error) {
        // A failed pass or run is reported; serving and the next pass go on, as a scheduled Lambda's next invocation would.
        options.onError?.(error);
      }
    }
  })();

  let stopped: Promise<void> | undefined;
  return {
    url: server.url,
    runs,
    get queued() {
      return queue.length;
    },
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        await loop;
        await server.close();
        await removeHolder(session.aws.dir);
      })();
      return stopped;
    },
  };
}
