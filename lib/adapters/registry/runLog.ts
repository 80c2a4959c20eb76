/**
 * The run log: each run's record (status, stage, error, resumes) and the decisions recorded
 * along the way, in the registry table beside the versions they produce (item layout: layout.ts).
 */
import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { RegistryError, RegistryTable, dynamoError, isConditionFailure, queryAll, withoutKeys, type TableOptions } from './dynamo.ts';
import { layout } from './layout.ts';
import { RUNS_BY_TIME_INDEX } from './tables.ts';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'aborted';
const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'aborted'];

export interface RunError {
  message: string;
  name?: string;
  code?: string;
  /** The error name Step Functions gave, when the project renamed it (`States.TaskFailed` → `Agentflow.JobFailed`). */
  original?: string;
}

export interface NewRun {
  project: string;
  runId: string;
  specDigest: string;
  specUri?: string;
  /** What started the run: `cli`, `schedule`, `drift`, … */
  trigger?: string;
  /** The Step Functions execution, where there is one. */
  executionArn?: string;
}

export interface RunRecord extends NewRun {
  status: RunStatus;
  /** How many times the run was resumed after failing or being interrupted. */
  resumes?: number;
  stage?: string;
  error?: RunError;
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
}

export interface RunEvent {
  eventKey: string;
  detail: Record<string, unknown>;
  recordedAt: string;
}

export type RunLogOptions = TableOptions;

export class RunLog extends RegistryTable {
  // ── runs ─────────────────────────────────────────────────────────────────────────────────────

  /** Records a run as `running`. Idempotent: a retried Prepare gets the existing record and `created: false`. */
  async createRun(run: NewRun): Promise<{ run: RunRecord; created: boolean }> {
    const now = this.now();
    const record: RunRecord = { ...run, status: 'running', startedAt: now, updatedAt: now };
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            ...layout.run(run.project, run.runId),
            ...layout.runsByTime(run.project, now, run.runId),
            ...record,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return { run: record, created: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.table, 'PutItem (run)', error);
    }
    const existing = await this.getRun(run.project, run.runId);
    if (existing.specDigest !== run.specDigest) {
      throw new RegistryError(
        `run id "${run.runId}" of ${run.project} is already used by a run of spec ${existing.specDigest}, not ${run.specDigest}: choose a new run id`,
        { code: 'RUN_CONFLICT', context: { project: run.project, runId: run.runId, existing: existing.specDigest, given: run.specDigest } },
      );
    }
    return { run: existing, created: false };
  }

  async findRun(project: string, runId: string): Promise<RunRecord | undefined> {
    const item = await this.get(layout.run(project, runId));
    return item ? withoutKeys<RunRecord>(item) : undefined;
  }

  async getRun(project: string, runId: string): Promise<RunRecord> {
    const found = await this.findRun(project, runId);
    if (!found) throw runNotFound(project, runId);
    return found;
  }

  /**
   * Moves a run on: `running` (with the current `stage`) or a terminal status. A finished run stays
   * finished; repeating its final status is a no-op (retries), anything else is `RUN_FINISHED`.
   */
  async updateRunStatus(project: string, runId: string, status: RunStatus, options: { stage?: string; error?: RunError } = {}): Promise<RunRecord> {
    const now = this.now();
    const terminal = TERMINAL_RUN_STATUSES.includes(status);
    const sets = ['#status = :status', 'updatedAt = :now'];
    const values: Record<string, unknown> = { ':status': status, ':now': now, ':running': 'running' };
    if (terminal) sets.push('finishedAt = if_not_exists(finishedAt, :now)');
    if (options.stage !== undefined) {
      sets.push('stage = :stage');
      values[':stage'] = options.stage;
    }
    if (options.error !== undefined) {
      sets.push('#error = :error');
      values[':error'] = { message: options.error.message, name: options.error.name, code: options.error.code, original: options.error.original };
    }
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: layout.run(project, runId),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: 'attribute_exists(pk) AND (#status = :running OR #status = :status)',
          ExpressionAttributeNames: { '#status': 'status', ...(options.error === undefined ? {} : { '#error': 'error' }) },
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return withoutKeys<RunRecord>(result.Attributes ?? {});
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.table, 'UpdateItem (run status)', error);
    }
    const current = await this.getRun(project, runId);
    throw new RegistryError(`run ${runId} of ${project} already ${current.status} at ${current.finishedAt}; it cannot become ${status} — start a new run`, {
      code: 'RUN_FINISHED',
      context: { project, runId, status: current.status, requested: status },
    });
  }

  /**
   * Puts a failed or interrupted run back to `running` for a resume, keeping its history of
   * stages (its `error` and `finishedAt` are cleared, `resumes` counts up). A succeeded run is
   * refused: its model is registered; start a new run instead.
   */
  async reopenRun(project: string, runId: string): Promise<RunRecord> {
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: layout.run(project, runId),
          UpdateExpression: 'SET #status = :running, updatedAt = :now ADD resumes :one REMOVE #error, finishedAt',
          ConditionExpression: 'attribute_exists(pk) AND #status <> :succeeded',
          ExpressionAttributeNames: { '#status': 'status', '#error': 'error' },
          ExpressionAttributeValues: { ':running': 'running', ':succeeded': 'succeeded', ':now': this.now(), ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return withoutKeys<RunRecord>(result.Attributes ?? {});
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.table, 'UpdateItem (reopen run)', error);
    }
    const current = await this.findRun(project, runId);
    if (!current) {
      throw new RegistryError(`${project} has no run ${runId}; list runs with \`agentflow runs ls -p ${project}\``, {
        code: 'RUN_NOT_FOUND',
        context: { project, runId },
      });
    }
    throw new RegistryError(`run ${runId} of ${project} succeeded at ${current.finishedAt}; there is nothing to resume — start a new run`, {
      code: 'RUN_FINISHED',
      context: { project, runId, status: current.status },
    });
  }

  /** Runs of a project, newest first. */
  async listRuns(project: string, options: { limit?: number } = {}): Promise<RunRecord[]> {
    const items = await queryAll(
      this.db,
      {
        TableName: this.table,
        IndexName: RUNS_BY_TIME_INDEX,
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': layout.runsByTimePartition(project) },
        ScanIndexForward: false,
      },
      'Query (runs)',
    );
    const runs = items.map((item) => withoutKeys<RunRecord>(item));
    return options.limit === undefined ? runs : runs.slice(0, options.limit);
  }

  /** Records a decision (e.g. Plan's reasons) once per `eventKey`; returns whether this call wrote it. */
  async recordRunEvent(project: string, runId: string, eventKey: string, detail: Record<string, unknown>): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            ...layout.runEvent(project, runId, eventKey),
            eventKey,
            detail,
            recordedAt: this.now(),
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw dynamoError(this.table, 'PutItem (run event)', error);
    }
  }

  async listRunEvents(project: string, runId: string): Promise<RunEvent[]> {
    const items = await queryAll(
      this.db,
      {
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': layout.projectPartition(project), ':prefix': layout.runEventPrefix(runId) },
      },
      'Query (run events)',
    );
    return items.map((item) => ({ eventKey: item.eventKey as string, detail: item.detail as Record<string, unknown>, recordedAt: item.recordedAt as string }));
  }
}

function runNotFound(project: string, runId: string): RegistryError {
  return new RegistryError(`${project} has no run "${runId}"; create it with createRun first`, {
    code: 'RUN_NOT_FOUND',
    context: { project, runId },
  });
}
