/**
 * The reward table: what the agent learns from. Trial rewards and the tuner's policy (offline),
 * predictions, feedback and per-version arm counters (online).
 *
 * Online state it keeps for serving and monitoring lives here too: serving settings, the
 * prediction signing key, the monitor's counter snapshots and retraining claims. Item layout:
 * layout.ts.
 */
import { BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RegistryError, call, dynamoError, isConditionFailure, queryAll, revisionOf, versionPart } from './dynamo.ts';
import { layout, type ItemKey } from './layout.ts';

export interface TrialRecord<Row> {
  project: string;
  runId: string;
  trialId: string;
  row: Row;
  recordedAt: string;
}

export interface PolicyState<State> {
  state: State;
  revision: number;
  updatedAt: string;
}

/**
 * Sufficient statistics of one version's online rewards. `count`/`sum`/`sumSquares` feed a
 * Gaussian posterior; `successes`/`failures` a Beta posterior, where a reward r in [0, 1] counts
 * as r successes and 1 − r failures (exact for 0/1 rewards). Rewards outside [0, 1] leave
 * `successes`/`failures` unchanged.
 */
export interface ArmStats {
  version: number;
  count: number;
  sum: number;
  sumSquares: number;
  successes: number;
  failures: number;
}

export interface FeedbackRecord {
  project: string;
  predictionId: string;
  /** The version that served the prediction. */
  version: number;
  reward: number;
  /** Labels sent with the feedback (or the reward, for a task the project marks `rewardIsLabel`), per task. */
  labels?: Record<string, unknown>;
  feedbackAt: string;
  expiresAt: number;
}

/** What serving kept of one prediction (`datasets.feedback`): the record as sent, and the label rules of the version that served it. */
export interface LoggedInputs {
  predictionId: string;
  version: number;
  record: Record<string, unknown>;
  /** The card's `serving.feedback` section: what `/feedback` checks labels against. */
  rules: Record<string, unknown>;
  labels?: Record<string, unknown>;
}

/** A labelled prediction as Prepare reads it. */
export interface LabelledFeedbackRow {
  predictionId: string;
  version: number;
  record: Record<string, unknown>;
  labels: Record<string, unknown>;
}

/**
 * DynamoDB caps an item at 400 KB. The JSON length of an item bounds its DynamoDB size from above
 * but for small numbers; the margin covers those and the key attributes.
 */
const MAX_LOGGED_ITEM_BYTES = 350 * 1024;
/** BatchWriteItem takes 25 items a call. */
const BATCH_WRITE_ITEMS = 25;

export interface RewardLogOptions {
  dynamodb: DynamoDBDocumentClient;
  tableName: string;
  /** How long a prediction waits for feedback before TTL removes it (AWS only). Default 30 days. */
  predictionRetentionDays?: number;
  clock?: () => Date;
}

/** Per-version counters at a monitor window's first pass: `{ "<version>": { count, sum } }`. */
export type ArmSnapshot = Record<string, Pick<ArmStats, 'count' | 'sum'>>;

/** A monitor window's one retraining claim. */
export interface RetrainClaim {
  project: string;
  windowStart: string;
  reason: string;
  trigger: string;
  runId: string;
  status: 'starting' | 'started';
  claimedAt: string;
  executionArn?: string;
}

export class RewardLog {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #clock: () => Date;
  readonly #retentionSeconds: number;

  constructor(options: RewardLogOptions) {
    this.#db = options.dynamodb;
    this.#table = options.tableName;
    this.#clock = options.clock ?? (() => new Date());
    this.#retentionSeconds = Math.round((options.predictionRetentionDays ?? 30) * 86_400);
  }

  // ── trials and policy (offline) ──────────────────────────────────────────────────────────────

  /** Logs one trial's outcome once; a retried Reward step writes nothing and gets `false`. */
  async recordTrial<Row>(project: string, runId: string, trialId: string, row: Row): Promise<boolean> {
    return this.#putOnce({ ...layout.trial(project, runId, trialId), project, runId, trialId, row, recordedAt: this.#now() }, 'PutItem (trial)');
  }

  /** Trial rows of a project (all runs, or one), in run then trial id order. */
  async listTrials<Row>(project: string, runId?: string): Promise<TrialRecord<Row>[]> {
    const prefix = layout.trialPrefix(runId);
    const items = await queryAll(
      this.#db,
      {
        TableName: this.#table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': layout.projectPartition(project), ':prefix': prefix },
        ConsistentRead: true,
      },
      'Query (trials)',
    );
    return items.map((item) => ({
      project: item.project as string,
      runId: item.runId as string,
      trialId: item.trialId as string,
      row: item.row as Row,
      recordedAt: item.recordedAt as string,
    }));
  }

  async getPolicy<State>(project: string): Promise<PolicyState<State> | undefined> {
    const item = await this.#get(layout.policy(project));
    return item ? { state: item.state as State, revision: item.revision as number, updatedAt: item.updatedAt as string } : undefined;
  }

  /**
   * Saves the tuner's policy if nobody saved one since `expectedRevision` (undefined or 0: none
   * saved yet). Two Reward steps racing from the same revision: one wins, the other gets
   * `POLICY_CONFLICT` and should re-read and redo its update.
   */
  async putPolicy<State>(project: string, state: State, expectedRevision: number | undefined): Promise<PolicyState<State>> {
    const expected = revisionOf(expectedRevision);
    const saved: PolicyState<State> = { state, revision: expected + 1, updatedAt: this.#now() };
    try {
      await this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...layout.policy(project), ...saved },
          ...(expected === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : { ConditionExpression: 'revision = :expected', ExpressionAttributeValues: { ':expected': expected } }),
        }),
      );
      return saved;
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError(this.#table, 'PutItem (policy)', error);
    }
    const actual = (await this.getPolicy(project))?.revision ?? 0;
    throw new RegistryError(`the policy of ${project} is at revision ${actual}, not ${expected}: another run updated it; read it again and redo the update`, {
      code: 'POLICY_CONFLICT',
      context: { project, actualRevision: actual, expectedRevision: expected },
    });
  }

  // ── predictions and feedback (online) ────────────────────────────────────────────────────────

  /** The feedback recorded for a prediction, if any. */
  async getFeedback(project: string, predictionId: string): Promise<FeedbackRecord | undefined> {
    const item = await this.#get(layout.prediction(project, predictionId));
    if (!item) return undefined;
    const { pk: _pk, sk: _sk, ...record } = item;
    return record as unknown as FeedbackRecord;
  }

  /**
   * Credits a reward to the version that served the prediction, exactly once per prediction
   * (a conditional put; a second reward gets `FEEDBACK_DUPLICATE`), then adds it to that
   * version's arm counters. The caller vouches for the version (serving reads it from the signed
   * prediction id). Without transactions a crash between the two writes loses that one
   * observation from the counters — never counts it twice — which a bandit tolerates.
   */
  async recordFeedback(
    project: string,
    predictionId: string,
    reward: number,
    served: { version: number; retentionSeconds?: number; labels?: Record<string, unknown> },
  ): Promise<{ version: number; reward: number }> {
    if (typeof reward !== 'number' || !Number.isFinite(reward)) {
      throw new RegistryError(`reward ${JSON.stringify(reward)} for prediction ${predictionId} is not a finite number; send 0/1 or a real value`, {
        code: 'INVALID_ARGUMENT',
        context: { project, predictionId, reward },
      });
    }
    const version = served.version;
    versionPart(version);
    const now = this.#clock();
    const written = await this.#putOnce(
      {
        ...layout.prediction(project, predictionId),
        project,
        predictionId,
        version,
        reward,
        ...(served.labels && Object.keys(served.labels).length > 0 ? { labels: served.labels } : {}),
        feedbackAt: now.toISOString(),
        // The id is useless after its retention, so its feedback row need not outlive it.
        expiresAt: Math.floor(now.getTime() / 1000) + (served.retentionSeconds ?? this.#retentionSeconds),
      },
      'PutItem (feedback)',
    );
    if (!written) {
      const existing = await this.getFeedback(project, predictionId);
      throw new RegistryError(
        `prediction "${predictionId}" of ${project} already has reward ${existing?.reward} (at ${existing?.feedbackAt}); feedback counts once`,
        {
          code: 'FEEDBACK_DUPLICATE',
          context: { project, predictionId, reward: existing?.reward, given: reward },
        },
      );
    }
    await this.#addToArm(project, version, reward);
    return { version, reward };
  }

  /**
   * Keeps each served record's raw inputs under its prediction id, for as long as the id takes
   * feedback, so a labelled feedback becomes a training row. A record too large for one item is
   * skipped and counted, never failing the request it came with; the rest go in batches of 25.
   */
  async logPredictionInputs(
    project: string,
    entries: readonly { predictionId: string; record: Record<string, unknown> }[],
    served: { version: number; rules: Record<string, unknown>; retentionSeconds?: number },
  ): Promise<{ written: number; skipped: number }> {
    versionPart(served.version);
    const now = this.#clock();
    const expiresAt = Math.floor(now.getTime() / 1000) + (served.retentionSeconds ?? this.#retentionSeconds);
    const items: Record<string, unknown>[] = [];
    let tooLarge = 0;
    for (const { predictionId, record } of entries) {
      // The record as one JSON string: a map of DynamoDB attributes (a vector is hundreds of numbers) costs far more to marshal and store.
      const item = {
        ...layout.feedbackRow(project, predictionId),
        predictionId,
        version: served.version,
        record: JSON.stringify(record),
        rules: served.rules,
        loggedAt: now.toISOString(),
        expiresAt,
      };
      if (Buffer.byteLength(JSON.stringify(item), 'utf8') > MAX_LOGGED_ITEM_BYTES) tooLarge += 1;
      else items.push(item);
    }
    let unprocessed = 0;
    for (let start = 0; start < items.length; start += BATCH_WRITE_ITEMS) {
      let requests = items.slice(start, start + BATCH_WRITE_ITEMS).map((Item) => ({ PutRequest: { Item } }));
      // Throttled items come back unprocessed; a few quick retries, then the rest are given up as skipped.
      for (let attempt = 0; requests.length > 0 && attempt < 3; attempt += 1) {
        const result = await call(this.#table, 'BatchWriteItem (logged inputs)', () =>
          this.#db.send(new BatchWriteCommand({ RequestItems: { [this.#table]: requests } })),
        );
        requests = (result.UnprocessedItems?.[this.#table] ?? []) as typeof requests;
      }
      unprocessed += requests.length;
    }
    return { written: items.length - unprocessed, skipped: tooLarge + unprocessed };
  }

  /** What serving kept of a prediction, if it kept anything (the project keeps feedback as data and the id is within its retention). */
  async getLoggedInputs(project: string, predictionId: string): Promise<LoggedInputs | undefined> {
    const item = await this.#get(layout.feedbackRow(project, predictionId));
    if (!item) return undefined;
    return {
      predictionId,
      version: item.version as number,
      record: recordOf(item),
      rules: item.rules as Record<string, unknown>,
      ...(item.labels === undefined ? {} : { labels: item.labels as Record<string, unknown> }),
    };
  }

  /**
   * Adds the labels of a prediction's feedback to its logged inputs, making it a training row.
   * Called after the feedback's exactly-once write, so a prediction is labelled at most once.
   * False when nothing was logged for it.
   */
  async labelLoggedInputs(project: string, predictionId: string, labels: Record<string, unknown>): Promise<boolean> {
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: layout.feedbackRow(project, predictionId),
          UpdateExpression: 'SET labels = :labels, labelledAt = :at',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':labels': labels, ':at': this.#now() },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw dynamoError(this.#table, 'UpdateItem (feedback labels)', error);
    }
  }

  /** Every labelled prediction of a project still within its retention, in prediction id order (one Query, following pages). */
  async labelledFeedbackRows(project: string): Promise<LabelledFeedbackRow[]> {
    const items = await queryAll(
      this.#db,
      {
        TableName: this.#table,
        KeyConditionExpression: 'pk = :pk',
        FilterExpression: 'attribute_exists(labels)',
        ExpressionAttributeValues: { ':pk': layout.feedbackRowsPartition(project) },
        ConsistentRead: true,
      },
      'Query (labelled feedback)',
    );
    return items.map((item) => ({
      predictionId: item.predictionId as string,
      version: item.version as number,
      record: recordOf(item),
      labels: item.labels as Record<string, unknown>,
    }));
  }

  /** Counters for each asked version, in the order asked; versions never rewarded get zeros. */
  async getArmStats(project: string, versions: number[]): Promise<ArmStats[]> {
    return Promise.all(
      versions.map(async (version) => {
        const item = await this.#get(layout.arm(project, version));
        return {
          version,
          count: (item?.count as number | undefined) ?? 0,
          sum: (item?.sum as number | undefined) ?? 0,
          sumSquares: (item?.sumSquares as number | undefined) ?? 0,
          successes: (item?.successes as number | undefined) ?? 0,
          failures: (item?.failures as number | undefined) ?? 0,
        };
      }),
    );
  }

  async #addToArm(project: string, version: number, reward: number): Promise<void> {
    const bounded = reward >= 0 && reward <= 1;
    await call(this.#table, 'UpdateItem (arm counters)', () =>
      this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: layout.arm(project, version),
          UpdateExpression: bounded
            ? 'SET version = :version ADD #count :one, #sum :reward, sumSquares :square, successes :success, failures :failure'
            : 'SET version = :version ADD #count :one, #sum :reward, sumSquares :square',
          ExpressionAttributeNames: { '#count': 'count', '#sum': 'sum' },
          ExpressionAttributeValues: {
            ':version': version,
            ':one': 1,
            ':reward': reward,
            ':square': reward * reward,
            ...(bounded ? { ':success': reward, ':failure': 1 - reward } : {}),
          },
        }),
      ),
    );
  }

  // ── serving settings and the prediction signing key ──────────────────────────────────────────

  /** The stored reward kind of a project's router, undefined when none was set. Validation is the caller's (lib/serve/settings.ts). */
  async getServeSettings(project: string): Promise<{ rewardKind?: string }> {
    const item = await this.#get(layout.serveSettings(project), { consistent: false });
    return item?.rewardKind === undefined ? {} : { rewardKind: item.rewardKind as string };
  }

  async putServeSettings(project: string, settings: { rewardKind: string }): Promise<void> {
    await call(this.#table, 'PutItem (serve settings)', () =>
      this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...layout.serveSettings(project), project, rewardKind: settings.rewardKind, updatedAt: this.#now() },
        }),
      ),
    );
  }

  /** The deployment's prediction signing key (base64), creating it from `create` if there is none; a server that loses the race gets the winner's. */
  async predictionSigningKey(create: () => { key: string; createdAt: string }): Promise<string> {
    const read = async () => (await this.#get(layout.predictionSigningKey))?.key as string | undefined;
    const existing = await read();
    if (existing) return existing;
    const fresh = create();
    if (await this.#putOnce({ ...layout.predictionSigningKey, ...fresh }, 'PutItem (prediction signing key)')) return fresh.key;
    return (await read())!;
  }

  // ── monitor snapshots and retraining claims ──────────────────────────────────────────────────

  /** The newest counter snapshot taken before the window starting at `windowStart` (not the window's own). */
  async latestArmSnapshotBefore(project: string, windowStart: string): Promise<ArmSnapshot | undefined> {
    const own = layout.armSnapshot(project, windowStart);
    const result = await call(this.#table, 'Query (arm snapshots)', () =>
      this.#db.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
          ExpressionAttributeValues: { ':pk': own.pk, ':from': layout.armSnapshotPrefix, ':to': own.sk },
          ScanIndexForward: false,
          Limit: 2,
          ConsistentRead: true,
        }),
      ),
    );
    const item = (result.Items ?? []).find((i) => i.sk !== own.sk);
    return item?.arms as ArmSnapshot | undefined;
  }

  /** Records the window's snapshot once; a later pass of the same window keeps the first. */
  async putArmSnapshotOnce(project: string, windowStart: string, arms: ArmSnapshot, takenAt: Date): Promise<void> {
    await this.#putOnce({ ...layout.armSnapshot(project, windowStart), project, windowStart, arms, takenAt: takenAt.toISOString() }, 'PutItem (arm snapshot)');
  }

  /** Claims the window's retraining run; when an earlier pass claimed it, returns that claim instead. */
  async claimRetrain(claim: Omit<RetrainClaim, 'status' | 'executionArn'>): Promise<{ claimed: true } | { claimed: false; existing: Partial<RetrainClaim> }> {
    const key = layout.retrainClaim(claim.project, claim.windowStart);
    if (await this.#putOnce({ ...key, ...claim, status: 'starting' }, 'PutItem (retrain claim)')) return { claimed: true };
    const { pk: _pk, sk: _sk, ...existing } = (await this.#get(key)) ?? {};
    return { claimed: false, existing: existing as Partial<RetrainClaim> };
  }

  /** Gives an unstarted claim back, so the next pass in the window tries again. */
  async releaseRetrain(project: string, windowStart: string): Promise<void> {
    await call(this.#table, 'DeleteItem (retrain claim)', () =>
      this.#db.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: layout.retrainClaim(project, windowStart),
          ConditionExpression: '#status = :starting',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':starting': 'starting' },
        }),
      ),
    );
  }

  async markRetrainStarted(project: string, windowStart: string, started: { runId: string; executionArn?: string }): Promise<void> {
    await call(this.#table, 'UpdateItem (retrain claim)', () =>
      this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: layout.retrainClaim(project, windowStart),
          UpdateExpression: started.executionArn ? 'SET #status = :started, runId = :runId, executionArn = :arn' : 'SET #status = :started, runId = :runId',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':started': 'started', ':runId': started.runId, ...(started.executionArn ? { ':arn': started.executionArn } : {}) },
        }),
      ),
    );
  }

  // ── plumbing ─────────────────────────────────────────────────────────────────────────────────

  #now(): string {
    return this.#clock().toISOString();
  }

  async #get(key: ItemKey, options: { consistent?: boolean } = {}): Promise<Record<string, unknown> | undefined> {
    const consistent = options.consistent ?? true;
    const result = await call(this.#table, 'GetItem', () =>
      this.#db.send(new GetCommand({ TableName: this.#table, Key: key, ...(consistent ? { ConsistentRead: true } : {}) })),
    );
    return result.Item;
  }

  async #putOnce(item: Record<string, unknown>, action: string): Promise<boolean> {
    try {
      await this.#db.send(new PutCommand({ TableName: this.#table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw dynamoError(this.#table, action, error);
    }
  }
}

/** A logged record, kept as the JSON text of the served record. */
function recordOf(item: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(item.record as string) as Record<string, unknown>;
}
