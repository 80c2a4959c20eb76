import { describe, expect, it } from 'vitest';
import { decidePromotion, type GateScore } from '#lib/pipeline/promote/gate.ts';
import { moveProduction, PRODUCTION, rollbackProduction } from '#lib/pipeline/promote/promote.ts';
import { ModelRegistry, RegistryError, type VersionLineage } from '#lib/adapters/registry/index.ts';
import { parseSpec } from '#lib/domain/spec/index.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';
import { useLocalAws } from './helpers/localAws.ts';

const deploy = (overrides: Record<string, unknown> = {}) =>
  parseSpec({
    project: 'gate',
    baseModel: { kind: 'features', dimension: 2 },
    datasets: { train: 'train.jsonl' },
    tasks: [{ name: 'a', type: 'binary' }],
    deploy: overrides,
  }).deploy;

const score = (objective: number, violations: GateScore['violations'] = []): GateScore => ({ objective, violations });
const underFloor = [{ task: 'a', metric: 'auc' as const, value: 0.55, floor: 0.6 }];

describe('the promotion gate', () => {
  it.each([
    ['if-better: a worse candidate is held', {}, score(0.8), { version: 1, ...score(0.82) }, 'hold', /does not beat version 1's 0.8200/],
    ['if-better: a gain under the margin is held', { margin: 0.05 }, score(0.84), { version: 1, ...score(0.82) }, 'hold', /by the margin 0.05/],
    ['if-better: a better candidate is promoted', {}, score(0.9), { version: 1, ...score(0.82) }, 'promote', /beats version 1's 0.8200 by 0.0800/],
    ['a first model meeting its floors is promoted', {}, score(0.7), undefined, 'promote', /no version is in production/],
    [
      'a candidate under a floor is held whatever the policy',
      { policy: 'always' },
      score(0.99, underFloor),
      { version: 1, ...score(0.5) },
      'hold',
      /a auc 0.5500 misses its floor 0.6000/,
    ],
    ['always replaces production', { policy: 'always' }, score(0.7), { version: 3, ...score(0.9) }, 'promote', /replaces version 3/],
    ['never only registers', { policy: 'never' }, score(0.99), undefined, 'hold', /"never"/],
    [
      'canary joins the serving set with its share',
      { policy: 'canary', canaryShare: 0.2 },
      score(0.7),
      { version: 2, ...score(0.8) },
      'canary',
      /serves 20% of traffic beside version 2/,
    ],
  ] as const)('%s', (_name, policy, candidate, champion, action, reason) => {
    const decision = decidePromotion(deploy(policy), candidate, champion);

    expect(decision.action).toBe(action);
    expect(decision.reason).toMatch(reason);
    if (decision.action === 'canary') expect(decision.trafficShare).toBe(0.2);
  });
});

describe('production moves', () => {
  const aws = useLocalAws();
  let count = 0;
  const deps = () => ({
    store: new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket }),
    registry: new ModelRegistry({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable }),
  });
  const lineage = (runId: string): VersionLineage => ({
    runId,
    specDigest: 's',
    datasetDigest: 'd',
    baseModelDigest: 'b',
    lambda: { a: 1 },
    metrics: { a: { auc: 0.9 } },
    artifactUri: `s3://agentflow-artifacts/models/x/${runId}/model.onnx`,
    sha256: `sha-${runId}`,
  });

  async function projectWithVersions(n: number): Promise<string> {
    const project = `moves-${++count}`;
    for (let i = 1; i <= n; i++) await deps().registry.createVersion(project, lineage(`run-${i}`));
    return project;
  }

  it('lets exactly one of two concurrent promotions from the same revision win, and the serving set follows the winner', async () => {
    const project = await projectWithVersions(3);
    await moveProduction(deps(), project, { toVersion: 1, expectedRevision: undefined });
    const revision = (await deps().registry.getAlias(project, PRODUCTION))!.revision;

    const outcomes = await Promise.allSettled([2, 3].map((toVersion) => moveProduction(deps(), project, { toVersion, expectedRevision: revision })));

    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0].reason).toBeInstanceOf(RegistryError);
    expect((lost[0].reason as RegistryError).code).toBe('ALIAS_CONFLICT');
    const winner = (won[0] as PromiseFulfilledResult<{ version: number }>).value.version;
    expect((await deps().registry.getAlias(project, PRODUCTION))?.version).toBe(winner);
    expect((await deps().registry.getServingSet(project))?.production).toBe(winner);
    expect((await deps().registry.getVersion(project, winner)).status).toBe('production');
    expect((await deps().registry.getVersion(project, 1)).status).toBe('retired');
  });

  it('rolls production back to the version it replaced, serving set and statuses included', async () => {
    const project = await projectWithVersions(2);
    await moveProduction(deps(), project, { toVersion: 1, expectedRevision: undefined });
    await moveProduction(deps(), project, { toVersion: 2, expectedRevision: 1 });

    const rolled = await rollbackProduction(deps(), project);

    expect(rolled).toEqual({ version: 1, previous: 2 });
    expect((await deps().registry.getAlias(project, PRODUCTION))?.version).toBe(1);
    expect((await deps().registry.getServingSet(project))?.production).toBe(1);
    expect((await deps().registry.getVersion(project, 1)).status).toBe('production');
    expect((await deps().registry.getVersion(project, 2)).status).toBe('retired');
  });

  it('explains that there is nothing to roll back before a first promotion', async () => {
    const project = await projectWithVersions(1);

    await expect(rollbackProduction(deps(), project)).rejects.toMatchObject({ code: 'NO_PRODUCTION' });
  });
});
