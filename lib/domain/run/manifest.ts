import * as z from 'zod';
import { DATASET_FORMATS, TASK_TYPES, monitorSchema, splitSchema, type Spec } from '#lib/domain/spec/index.ts';

export const DatasetRole = z.enum(['train', 'validation', 'holdout']);
export type DatasetRole = z.infer<typeof DatasetRole>;

/** One input dataset as Prepare found it: where it is, its content digest and what it holds. */
export const DatasetEntry = z.object({
  role: DatasetRole,
  uri: z.string().min(1),
  format: z.enum(DATASET_FORMATS),
  /** sha256 of the file's bytes. */
  digest: z.string().min(1),
  sizeBytes: z.number().nonnegative(),
  rows: z.int().nonnegative(),
  labelledPerTask: z.record(z.string(), z.number()),
  classCounts: z.record(z.string(), z.record(z.string(), z.number())),
  /**
   * `feedback`: labelled predictions Prepare wrote (`datasets.feedback`), each row carrying its
   * `predictionId`, which the split rule hashes instead of the row's index, so a row keeps its
   * split as feedback grows.
   */
  source: z.literal('feedback').optional(),
});
export type DatasetEntry = z.infer<typeof DatasetEntry>;

const BASE_MODEL_KINDS = ['text', 'tabular', 'features', 'onnx'] as const satisfies readonly Spec['baseModels'][number]['kind'][];

/**
 * A categorical column the tabular encoder hands the heads as one index feature (0 for a missing,
 * unseen or dropped level, 1 … levels − 1 for the kept ones) to look up in a learned table.
 */
export const CategoryEmbedding = z.object({
  column: z.string().min(1),
  /** The index feature's position in the encoder's output. */
  feature: z.int().nonnegative(),
  /** Rows of the table, row 0 (missing, unseen, dropped) included. */
  levels: z.int().positive(),
  dimension: z.int().positive(),
});
export type CategoryEmbedding = z.infer<typeof CategoryEmbedding>;

/** A base-model candidate fitted on the train split and stored as one ONNX file. */
export const EncoderEntry = z.object({
  /** `e0`, `e1`, … in the order of `spec.baseModels`. */
  id: z.string().min(1),
  kind: z.enum(BASE_MODEL_KINDS),
  uri: z.string().min(1),
  sha256: z.string().min(1),
  dimension: z.int().positive(),
  summary: z.record(z.string(), z.unknown()),
  /** Tabular encoders with embedded categorical columns: where their index features lie (absent before embeddings existed). */
  categoryEmbeddings: z.array(CategoryEmbedding).optional(),
});
export type EncoderEntry = z.infer<typeof EncoderEntry>;

/**
 * A spec as parseSpec resolved it (defaults filled, one base model made a list). The fields every
 * later stage leans on are checked; the rest is taken as parseSpec wrote it, because parsing a
 * resolved spec again would resolve its defaults a second time and could change a stored run.
 */
const resolvedSpecShape = z.looseObject({
  project: z.string().min(1),
  baseModels: z.array(z.looseObject({ kind: z.enum(BASE_MODEL_KINDS) })).min(1),
  tasks: z.array(z.looseObject({ name: z.string().min(1), type: z.enum(TASK_TYPES), metric: z.string().min(1), weight: z.number(), label: z.string() })).min(1),
  datasets: z.looseObject({ train: z.string().min(1) }),
  model: z.looseObject({ architectures: z.array(z.string()).min(1) }),
  training: z.looseObject({}),
  tuning: z.looseObject({}),
  deploy: z.looseObject({}),
  monitor: monitorSchema,
});
export const ResolvedSpec = z.custom<Spec>((value) => resolvedSpecShape.safeParse(value).success, {
  error: (issue) => {
    const problems = resolvedSpecShape.safeParse(issue.input).error?.issues ?? [];
    return `not a resolved spec (${problems.map((p) => `${p.path.join('.') || '(spec)'}: ${p.message}`).join('; ')})`;
  },
});

/**
 * What Prepare hands every later stage: the parsed spec with its defaults, the datasets with
 * their digests, the split rule and the fitted encoders. Written once to `runs/<runId>/manifest.json`
 * and never rewritten with different bytes (a retried Prepare writes the same manifest).
 */
export const RunManifest = z.object({
  manifestVersion: z.literal(1),
  runId: z.string().min(1),
  project: z.string().min(1),
  specUri: z.string().min(1),
  specDigest: z.string().min(1),
  spec: ResolvedSpec,
  datasets: z.array(DatasetEntry),
  /** Rows of the train dataset go to the roles not given as their own dataset, hashed by row index. */
  split: splitSchema,
  encoders: z.array(EncoderEntry),
  /** Content digest of everything the feature shards depend on (datasets, split, labels, encoders). */
  featuresDigest: z.string().min(1),
});
export type RunManifest = z.infer<typeof RunManifest>;
