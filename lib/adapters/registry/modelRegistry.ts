/**
 * The model registry: versions, aliases and the serving set of each project, in the registry
 * table (item layout: layout.ts). Every write is a single-item write, conditional where it could
 * race (dynalite has no transactions, and a design that needs none is simpler to reason about on
 * AWS too).
 */
import { PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  RegistryError,
  RegistryTable,
  call,
  dynamoError,
  isConditionFailure,
  queryAll,
  revisionOf,
  versionPart,
  withoutKeys,
  type TableOptions,
} from './dynamo.ts';
import { layout } from './layout.ts';

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

export type ModelRegistryOptions = TableOptions;

export class ModelRegistry extends RegistryTable {
  // ── versions ─────────────────────────────────────────────────────────────────────────────────

  /**
   * The version number a run's export owns, allocated once per `(project, runId)`. Export calls
   * this first so it can upload to `models/<project>/<version>/` before `createVersion`. A crash
   * after the counter moved but before the marker was written leaves a gap in the numbering,
   * never a duplicate.
   */
  async reserveVersion(project: string, options: { runId: string }): Promise<number> {
    const { pk, sk } = layout.runVersion(project, options.runId);
    const existing = await this.get({ pk, sk });
    if (existing) return existing.version as number;

    const counter = await call(this.table, 'UpdateItem (version counter)', () =>
      this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: layout.versionCounter(project),
          UpdateExpression: 'ADD #next :one',
          ExpressionAttributeNames: { '#next': 'next' },
          ExpressionAttributeValues: { ':one': 1 },
          ReturnValues: 'UPDATED_NEW',
        }),
      ),
    );
    const version = counter.Attributes?.next as number;
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk, sk, project, runId: options.runId, version, reservedAt: this.now() },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return version;
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.table, 'PutItem (run version marker)', error);
      // A concurrent retry of the same run reserved first; its number wins, ours is a gap.
      const winner = await this.get({ pk, sk });
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
    const now = this.now();
    const record: ModelVersion = { project, version, status: 'candidate', lineage, createdAt: now, updatedAt: now };
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...layout.version(project, version), ...record },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return record;
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.table, 'PutItem (version)', error);
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
    const item = await this.get(layout.version(project, version));
    return item ? withoutKeys<ModelVersion>(item) : undefined;
  }

  async getVersion(project: string, version: number): Promise<ModelVersion> {
    const found = await this.findVersion(project, version);
    if (!found) throw versionNotFound(project, version);
    return found;
  }

  /** The version a run registered, if it got that far. */
  async findVersionByRun(project: string, runId: string): Promise<ModelVersion | undefined> {
    const marker = await this.get(layout.runVersion(project, runId));
    return marker ? this.findVersion(project, marker.version as number) : undefined;
  }

  /** All versions of a project, oldest first. */
  async listVersions(project: string): Promise<ModelVersion[]> {
    const items = await queryAll(
      this.db,
      {
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': layout.projectPartition(project), ':prefix': layout.versionPrefix },
      },
      'Query (versions)',
    );
    return items.map((item) => withoutKeys<ModelVersion>(item));
  }

  async updateVersionStatus(project: string, version: number, status: VersionStatus, options: { reason?: string } = {}): Promise<ModelVersion> {
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: layout.version(project, version),
          UpdateExpression:
            options.reason === undefined ? 'SET #status = :status, updatedAt = :now' : 'SET #status = :status, updatedAt = :now, statusReason = :reason',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':status': status, ':now': this.now(), ...(options.reason === undefined ? {} : { ':reason': options.reason }) },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return withoutKeys<ModelVersion>(result.Attributes ?? {});
    } catch (error) {
      if (isConditionFailure(error)) throw versionNotFound(project, version);
      throw dynamoError(this.table, 'UpdateItem (version status)', error);
    }
  }

  // ── aliases ──────────────────────────────────────────────────────────────────────────────────

  async getAlias(project: string, alias: string): Promise<AliasState | undefined> {
    const item = await this.get(layout.alias(project, alias));
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
      throw new RegistryError(
        `alias "${alias}" of ${project} has no previous version (it has only pointed at ${current.version}); move it explicitly instead`,
        {
          code: 'NO_PREVIOUS_VERSION',
          context: { project, alias, version: current.version },
        },
      );
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
      updatedAt: this.now(),
    };
    await this.#conditionalPut(
      { ...layout.alias(project, alias), ...state },
      move.expected,
      () => this.getAlias(project, alias).then((found) => found?.revision ?? 0),
      (actual) => conflict('ALIAS_CONFLICT', `alias "${alias}" of ${project}`, actual, move.expected),
    );
    return state;
  }

  // ── serving set ──────────────────────────────────────────────────────────────────────────────

  async getServingSet(project: string): Promise<ServingSetState | undefined> {
    const item = await this.get(layout.serving(project));
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
      updatedAt: this.now(),
    };
    await this.#conditionalPut(
      { ...layout.serving(project), ...state },
      expected,
      () => this.getServingSet(project).then((found) => found?.revision ?? 0),
      (actual) => conflict('SERVING_SET_CONFLICT', `the serving set of ${project}`, actual, expected),
    );
    return state;
  }

  /** Projects with a serving set, sorted: the projects the monitor checks. A scan, filtered on the serving item's sort key. */
  async listServedProjects(): Promise<string[]> {
    const projects: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await call(this.table, 'Scan (serving sets)', () =>
        this.db.send(
          new ScanCommand({
            TableName: this.table,
            FilterExpression: 'sk = :serving',
            ExpressionAttributeValues: { ':serving': layout.servingSort },
            ProjectionExpression: '#project',
            ExpressionAttributeNames: { '#project': 'project' },
            ExclusiveStartKey: start,
          }),
        ),
      );
      for (const item of page.Items ?? []) if (typeof item.project === 'string') projects.push(item.project);
      start = page.LastEvaluatedKey;
    } while (start);
    return projects.sort();
  }

  // ── plumbing ─────────────────────────────────────────────────────────────────────────────────

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
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ...(expected === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : { ConditionExpression: 'revision = :expected', ExpressionAttributeValues: { ':expected': expected } }),
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw onConflict(await readRevision());
      throw dynamoError(this.table, 'PutItem', error);
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
