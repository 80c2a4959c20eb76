/**
 * `models/<project>/<version>/live.json`: what a live model needs after its run's scratch is gone
 * (written by Export, read by the monitor; see lib/pipeline/export/liveModel.ts for why it exists).
 */
import * as z from 'zod';
import { monitorSchema } from '#lib/domain/spec/index.ts';

export const LIVE_MODEL_FILES = { document: 'live.json', spec: 'spec.json', reference: 'reference.json' } as const;

export const LiveModel = z.strictObject({
  liveModelVersion: z.literal(1),
  project: z.string().min(1),
  version: z.int().positive(),
  /** The run that trained it; its `runs/<runId>/` scratch may be gone. */
  runId: z.string().min(1),
  /** The spec's `monitor` section: the thresholds the monitor holds production to. */
  monitor: monitorSchema,
  spec: z.strictObject({
    /** The copy under the version's folder, which a retraining run starts from. */
    uri: z.string().startsWith('s3://'),
    /** Where the run read it (often `runs/<runId>/spec.json`, which expires): lineage only. */
    sourceUri: z.string(),
    digest: z.string(),
  }),
  /** The datasets the spec names (content-addressed under `datasets/`, which does not expire) and how the train file is split. */
  datasets: z.array(z.strictObject({ role: z.enum(['train', 'validation', 'holdout']), uri: z.string(), digest: z.string() })).min(1),
  split: z.record(z.string(), z.unknown()),
  /** The feature shards the version was trained on, and the encoder whose embeddings it reads. */
  features: z.strictObject({ digest: z.string(), encoderId: z.string() }),
  /** The drift reference; null when the holdout had too few rows to build one. */
  reference: z.strictObject({ uri: z.string().startsWith('s3://'), rows: z.int().positive() }).nullable(),
});
export type LiveModel = z.infer<typeof LiveModel>;
