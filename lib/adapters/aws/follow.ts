/**
 * Following a deployed execution: polls its history and reports each step as the same
 * `WorkflowEvent` the local runner emits, so progress display works alike in both runtimes.
 *
 * Each poll reads the history newest-first and stops at the last event already seen, so a poll
 * costs one page however long the run has been going (GetExecutionHistory is throttled per account).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ExecutionDoesNotExist, GetExecutionHistoryCommand, type HistoryEvent, type SFNClient } from '@aws-sdk/client-sfn';
import type { WorkflowEvent } from '#lib/adapters/local/workflow.ts';
import { AwsModeError } from '#lib/adapters/aws/errors.ts';

export type ExecutionStatus = 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface FollowExecutionOptions {
  sfn: SFNClient;
  executionArn: string;
  onEvent?: (event: WorkflowEvent) => void;
  /** Pause between polls. Default 5 s. */
  pollIntervalMs?: number;
  /** Events per history page. Default 100 (the API allows up to 1000). */
  pageSize?: number;
  /** Stops following (the execution keeps running); the promise rejects with FOLLOW_ABORTED. */
  signal?: AbortSignal;
  /**
   * Events up to this id happened before (a redriven execution keeps its first attempt's history,
   * ending in its ExecutionFailed): they are read to know which state each later event belongs
   * to, but neither reported nor taken as the outcome.
   */
  afterEventId?: number;
}

export interface FollowedExecution {
  status: ExecutionStatus;
  executionArn: string;
  /** The execution's output (the final state), when it succeeded and the history carried it whole. */
  output?: unknown;
  error?: string;
  cause?: string;
}

/** One visit of a state (or a Map iteration), shared by the events that chain to it through `previousEventId`. */
interface Visit {
  state?: string;
  index?: number;
  retries: number;
  failure?: { error?: string; cause?: string };
}

const TASK_FAILURES: Record<string, keyof HistoryEvent> = {
  TaskFailed: 'taskFailedEventDetails',
  TaskTimedOut: 'taskTimedOutEventDetails',
  TaskSubmitFailed: 'taskSubmitFailedEventDetails',
  TaskStartFailed: 'taskStartFailedEventDetails',
  LambdaFunctionFailed: 'lambdaFunctionFailedEventDetails',
  LambdaFunctionTimedOut: 'lambdaFunctionTimedOutEventDetails',
  LambdaFunctionStartFailed: 'lambdaFunctionStartFailedEventDetails',
  LambdaFunctionScheduleFailed: 'lambdaFunctionScheduleFailedEventDetails',
};
const TASK_SCHEDULED = new Set(['TaskScheduled', 'LambdaFunctionScheduled']);
const ITERATION_ENDED = new Set(['MapIterationSucceeded', 'MapIterationFailed', 'MapIterationAborted']);

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Maps Step Functions history events to WorkflowEvents, keeping what it needs across polls:
 * which state and Map iteration each event belongs to, and whether a failure was retried or caught.
 */
export class HistoryTranslator {
  readonly #visits = new Map<number, Visit | undefined>();
  terminal?: Omit<FollowedExecution, 'executionArn'>;

  translate(event: HistoryEvent): WorkflowEvent[] {
    const id = event.id ?? 0;
    const type = event.type ?? '';
    const inherited = event.previousEventId ? this.#visits.get(event.previousEventId) : undefined;
    const at = (event.timestamp ?? new Date()).toISOString();
    const where = (visit: Visit | undefined) => ({
      ...(visit?.state !== undefined ? { state: visit.state } : {}),
      ...(visit?.index !== undefined ? { index: visit.index } : {}),
    });

    if (type === 'MapIterationStarted') {
      this.#visits.set(id, { index: event.mapIterationStartedEventDetails?.index, retries: 0 });
      return [];
    }
    if (ITERATION_ENDED.has(type)) {
      // The iteration's chain ends here; the Map state's own events do not belong to it.
      this.#visits.set(id, undefined);
      return [];
    }
    if (type.endsWith('StateEntered')) {
      const visit: Visit = { state: event.stateEnteredEventDetails?.name, index: inherited?.index, retries: 0 };
      this.#visits.set(id, visit);
      return [{ type: 'StateEntered', at, ...where(visit) }];
    }
    this.#visits.set(id, inherited);

    if (type.endsWith('StateExited')) {
      const output = parseJson(event.stateExitedEventDetails?.output);
      const exited: WorkflowEvent = {
        type: 'StateExited',
        at,
        ...where(inherited),
        state: event.stateExitedEventDetails?.name ?? inherited?.state,
        detail: { output },
      };
      if (inherited?.failure) {
        // The state failed and still exits: a Catch took the failure (the next StateEntered is its target).
        const caught: WorkflowEvent = {
          type: 'StateCaught',
          at,
          ...where(inherited),
          detail: { error: inherited.failure.error, cause: inherited.failure.cause },
        };
        inherited.failure = undefined;
        return [caught, exited];
      }
      return [exited];
    }
    const failureField = TASK_FAILURES[type];
    if (failureField) {
      const details = (event[failureField] ?? {}) as { error?: string; cause?: string };
      if (inherited) inherited.failure = { error: details.error, cause: details.cause };
      return [{ type: 'StateFailed', at, ...where(inherited), detail: { error: details.error, cause: details.cause } }];
    }
    if (TASK_SCHEDULED.has(type) && inherited?.failure) {
      // A task scheduled again after a failure within the same state visit is a Retry.
      inherited.retries += 1;
      const error = inherited.failure.error;
      inherited.failure = undefined;
      return [{ type: 'StateRetried', at, ...where(inherited), detail: { attempt: inherited.retries, error } }];
    }

    switch (type) {
      case 'ExecutionStarted':
        return [{ type: 'ExecutionStarted', at }];
      case 'ExecutionSucceeded': {
        const output = parseJson(event.executionSucceededEventDetails?.output);
        this.terminal = { status: 'SUCCEEDED', ...(output !== undefined ? { output } : {}) };
        return [{ type: 'ExecutionSucceeded', at, detail: { output } }];
      }
      case 'ExecutionFailed':
      case 'ExecutionTimedOut':
      case 'ExecutionAborted': {
        const details =
          type === 'ExecutionFailed'
            ? event.executionFailedEventDetails
            : type === 'ExecutionTimedOut'
              ? event.executionTimedOutEventDetails
              : event.executionAbortedEventDetails;
        const status: ExecutionStatus = type === 'ExecutionFailed' ? 'FAILED' : type === 'ExecutionTimedOut' ? 'TIMED_OUT' : 'ABORTED';
        const error = details?.error ?? (status === 'TIMED_OUT' ? 'States.Timeout' : status === 'ABORTED' ? 'ExecutionAborted' : undefined);
        this.terminal = { status, ...(error !== undefined ? { error } : {}), ...(details?.cause !== undefined ? { cause: details.cause } : {}) };
        return [{ type: 'ExecutionFailed', at, detail: { error, cause: details?.cause, status } }];
      }
      default:
        // Task scheduling/start/success, Map and Parallel bookkeeping: the state events carry the same news.
        return [];
    }
  }
}

/** Events after `afterId`, oldest first: pages newest-first until it reaches one already seen. */
async function newEvents(options: { sfn: SFNClient; executionArn: string; afterId: number; pageSize: number }): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    let page;
    try {
      page = await options.sfn.send(
        new GetExecutionHistoryCommand({
          executionArn: options.executionArn,
          reverseOrder: true,
          maxResults: options.pageSize,
          includeExecutionData: true,
          ...(nextToken ? { nextToken } : {}),
        }),
      );
    } catch (error) {
      if (error instanceof ExecutionDoesNotExist) {
        throw new AwsModeError(`execution ${options.executionArn} does not exist; check the run id and that the stack outputs name this account and region`, {
          code: 'HISTORY_UNAVAILABLE',
          context: { executionArn: options.executionArn },
          cause: error,
        });
      }
      throw error;
    }
    for (const event of page.events ?? []) {
      if ((event.id ?? 0) <= options.afterId) return fresh.reverse();
      fresh.push(event);
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return fresh.reverse();
}

/** Follows an execution until it ends, reporting each step; resolves with its outcome. */
export async function followExecution(options: FollowExecutionOptions): Promise<FollowedExecution> {
  const pollIntervalMs = options.pollIntervalMs ?? 5000;
  const pageSize = options.pageSize ?? 100;
  const translator = new HistoryTranslator();
  let lastId = 0;
  const aborted = () =>
    new AwsModeError(`stopped following ${options.executionArn}; the execution keeps running (follow it again, or stop it in the Step Functions console)`, {
      code: 'FOLLOW_ABORTED',
      context: { executionArn: options.executionArn },
    });

  for (;;) {
    if (options.signal?.aborted) throw aborted();
    const events = await newEvents({ sfn: options.sfn, executionArn: options.executionArn, afterId: lastId, pageSize });
    for (const event of events) {
      lastId = Math.max(lastId, event.id ?? 0);
      const translated = translator.translate(event);
      if ((event.id ?? 0) <= (options.afterEventId ?? 0)) {
        translator.terminal = undefined;
        continue;
      }
      for (const one of translated) options.onEvent?.(one);
    }
    if (translator.terminal) return { executionArn: options.executionArn, ...translator.terminal };
    try {
      await sleep(pollIntervalMs, undefined, options.signal ? { signal: options.signal } : undefined);
    } catch (error) {
      if (options.signal?.aborted) throw aborted();
      throw error;
    }
  }
}
