/**
 * The model registry: versions, aliases, the serving set and runs, in one DynamoDB table.
 *
 * Layout (pk | sk → attributes):
 *   PROJECT#<p> | COUNTER#VERSION               next                      atomic ADD hands out version numbers
 *   PROJECT#<p> | RUNVERSION#<runId>            version, reservedAt       the number a run's export owns (idempotency)
 *   PROJECT#<p> | VERSION#0000012               ModelVersion              written once; only status changes
 *   PROJECT#<p> | ALIAS#<alias>                 version, revision, previous
 *   PROJECT#<p> | SERVING                       production, challengers, revision
 *   PROJECT#<p> | RUN#<runId>                   RunRecord; gsi1pk RUNS#<p>, gsi1sk <startedAt>#<runId>
 *   PROJECT#<p> | RUNEVENT#<runId>#<eventKey>   detail, recordedAt
 *
 * Every write is a single-item write, conditional where it could race (dynalite has no
 * transactions, and a design that needs none is simpler to reason about on AWS too).
 */
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RUNS_BY_TIME_INDEX } from './tables.ts';
import { RegistryError, call, dynamoError, isConditionFailure, keyPart, queryAll, revisionOf, versionPart, withoutKeys } from './dynamo.ts';

export type VersionStatus = 'candidate' | 'production' | 'challenger' | 'retired' | 'rejected';

/** Where a model version came from; enough to reproduce it and to check its file. */
export interface VersionLineage {
  runId: string;
  specDigest: string;
  datasetDigest: string;
  baseModelDigest: string;
  /** Task weights of the winning trial. */
  lambda: Record<string, number>;
  /** Per task, per metric (validation / holdout), e.g. `{ spam: { auc: 0.93 } }`. */
  metrics: Record<string, Record<string, number>>;
  /** `s3://…/models/<project>/<version>/model.onnx`. */
  artifactUri: string;
  /** sha256 of the ONNX file. */
  sha256: string;
  cardUri?: string;
  quantized?: boolean;
  [extra: string]: unknown;
}

export interface ModelVersion {
  project: string;
  version: number;
  status: VersionStatus;
  lineage: VersionLineage;
  createdAt: string;
  updatedAt: string;
  statusReason?: string;
}

export interface AliasState {
  project: string;
  alias: string;
  version: number;
  /** Starts at 1 and grows by one per move; pass it back as `expectedRevision`. */
  revision: number;
  /** The version before the last move; what `rollback` returns to. */
  previous?: number;
  updatedAt: string;
}

export interface ServingSet {
  production: number;
  /** Versions tried beside production; `trafficShare` in (0, 1), their sum at most 1. */
  challengers: Array<{ version: number; trafficShare: number }>;
}

export interface ServingSetState extends ServingSet {
  project: string;
  revision: number;
  updatedAt: string;
}

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

export interface RegistryOptions {
  dynamodb: DynamoDBDocumentClient;
  tableName: string;
  /** For tests; defaults to the wall clock. */
  clock?: () => Date;
}

const projectKey = (project: string) => `PROJECT#${keyPart('project', project)}`;

export class Registry {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #clock: () => Date;

  constructor(options: RegistryOptions) {
    this.#db = options.dynamodb;
    this.#table = options.tableName;
    this.#clock = options.clock ?? (() => new Date());
  }

  // ── versions ─────────────────────────────────────────────────────────────────────────────────

  /**
   * The version number a run's export owns, allocated once per `(project, runId)`. Export calls
   * this first so it can upload to `models/<project>/<version>/` before `createVersion`. A crash
   * after the counter moved but before the marker was written leaves a gap in the numbering,
   * never a duplicate.
   */
  async reserveVersion(project: string, options: { runId: string }): Promise<number> {
    const pk = projectKey(project);
    const sk = `RUNVERSION#${keyPart('runId', options.runId)}`;
    const existing = await this.#get(pk, sk);
    if (existing) return existing.version as number;

    const counter = await call(this.#table, 'UpdateItem (version counter)', () =>
      this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk, sk: 'COUNTER#VERSION' },
          UpdateExpression: 'ADD #next :one',
          ExpressionAttributeNames: { '#next': 'next' },
          ExpressionAttributeValues: { ':one': 1 },
          ReturnValues: 'UPDATED_NEW',
        }),
      ),
    );
    const version = counter.Attributes?.next as number;
    try {
      await this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: { pk, sk, project, runId: options.runId, version, reservedAt: this.#now() },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return version;
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.#table, 'PutItem (run version marker)', error);
      // A concurrent retry of the same run reserved first; its number wins, ours is a gap.
      const winner = await this.#get(pk, sk);
      return winner?.version as number;
    }
  }

  /**
   * Registers a run's exported model as a `candidate`. Idempotent per `lineage.runId`: a retried
   * Export gets the version the first attempt created. A retry with a different model file
   * (sha256) is refused, since the registered file and the one in S3 would no longer match.
   */
  async createVersion(project: string, lineage: VersionLineage): Promise<ModelVersion> {
    const version = await this.reserveVersion(project, { runId: lineage.runId });
    const now = this.#now();
    const record: ModelVersion = { project, version, status: 'candidate', lineage, createdAt: now, updatedAt: now };
    try {
      await this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: { pk: projectKey(project), sk: `VERSION#${versionPart(version)}`, ...record },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return record;
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.#table, 'PutItem (version)', error);
    }
    const existing = await this.getVersion(project, version);
    if (existing.lineage.sha256 !== lineage.sha256) {
      throw new RegistryError(
        `run ${lineage.runId} already registered ${project} version ${version} with model sha256 ${existing.lineage.sha256}, not ${lineage.sha256}: ` +
          'exports must be deterministic for a run; start a new run to register a different model',
        { code: 'VERSION_CONFLICT', context: { project, version, runId: lineage.runId, registered: existing.lineage.sha256, given: lineage.sha256 } },
      );
    }
    return existing;
  }

  async findVersion(project: string, version: number): Promise<ModelVersion | undefined> {
    const item = await this.#get(projectKey(project), `VERSION#${versionPart(version)}`);
    return item ? withoutKeys<ModelVersion>(item) : undefined;
  }

  async getVersion(project: string, version: number): Promise<ModelVersion> {
    const found = await this.findVersion(project, version);
    if (!found) throw versionNotFound(project, version);
    return found;
  }

  /** The version a run registered, if it got that far. */
  async findVersionByRun(project: string, runId: string): Promise<ModelVersion | undefined> {
    const marker = await this.#get(projectKey(project), `RUNVERSION#${keyPart('runId', runId)}`);
    return marker ? this.findVersion(project, marker.version as number) : undefined;
  }

  /** All versions of a project, oldest first. */
  async listVersions(project: string): Promise<ModelVersion[]> {
    const items = await queryAll(
      this.#db,
      {
        TableName: this.#table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': projectKey(project), ':prefix': 'VERSION#' },
      },
      'Query (versions)',
    );
    return items.map((item) => withoutKeys<ModelVersion>(item));
  }

  async updateVersionStatus(project: string, version: number, status: VersionStatus, options: { reason?: string } = {}): Promise<ModelVersion> {
    try {
      const result = await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: projectKey(project), sk: `VERSION#${versionPart(version)}` },
          UpdateExpression: options.reason === undefined ? 'SET #status = :status, updatedAt = :now' : 'SET #status = :status, updatedAt = :now, statusReason = :reason',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':status': status, ':now': this.#now(), ...(options.reason === undefined ? {} : { ':reason': options.reason }) },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return withoutKeys<ModelVersion>(result.Attributes ?? {});
    } catch (error) {
      if (isConditionFailure(error)) throw versionNotFound(project, version);
      throw dynamoError(this.#table, 'UpdateItem (version status)', error);
    }
  }

  // ── aliases ──────────────────────────────────────────────────────────────────────────────────

  async getAlias(project: string, alias: string): Promise<AliasState | undefined> {
    const item = await this.#get(projectKey(project), `ALIAS#${keyPart('alias', alias)}`);
    return item ? withoutKeys<AliasState>(item) : undefined;
  }

  /**
   * Points an alias at a version, if nobody moved it since `expectedRevision` (0 when the alias
   * does not exist yet). A lost race throws `ALIAS_CONFLICT`. Moving an alias to the version it
   * already points at writes nothing and returns `moved: false`, so a retried Promote is a no-op.
   */
  async moveAlias(
    project: string,
    alias: string,
    options: { toVersion: number; expectedRevision: number | undefined },
  ): Promise<AliasState & { moved: boolean }> {
    const expected = revisionOf(options.expectedRevision);
    await this.getVersion(project, options.toVersion);
    const current = await this.getAlias(project, alias);
    if (current?.version === options.toVersion) return { ...current, moved: false };
    this.#checkRevision('ALIAS_CONFLICT', `alias "${alias}" of ${project}`, current?.revision ?? 0, expected);
    const next = await this.#writeAlias(project, alias, { version: options.toVersion, previous: current?.version, expected });
    return { ...next, moved: true };
  }

  /** Moves an alias back to its previous version (and remembers the one it left, so a second rollback rolls forward). */
  async rollback(project: string, alias: string, options: { expectedRevision: number }): Promise<AliasState> {
    const expected = revisionOf(options.expectedRevision);
    const current = await this.getAlias(project, alias);
    if (!current) {
      throw new RegistryError(`alias "${alias}" of ${project} does not exist, so there is nothing to roll back; promote a version first`, {
        code: 'ALIAS_NOT_FOUND',
        context: { project, alias },
      });
    }
    this.#checkRevision('ALIAS_CONFLICT', `alias "${alias}" of ${project}`, current.revision, expected);
    if (current.previous === undefined) {
      throw new RegistryError(`alias "${alias}" of ${project} has no previous version (it has only pointed at ${current.version}); move it explicitly instead`, {
        code: 'NO_PREVIOUS_VERSION',
        context: { project, alias, version: current.version },
      });
    }
    return this.#writeAlias(project, alias, { version: current.previous, previous: current.version, expected });
  }

  async #writeAlias(project: string, alias: string, move: { version: number; previous: number | undefined; expected: number }): Promise<AliasState> {
    const state: AliasState = {
      project,
      alias,
      version: move.version,
      revision: move.expected + 1,
      ...(move.previous === undefined ? {} : { previous: move.previous }),
      updatedAt: this.#now(),
    };
    await this.#conditionalPut(
      { pk: projectKey(project), sk: `ALIAS#${alias}`, ...state },
      move.expected,
      () => this.getAlias(project, alias).then((found) => found?.revision ?? 0),
      (actual) => conflict('ALIAS_CONFLICT', `alias "${alias}" of ${project}`, actual, move.expected),
    );
    return state;
  }

  // ── serving set ──────────────────────────────────────────────────────────────────────────────

  async getServingSet(project: string): Promise<ServingSetState | undefined> {
    const item = await this.#get(projectKey(project), 'SERVING');
    return item ? withoutKeys<ServingSetState>(item) : undefined;
  }

  /** Replaces the versions Infer routes between, if nobody changed them since `expectedRevision`. */
  async setServingSet(project: string, set: ServingSet, options: { expectedRevision: number | undefined }): Promise<ServingSetState> {
    const expected = revisionOf(options.expectedRevision);
    validateServingSet(project, set);
    await Promise.all([set.production, ...set.challengers.map((challenger) => challenger.version)].map((version) => this.getVersion(project, version)));
    const state: ServingSetState = {
      project,
      production: set.production,
      challengers: set.challengers.map(({ version, trafficShare }) => ({ version, trafficShare })),
      revision: expected + 1,
      updatedAt: this.#now(),
    };
    await this.#conditionalPut(
      { pk: projectKey(project), sk: 'SERVING', ...state },
      expected,
      () => this.getServingSet(project).then((found) => found?.revision ?? 0),
      (actual) => conflict('SERVING_SET_CONFLICT', `the serving set of ${project}`, actual, expected),
    );
    return state;
  }

  // ── runs ─────────────────────────────────────────────────────────────────────────────────────

  /** Records a run as `running`. Idempotent: a retried Prepare gets the existing record and `created: false`. */
  async createRun(run: NewRun): Promise<{ run: RunRecord; created: boolean }> {
    const now = this.#now();
    const record: RunRecord = { ...run, status: 'running', startedAt: now, updatedAt: now };
    try {
      await this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: {
            pk: projectKey(run.project),
            sk: `RUN#${keyPart('runId', run.runId)}`,
            gsi1pk: `RUNS#${run.project}`,
            gsi1sk: `${now}#${run.runId}`,
            ...record,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return { run: record, created: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.#table, 'PutItem (run)', error);
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
    const item = await this.#get(projectKey(project), `RUN#${keyPart('runId', runId)}`);
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
  async updateRunStatus(
    project: string,
    runId: string,
    status: RunStatus,
    options: { stage?: string; error?: RunError } = {},
  ): Promise<RunRecord> {
    const now = this.#now();
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
      const result = await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: projectKey(project), sk: `RUN#${keyPart('runId', runId)}` },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: 'attribute_exists(pk) AND (#status = :running OR #status = :status)',
          ExpressionAttributeNames: { '#status': 'status', ...(options.error === undefined ? {} : { '#error': 'error' }) },
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return withoutKeys<RunRecord>(result.Attributes ?? {});
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.#table, 'UpdateItem (run status)', error);
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
      const result = await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: projectKey(project), sk: `RUN#${keyPart('runId', runId)}` },
          UpdateExpression: 'SET #status = :running, updatedAt = :now ADD resumes :one REMOVE #error, finishedAt',
          ConditionExpression: 'attribute_exists(pk) AND #status <> :succeeded',
          ExpressionAttributeNames: { '#status': 'status', '#error': 'error' },
          ExpressionAttributeValues: { ':running': 'running', ':succeeded': 'succeeded', ':now': this.#now(), ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return withoutKeys<RunRecord>(result.Attributes ?? {});
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.#table, 'UpdateItem (reopen run)', error);
    }
    const current = await this.findRun(project, runId);
    if (!current) {
      throw new RegistryError(`${project} has no run ${runId}; list runs with \`agentflow runs ls -p ${project}\``, { code: 'RUN_NOT_FOUND', context: { project, runId } });
    }
    throw new RegistryError(`run ${runId} of ${project} succeeded at ${current.finishedAt}; there is nothing to resume — start a new run`, {
      code: 'RUN_FINISHED',
      context: { project, runId, status: current.status },
    });
  }

  /** Runs of a project, newest first. */
  async listRuns(project: string, options: { limit?: number } = {}): Promise<RunRecord[]> {
    const items = await queryAll(
      this.#db,
      {
        TableName: this.#table,
        IndexName: RUNS_BY_TIME_INDEX,
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': `RUNS#${keyPart('project', project)}` },
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
      await this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: {
            pk: projectKey(project),
            sk: `RUNEVENT#${keyPart('runId', runId)}#${keyPart('eventKey', eventKey)}`,
            eventKey,
            detail,
            recordedAt: this.#now(),
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw dynamoError(this.#table, 'PutItem (run event)', error);
    }
  }

  async listRunEvents(project: string, runId: string): Promise<RunEvent[]> {
    const items = await queryAll(
      this.#db,
      {
        TableName: this.#table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': projectKey(project), ':prefix': `RUNEVENT#${keyPart('runId', runId)}#` },
      },
      'Query (run events)',
    );
    return items.map((item) => ({ eventKey: item.eventKey as string, detail: item.detail as Record<string, unknown>, recordedAt: item.recordedAt as string }));
  }

  // ── plumbing ─────────────────────────────────────────────────────────────────────────────────

  #now(): string {
    return this.#clock().toISOString();
  }

  async #get(pk: string, sk: string): Promise<Record<string, unknown> | undefined> {
    const result = await call(this.#table, 'GetItem', () =>
      this.#db.send(new GetCommand({ TableName: this.#table, Key: { pk, sk }, ConsistentRead: true })),
    );
    return result.Item;
  }

  #checkRevision(code: string, what: string, actual: number, expected: number): void {
    if (actual !== expected) throw conflict(code, what, actual, expected);
  }

  /** Put conditional on the stored revision (or on absence for revision 0). */
  async #conditionalPut(
    item: Record<string, unknown>,
    expected: number,
    readRevision: () => Promise<number>,
    onConflict: (actual: number) => RegistryError,
  ): Promise<void> {
    try {
      await this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: item,
          ...(expected === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : { ConditionExpression: 'revision = :expected', ExpressionAttributeValues: { ':expected': expected } }),
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw onConflict(await readRevision());
      throw dynamoError(this.#table, 'PutItem', error);
    }
  }
}

function conflict(code: string, what: string, actual: number, expected: number): RegistryError {
  return new RegistryError(`${what} is at revision ${actual}, not ${expected}: someone else changed it; read it again and retry`, {
    code,
    context: { actualRevision: actual, expectedRevision: expected },
  });
}

function versionNotFound(project: string, version: number): RegistryError {
  return new RegistryError(`${project} has no model version ${version}; list versions with listVersions("${project}")`, {
    code: 'VERSION_NOT_FOUND',
    context: { project, version },
  });
}

function runNotFound(project: string, runId: string): RegistryError {
  return new RegistryError(`${project} has no run "${runId}"; create it with createRun first`, {
    code: 'RUN_NOT_FOUND',
    context: { project, runId },
  });
}

function validateServingSet(project: string, set: ServingSet): void {
  const fail = (reason: string): never => {
    throw new RegistryError(`serving set of ${project} is invalid: ${reason}`, { code: 'SERVING_SET_INVALID', context: { project, set } });
  };
  versionPart(set.production);
  const seen = new Set([set.production]);
  let total = 0;
  for (const { version, trafficShare } of set.challengers) {
    versionPart(version);
    if (seen.has(version)) fail(`version ${version} appears twice; list each version once`);
    seen.add(version);
    if (!(trafficShare > 0 && trafficShare < 1)) fail(`challenger ${version} has trafficShare ${trafficShare}; use a number between 0 and 1 (exclusive)`);
    total += trafficShare;
  }
  if (total > 1 + 1e-9) fail(`challenger traffic shares add up to ${total}; keep the sum at most 1`);
}
