import { describe, expect, it } from 'vitest';
import { ModelRegistry, RegistryError, RewardLog, RunLog, type VersionLineage } from '#lib/adapters/registry/index.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
let projectCount = 0;
/** A fresh project per test, so tests share the tables without seeing each other's items. */
const newProject = () => `p${++projectCount}`;
const registry = () => new ModelRegistry({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
const runLog = () => new RunLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
const rewards = () => new RewardLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.rewardTable });

const lineage = (runId: string, overrides: Partial<VersionLineage> = {}): VersionLineage => ({
  runId,
  specDigest: 'spec-1',
  datasetDigest: 'data-1',
  baseModelDigest: 'base-1',
  lambda: { spam: 1.2, topic: 0.8 },
  metrics: { spam: { auc: 0.91 }, topic: { accuracy: 0.84 } },
  artifactUri: `s3://bucket/models/x/${runId}/model.onnx`,
  sha256: `sha-${runId}`,
  ...overrides,
});

async function rejection(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(RegistryError);
  return error as RegistryError;
}

describe('ModelRegistry versions', () => {
  it('gives 20 concurrent createVersion calls 20 distinct version numbers', async () => {
    const project = newProject();
    const reg = registry();

    const versions = await Promise.all(Array.from({ length: 20 }, (_, i) => reg.createVersion(project, lineage(`run-${i}`))));

    expect(new Set(versions.map((v) => v.version)).size).toBe(20);
    expect(versions.map((v) => v.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await reg.listVersions(project)).map((v) => v.version)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('returns the same version to a retried createVersion with the same run id', async () => {
    const project = newProject();
    const reg = registry();

    const first = await reg.createVersion(project, lineage('run-a'));
    const retried = await reg.createVersion(project, lineage('run-a'));
    const concurrent = await Promise.all([reg.createVersion(project, lineage('run-b')), reg.createVersion(project, lineage('run-b'))]);

    expect(retried).toEqual(first);
    expect(first).toMatchObject({ version: 1, status: 'candidate', lineage: { runId: 'run-a', sha256: 'sha-run-a' } });
    expect(concurrent[0].version).toBe(concurrent[1].version);
    expect(await reg.listVersions(project)).toHaveLength(2);
    expect((await reg.findVersionByRun(project, 'run-b'))?.version).toBe(concurrent[0].version);
  });

  it('finishes a version whose number was reserved before a crash', async () => {
    const project = newProject();
    const reg = registry();

    const reserved = await reg.reserveVersion(project, { runId: 'run-crash' });
    const created = await reg.createVersion(project, lineage('run-crash'));

    expect(created.version).toBe(reserved);
    expect(await reg.reserveVersion(project, { runId: 'run-crash' })).toBe(reserved);
  });

  it('refuses a retried createVersion whose model file differs', async () => {
    const project = newProject();
    const reg = registry();
    await reg.createVersion(project, lineage('run-a'));

    const error = await rejection(reg.createVersion(project, lineage('run-a', { sha256: 'other' })));

    expect(error.code).toBe('VERSION_CONFLICT');
    expect(error.message).toContain('other');
  });

  it('updates a version status and rejects unknown versions', async () => {
    const project = newProject();
    const reg = registry();
    const { version } = await reg.createVersion(project, lineage('run-a'));

    const updated = await reg.updateVersionStatus(project, version, 'rejected', { reason: 'below floor on spam' });

    expect(updated).toMatchObject({ version, status: 'rejected', statusReason: 'below floor on spam' });
    expect((await reg.getVersion(project, version)).status).toBe('rejected');
    expect((await rejection(reg.updateVersionStatus(project, 99, 'retired'))).code).toBe('VERSION_NOT_FOUND');
    expect((await rejection(reg.getVersion(project, 99))).message).toContain('99');
  });
});

describe('ModelRegistry aliases', () => {
  async function projectWithVersions(count: number) {
    const project = newProject();
    const reg = registry();
    for (let i = 1; i <= count; i++) await reg.createVersion(project, lineage(`run-${i}`));
    return { project, reg };
  }

  it('creates an alias only when it does not exist yet', async () => {
    const { project, reg } = await projectWithVersions(2);

    const created = await reg.moveAlias(project, 'production', { toVersion: 1, expectedRevision: 0 });
    const error = await rejection(reg.moveAlias(project, 'production', { toVersion: 2, expectedRevision: undefined }));

    expect(created).toMatchObject({ version: 1, revision: 1, moved: true });
    expect(created.previous).toBeUndefined();
    expect(error.code).toBe('ALIAS_CONFLICT');
    expect(error.context).toMatchObject({ actualRevision: 1, expectedRevision: 0 });
  });

  it('lets exactly one of several concurrent moves from the same revision win', async () => {
    const { project, reg } = await projectWithVersions(6);
    await reg.moveAlias(project, 'production', { toVersion: 1, expectedRevision: 0 });

    const results = await Promise.allSettled([2, 3, 4, 5, 6].map((toVersion) => reg.moveAlias(project, 'production', { toVersion, expectedRevision: 1 })));

    const won = results.filter((result) => result.status === 'fulfilled');
    const lost = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(4);
    expect(lost.every((result) => (result.reason as RegistryError).code === 'ALIAS_CONFLICT')).toBe(true);
    const alias = await reg.getAlias(project, 'production');
    expect(alias).toMatchObject({ revision: 2, previous: 1, version: (won[0] as PromiseFulfilledResult<{ version: number }>).value.version });
  });

  it('rolls back to the previous version, and a second rollback rolls forward', async () => {
    const { project, reg } = await projectWithVersions(2);
    await reg.moveAlias(project, 'production', { toVersion: 1, expectedRevision: 0 });
    await reg.moveAlias(project, 'production', { toVersion: 2, expectedRevision: 1 });

    const back = await reg.rollback(project, 'production', { expectedRevision: 2 });
    const stale = await rejection(reg.rollback(project, 'production', { expectedRevision: 2 }));
    const forward = await reg.rollback(project, 'production', { expectedRevision: 3 });

    expect(back).toMatchObject({ version: 1, previous: 2, revision: 3 });
    expect(stale.code).toBe('ALIAS_CONFLICT');
    expect(forward).toMatchObject({ version: 2, previous: 1, revision: 4 });
  });

  it('treats moving an alias to where it already points as a no-op', async () => {
    const { project, reg } = await projectWithVersions(1);
    await reg.moveAlias(project, 'production', { toVersion: 1, expectedRevision: 0 });

    const retried = await reg.moveAlias(project, 'production', { toVersion: 1, expectedRevision: 0 });

    expect(retried).toMatchObject({ version: 1, revision: 1, moved: false });
  });

  it.each([
    ['an alias that was never set', 'ALIAS_NOT_FOUND', 0],
    ['an alias with no previous version', 'NO_PREVIOUS_VERSION', 1],
  ])('refuses to roll back %s', async (_label, code, moves) => {
    const { project, reg } = await projectWithVersions(1);
    if (moves) await reg.moveAlias(project, 'production', { toVersion: 1, expectedRevision: 0 });

    expect((await rejection(reg.rollback(project, 'production', { expectedRevision: moves }))).code).toBe(code);
  });

  it('refuses to point an alias at a version that does not exist', async () => {
    const { project, reg } = await projectWithVersions(1);

    expect((await rejection(reg.moveAlias(project, 'production', { toVersion: 7, expectedRevision: 0 }))).code).toBe('VERSION_NOT_FOUND');
    expect(await reg.getAlias(project, 'production')).toBeUndefined();
  });
});

describe('ModelRegistry serving set', () => {
  it('stores production and challengers under a revision, refusing stale writers', async () => {
    const project = newProject();
    const reg = registry();
    for (const runId of ['a', 'b', 'c']) await reg.createVersion(project, lineage(runId));

    const first = await reg.setServingSet(project, { production: 1, challengers: [{ version: 2, trafficShare: 0.1 }] }, { expectedRevision: 0 });
    const second = await reg.setServingSet(project, { production: 2, challengers: [{ version: 3, trafficShare: 0.2 }] }, { expectedRevision: 1 });
    const stale = await rejection(reg.setServingSet(project, { production: 1, challengers: [] }, { expectedRevision: 1 }));

    expect(first.revision).toBe(1);
    expect(second.revision).toBe(2);
    expect(stale.code).toBe('SERVING_SET_CONFLICT');
    expect(await reg.getServingSet(project)).toMatchObject({ production: 2, challengers: [{ version: 3, trafficShare: 0.2 }], revision: 2 });
  });

  it.each([
    ['a duplicated version', { production: 1, challengers: [{ version: 1, trafficShare: 0.1 }] }],
    ['a share of 1', { production: 1, challengers: [{ version: 2, trafficShare: 1 }] }],
    [
      'shares above 1 in total',
      {
        production: 1,
        challengers: [
          { version: 2, trafficShare: 0.6 },
          { version: 3, trafficShare: 0.6 },
        ],
      },
    ],
  ])('rejects a serving set with %s', async (_label, set) => {
    const project = newProject();

    expect((await rejection(registry().setServingSet(project, set, { expectedRevision: 0 }))).code).toBe('SERVING_SET_INVALID');
  });
});

describe('RunLog runs', () => {
  it('creates a run once and tracks its status with timestamps', async () => {
    let now = Date.parse('2025-01-01T00:00:00Z');
    const runs = new RunLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable, clock: () => new Date((now += 1000)) });
    const project = newProject();

    const created = await runs.createRun({ project, runId: 'r1', specDigest: 'spec-1', trigger: 'cli' });
    const retried = await runs.createRun({ project, runId: 'r1', specDigest: 'spec-1', trigger: 'cli' });
    const training = await runs.updateRunStatus(project, 'r1', 'running', { stage: 'Trials' });
    const failed = await runs.updateRunStatus(project, 'r1', 'failed', { stage: 'Export', error: { message: 'NaN loss', code: 'TRIAL_NAN' } });
    const failedAgain = await runs.updateRunStatus(project, 'r1', 'failed');

    expect(created.created).toBe(true);
    expect(retried).toEqual({ run: created.run, created: false });
    expect(training).toMatchObject({ status: 'running', stage: 'Trials' });
    expect(training.finishedAt).toBeUndefined();
    expect(failed).toMatchObject({ status: 'failed', stage: 'Export', error: { message: 'NaN loss', code: 'TRIAL_NAN' }, startedAt: created.run.startedAt });
    expect(Date.parse(failed.finishedAt ?? '')).toBeGreaterThan(Date.parse(created.run.startedAt));
    expect(failedAgain.finishedAt).toBe(failed.finishedAt);
    expect((await rejection(runs.updateRunStatus(project, 'r1', 'succeeded'))).code).toBe('RUN_FINISHED');
    expect((await rejection(runs.updateRunStatus(project, 'nope', 'running'))).code).toBe('RUN_NOT_FOUND');
  });

  it('refuses a run id reused for a different spec', async () => {
    const project = newProject();
    const runs = runLog();
    await runs.createRun({ project, runId: 'r1', specDigest: 'spec-1' });

    expect((await rejection(runs.createRun({ project, runId: 'r1', specDigest: 'spec-2' }))).code).toBe('RUN_CONFLICT');
  });

  it('lists runs newest first', async () => {
    let now = Date.parse('2025-01-01T00:00:00Z');
    const runs = new RunLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable, clock: () => new Date((now += 60_000)) });
    const project = newProject();
    for (const runId of ['b-first', 'a-second', 'c-third']) await runs.createRun({ project, runId, specDigest: 's' });
    await runs.createRun({ project: newProject(), runId: 'elsewhere', specDigest: 's' });

    expect((await runs.listRuns(project)).map((run) => run.runId)).toEqual(['c-third', 'a-second', 'b-first']);
    expect((await runs.listRuns(project, { limit: 1 })).map((run) => run.runId)).toEqual(['c-third']);
  });

  it('records each run event once', async () => {
    const project = newProject();
    const runs = runLog();

    const first = await runs.recordRunEvent(project, 'r1', 'plan', { reason: 'warm start from policy revision 3' });
    const retried = await runs.recordRunEvent(project, 'r1', 'plan', { reason: 'something else' });

    expect([first, retried]).toEqual([true, false]);
    expect(await runs.listRunEvents(project, 'r1')).toEqual([
      expect.objectContaining({ eventKey: 'plan', detail: { reason: 'warm start from policy revision 3' } }),
    ]);
  });

  it('rejects ids that would break the key layout', async () => {
    expect((await rejection(runLog().createRun({ project: 'a#b', runId: 'r', specDigest: 's' }))).code).toBe('INVALID_ARGUMENT');
  });
});

describe('RewardLog', () => {
  it('records a trial row once, so a retried write is a no-op', async () => {
    const project = newProject();
    const log = rewards();

    const written = await log.recordTrial(project, 'r1', 't1', { lambda: { spam: 1 }, reward: 0.7 });
    const retried = await log.recordTrial(project, 'r1', 't1', { lambda: { spam: 2 }, reward: 0.1 });
    await log.recordTrial(project, 'r2', 't1', { lambda: { spam: 1 }, reward: 0.5 });

    expect([written, retried]).toEqual([true, false]);
    expect((await log.listTrials(project, 'r1')).map((trial) => trial.row)).toEqual([{ lambda: { spam: 1 }, reward: 0.7 }]);
    expect((await log.listTrials(project)).map((trial) => `${trial.runId}/${trial.trialId}`)).toEqual(['r1/t1', 'r2/t1']);
  });

  it('lets one of two racing policy updates win', async () => {
    const project = newProject();
    const log = rewards();
    await log.putPolicy(project, { theta: [0, 0] }, undefined);

    const results = await Promise.allSettled([log.putPolicy(project, { theta: [1, 0] }, 1), log.putPolicy(project, { theta: [0, 1] }, 1)]);

    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    expect(lost?.reason).toMatchObject({ name: 'RegistryError', code: 'POLICY_CONFLICT' });
    expect((await log.getPolicy(project))?.revision).toBe(2);
    expect((await rejection(log.putPolicy(project, { theta: [] }, undefined))).code).toBe('POLICY_CONFLICT');
  });

  it('accepts feedback once per prediction and updates the arm counters', async () => {
    const project = newProject();
    const log = rewards();

    await log.recordFeedback(project, 'q1', 1, { version: 3 });
    await log.recordFeedback(project, 'q2', 0, { version: 3 });
    const credited = await log.recordFeedback(project, 'q3', 1, { version: 4 });
    const duplicate = await rejection(log.recordFeedback(project, 'q1', 1, { version: 3 }));

    expect(credited).toEqual({ version: 4, reward: 1 });
    expect(duplicate.code).toBe('FEEDBACK_DUPLICATE');
    expect(duplicate.message).toMatch(/already has reward 1/);
    expect(await log.getArmStats(project, [3, 4, 5])).toEqual([
      { version: 3, count: 2, sum: 1, sumSquares: 1, successes: 1, failures: 1 },
      { version: 4, count: 1, sum: 1, sumSquares: 1, successes: 1, failures: 0 },
      { version: 5, count: 0, sum: 0, sumSquares: 0, successes: 0, failures: 0 },
    ]);
  });

  it('counts concurrent feedback on one version without losing updates, and each prediction only once', async () => {
    const project = newProject();
    const log = rewards();
    const ids = Array.from({ length: 25 }, (_, i) => `q${i}`);

    const outcomes = await Promise.allSettled([...ids, ...ids].map((id, i) => log.recordFeedback(project, id, i % 5 === 0 ? 2.5 : 0.5, { version: 1 })));

    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(25);
    const [stats] = await log.getArmStats(project, [1]);
    expect(stats.count).toBe(25);
    expect(stats.sum).toBeCloseTo(5 * 2.5 + 20 * 0.5, 9);
  });

  it('rejects non-numeric rewards before writing anything', async () => {
    const project = newProject();
    const log = rewards();

    const invalid = await rejection(log.recordFeedback(project, 'q1', Number.NaN, { version: 1 }));

    expect(invalid.code).toBe('INVALID_ARGUMENT');
    expect(await log.getFeedback(project, 'q1')).toBeUndefined();
    expect((await log.getArmStats(project, [1]))[0].count).toBe(0);
  });

  it('keeps a feedback row until its retention ends, for the TTL', async () => {
    const project = newProject();
    const log = new RewardLog({
      dynamodb: aws.clients.dynamodb,
      tableName: aws.config.rewardTable,
      predictionRetentionDays: 1,
      clock: () => new Date('2025-01-01T00:00:00Z'),
    });

    await log.recordFeedback(project, 'q1', 1, { version: 2 });

    expect(await log.getFeedback(project, 'q1')).toMatchObject({ version: 2, reward: 1, expiresAt: Date.parse('2025-01-02T00:00:00Z') / 1000 });
  });
});

describe('RunLog resume', () => {
  it('reopens a failed run for a resume, clearing its error, and refuses a succeeded one', async () => {
    const project = newProject();
    const runs = runLog();
    await runs.createRun({ project, runId: 'r-fail', specDigest: 's' });
    await runs.updateRunStatus(project, 'r-fail', 'failed', { stage: 'Trials', error: { message: 'boom' } });
    await runs.createRun({ project, runId: 'r-ok', specDigest: 's' });
    await runs.updateRunStatus(project, 'r-ok', 'succeeded', { stage: 'Promote' });

    const reopened = await runs.reopenRun(project, 'r-fail');
    const refused = await rejection(runs.reopenRun(project, 'r-ok'));
    const missing = await rejection(runs.reopenRun(project, 'r-none'));

    expect(reopened).toMatchObject({ status: 'running', stage: 'Trials', resumes: 1 });
    expect(reopened.error).toBeUndefined();
    expect(reopened.finishedAt).toBeUndefined();
    expect(refused.code).toBe('RUN_FINISHED');
    expect(missing.code).toBe('RUN_NOT_FOUND');
    expect((await runs.updateRunStatus(project, 'r-fail', 'succeeded')).status).toBe('succeeded');
  });
});
