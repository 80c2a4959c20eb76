import type { DatasetFormat, Spec, SplitSpec } from '#lib/spec/index.ts';

export type DatasetRole = 'train' | 'validation' | 'holdout';

/** One input dataset as Prepare found it: where it is, its content digest and what it holds. */
export interface DatasetEntry {
  role: DatasetRole;
  uri: string;
  format: DatasetFormat;
  /** sha256 of the file's bytes. */
  digest: string;
  sizeBytes: number;
  rows: number;
  labelledPerTask: Record<string, number>;
  classCounts: Record<string, Record<string, number>>;
}

/** A base-model candidate fitted on the train split and stored as one ONNX file. */
export interface EncoderEntry {
  /** `e0`, `e1`, … in the order of `spec.baseModels`. */
  id: string;
  kind: Spec['baseModels'][number]['kind'];
  uri: string;
  sha256: string;
  dimension: number;
  summary: Record<string, unknown>;
}

/**
 * What Prepare hands every later stage: the parsed spec with its defaults, the datasets with
 * their digests, the split rule and the fitted encoders. Written once to `runs/<runId>/manifest.json`
 * and never rewritten with different bytes (a retried Prepare writes the same manifest).
 */
export interface RunManifest {
  manifestVersion: 1;
  runId: string;
  project: string;
  specUri: string;
  specDigest: string;
  spec: Spec;
  datasets: DatasetEntry[];
  /** Rows of the train dataset go to the roles not given as their own dataset, hashed by row index. */
  split: SplitSpec;
  encoders: EncoderEntry[];
  /** Content digest of everything the feature shards depend on (datasets, split, labels, encoders). */
  featuresDigest: string;
}
