/**
 * Every item kind of the two tables and the keys it lives under: the one place a key is spelled.
 * Both tables use generic string keys `pk` / `sk` (single-table style).
 *
 * Registry table (pk | sk → attributes), written by ModelRegistry and RunLog:
 *   PROJECT#<p>          | COUNTER#VERSION               next                      atomic ADD hands out version numbers
 *   PROJECT#<p>          | RUNVERSION#<runId>            version, reservedAt       the number a run's export owns (idempotency)
 *   PROJECT#<p>          | VERSION#0000012               ModelVersion              written once; only status changes
 *   PROJECT#<p>          | ALIAS#<alias>                 version, revision, previous
 *   PROJECT#<p>          | SERVING                       production, challengers, revision
 *   PROJECT#<p>          | RUN#<runId>                   RunRecord; gsi1pk RUNS#<p>, gsi1sk <startedAt>#<runId>
 *   PROJECT#<p>          | RUNEVENT#<runId>#<eventKey>   detail, recordedAt
 *
 * Reward table, written by RewardLog:
 *   PROJECT#<p>          | TRIAL#<runId>#<trialId>       row, recordedAt              written once
 *   PROJECT#<p>          | POLICY                        state, revision, updatedAt   optimistic locking
 *   PROJECT#<p>          | ARM#0000012                   count, sum, sumSquares, successes, failures (ADD)
 *   PROJECT#<p>          | SERVE#SETTINGS                rewardKind, updatedAt        the router's posterior and what feedback accepts
 *   PROJECT#<p>          | MONITOR#ARMS#<windowStart>    arms, takenAt                per-version counters at a window's first monitor pass
 *   PREDICTION#<p>#<id>  | PREDICTION                    version, reward, labels?, feedbackAt, expiresAt (TTL)
 *   FEEDROWS#<p>         | <predictionId>                version, record (JSON text), rules, expiresAt (TTL); labels, labelledAt once labelled
 *   RETRAIN#<p>#<windowStart> | RETRAIN                  reason, trigger, status, runId, executionArn?   a window's one retraining claim
 *   AGENTFLOW#SERVE      | PREDICTION_SIGNING_KEY        key, createdAt               one per deployment, created by the first server
 *
 * Predictions (and their feedback) get a partition each because they are written at serving rate;
 * everything else a project owns shares its partition. Logged inputs (`datasets.feedback`) share
 * one partition per project so Prepare reads a project's labelled rows with one Query; DynamoDB
 * splits a hot partition by sort key ranges (the prediction id, which starts with the version and
 * the time). `expiresAt` is the TTL attribute on AWS (dynalite keeps the items).
 */
import { keyPart, versionPart } from './dynamo.ts';

export interface ItemKey {
  pk: string;
  sk: string;
}

const project = (p: string) => `PROJECT#${keyPart('project', p)}`;

export const layout = {
  projectPartition: project,
  versionCounter: (p: string): ItemKey => ({ pk: project(p), sk: 'COUNTER#VERSION' }),
  runVersion: (p: string, runId: string): ItemKey => ({ pk: project(p), sk: `RUNVERSION#${keyPart('runId', runId)}` }),
  versionPrefix: 'VERSION#',
  version: (p: string, version: number): ItemKey => ({ pk: project(p), sk: `VERSION#${versionPart(version)}` }),
  alias: (p: string, alias: string): ItemKey => ({ pk: project(p), sk: `ALIAS#${keyPart('alias', alias)}` }),
  servingSort: 'SERVING',
  serving: (p: string): ItemKey => ({ pk: project(p), sk: 'SERVING' }),
  run: (p: string, runId: string): ItemKey => ({ pk: project(p), sk: `RUN#${keyPart('runId', runId)}` }),
  runsByTime: (p: string, startedAt: string, runId: string) => ({ gsi1pk: `RUNS#${keyPart('project', p)}`, gsi1sk: `${startedAt}#${runId}` }),
  runsByTimePartition: (p: string) => `RUNS#${keyPart('project', p)}`,
  runEvent: (p: string, runId: string, eventKey: string): ItemKey => ({
    pk: project(p),
    sk: `RUNEVENT#${keyPart('runId', runId)}#${keyPart('eventKey', eventKey)}`,
  }),
  runEventPrefix: (runId: string) => `RUNEVENT#${keyPart('runId', runId)}#`,

  trial: (p: string, runId: string, trialId: string): ItemKey => ({ pk: project(p), sk: `TRIAL#${keyPart('runId', runId)}#${keyPart('trialId', trialId)}` }),
  trialPrefix: (runId?: string) => (runId === undefined ? 'TRIAL#' : `TRIAL#${keyPart('runId', runId)}#`),
  policy: (p: string): ItemKey => ({ pk: project(p), sk: 'POLICY' }),
  arm: (p: string, version: number): ItemKey => ({ pk: project(p), sk: `ARM#${versionPart(version)}` }),
  serveSettings: (p: string): ItemKey => ({ pk: project(p), sk: 'SERVE#SETTINGS' }),
  armSnapshotPrefix: 'MONITOR#ARMS#',
  armSnapshot: (p: string, windowStart: string): ItemKey => ({ pk: project(p), sk: `MONITOR#ARMS#${windowStart}` }),
  prediction: (p: string, predictionId: string): ItemKey => ({
    pk: `PREDICTION#${keyPart('project', p)}#${keyPart('predictionId', predictionId)}`,
    sk: 'PREDICTION',
  }),
  feedbackRowsPartition: (p: string) => `FEEDROWS#${keyPart('project', p)}`,
  feedbackRow: (p: string, predictionId: string): ItemKey => ({ pk: `FEEDROWS#${keyPart('project', p)}`, sk: keyPart('predictionId', predictionId) }),
  retrainClaim: (p: string, windowStart: string): ItemKey => ({ pk: `RETRAIN#${keyPart('project', p)}#${windowStart}`, sk: 'RETRAIN' }),
  predictionSigningKey: { pk: 'AGENTFLOW#SERVE', sk: 'PREDICTION_SIGNING_KEY' } as ItemKey,
} as const;
