import { setTimeout as sleep } from 'node:timers/promises';
import { Cron } from 'croner';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import type { ScheduleSpec } from '#lib/domain/spec/index.ts';
import { runMonitor, type MonitorReport, type RetrainRequest } from '#lib/serve/index.ts';
import { runPipelineLocally, type LocalRunOptions, type LocalRunResult, type LocalSession } from './localRun.ts';

export class ScheduleError extends AgentflowError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(message, { code: 'SCHEDULE_INVALID', context });
    this.name = 'ScheduleError';
  }
}

const RATE = /^(\d+) (minute|minutes|hour|hours|day|days)$/;
const UNIT_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;

/** `"7 days"` → milliseconds; the same grammar as the spec's `schedule.rate` and EventBridge's rate(). */
export function rateMs(rate: string): number {
  const match = RATE.exec(rate.trim());
  if (!match || Number(match[1]) < 1) throw new ScheduleError(`"${rate}" is not a rate; write "<n> minutes|hours|days", e.g. "7 days"`, { rate });
  return Number(match[1]) * UNIT_MS[match[2].replace(/s$/, '') as keyof typeof UNIT_MS];
}

/**
 * An EventBridge cron (minutes hours day-of-month month day-of-week year, `?` allowed) as a
 * standard five-field cron in UTC, as EventBridge Scheduler evaluates it by default. The local
 * loop runs in the present, so the year field must be `*`.
 */
export function cronOf(expression: string): Cron {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 6)
    throw new ScheduleError(`"${expression}" has ${fields.length} fields; an EventBridge cron has 6: minutes hours day-of-month month day-of-week year`, {
      expression,
    });
  if (fields[5] !== '*') throw new ScheduleError(`"${expression}" pins the year (${fields[5]}); the local schedule needs "*" there`, { expression });
  try {
    return new Cron(
      fields
        .slice(0, 5)
        .map((f) => f.replace(/\?/g, '*'))
        .join(' '),
      { timezone: 'UTC' },
    );
  } catch (error) {
    throw new ScheduleError(`"${expression}" is not a valid cron expression: ${(error as Error).message}`, { expression });
  }
}

/** When a schedule fires next, strictly after `after`. */
export function nextFireTime(schedule: Pick<ScheduleSpec, 'cron' | 'rate'>, after: Date, lastFire?: Date): Date {
  if (schedule.rate !== undefined) return new Date((lastFire ?? after).getTime() + rateMs(schedule.rate));
  if (schedule.cron !== undefined) {
    const next = cronOf(schedule.cron).nextRun(after);
    if (!next) throw new ScheduleError(`"${schedule.cron}" never fires again`, { cron: schedule.cron });
    return next;
  }
  throw new ScheduleError('a schedule needs a cron or a rate');
}

export interface ScheduleLoopOptions extends Omit<LocalRunOptions, 'runId' | 'trigger'> {
  schedule: Pick<ScheduleSpec, 'cron' | 'rate'>;
  /** Run once at the start instead of waiting for the first fire time. */
  runNow?: boolean;
  /** Stop after this many runs (scheduled and drift-triggered together). */
  maxRuns?: number;
  /** How often the monitor checks online reward and input drift between runs. Default 5 minutes; 0 turns it off. */
  monitorEveryMs?: number;
  signal?: AbortSignal;
  onRunStart?: (info: { trigger: string; reason: string; at: Date }) => void;
  onRunEnd?: (run: LocalRunResult) => void;
  onMonitor?: (report: MonitorReport) => void;
  onWait?: (until: Date) => void;
}

/**
 * The local stand-in for EventBridge Scheduler and the scheduled monitor: retrains on the spec's
 * schedule (re-reading the spec's files each time, so new data is picked up), and between runs
 * checks the served models' online reward and input drift, retraining at once when a threshold
 * breaks (the monitor claims one retraining per window, as in AWS).
 */
export async function runScheduleLoop(session: LocalSession, options: ScheduleLoopOptions): Promise<LocalRunResult[]> {
  const runs: LocalRunResult[] = [];
  const monitorEveryMs = options.monitorEveryMs ?? 300_000;
  const pending: RetrainRequest[] = [];
  // The monitor's calls are the monitor function's in AWS.
  const deps = session.depsFor('monitor');
  const run = async (trigger: string, reason: string, runId?: string) => {
    options.onRunStart?.({ trigger, reason, at: new Date() });
    // A monitor-started run keeps the run id the monitor claimed for its window, as the AWS adapter names its execution by it.
    const result = await runPipelineLocally(session, { ...options, trigger, ...(runId ? { runId } : {}) });
    runs.push(result);
    options.onRunEnd?.(result);
  };
  const done = () => options.signal?.aborted === true || (options.maxRuns !== undefined && runs.length >= options.maxRuns);

  if (options.runNow) await run('schedule', 'started with --now');
  let lastFire = new Date();
  let next = nextFireTime(options.schedule, new Date(), lastFire);
  let nextMonitor = monitorEveryMs > 0 ? Date.now() + monitorEveryMs : Infinity;
  while (!done()) {
    const wakeAt = Math.min(next.getTime(), nextMonitor);
    options.onWait?.(new Date(wakeAt));
    try {
      await sleep(Math.max(0, wakeAt - Date.now()), undefined, options.signal ? { signal: options.signal } : {});
    } catch {
      break; // aborted
    }
    if (Date.now() >= nextMonitor) {
      nextMonitor = Date.now() + monitorEveryMs;
      const report = await runMonitor(deps, { startRun: async (request) => (pending.push(request), { runId: request.runId }) });
      options.onMonitor?.(report);
      while (pending.length > 0 && !done()) {
        const request = pending.shift()!;
        await run(request.trigger, request.reason, request.runId);
      }
    }
    if (!done() && Date.now() >= next.getTime()) {
      lastFire = next;
      await run('schedule', options.schedule.cron ? `cron ${options.schedule.cron}` : `every ${options.schedule.rate}`);
      next = nextFireTime(options.schedule, new Date(), lastFire);
    }
  }
  return runs;
}
