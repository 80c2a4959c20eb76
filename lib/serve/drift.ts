import { randomUUID } from 'node:crypto';
import * as z from 'zod';
import { createRng, hashSeed } from '#lib/domain/random/index.ts';
import type { ArtifactStore } from '#lib/adapters/store/index.ts';
import { ServeError } from './errors.ts';

/**
 * Input drift as the population stability index of a few fixed random projections of the
 * embedding: cheap to sample at serving time (K numbers per record, not the embedding), blind to
 * no direction in particular, and comparable with the holdout rows of the feature shards, which
 * hold the same encoder's embeddings.
 *
 * - Features: every encoder output feature but the category level indices (see `driftProjection`).
 * - Directions: K unit vectors drawn from a generator seeded by the number of features projected
 *   only, so infer and the monitor derive the same ones without sharing state.
 * - Reference (`models/<project>/<version>/reference.json`): per projection, the holdout's decile
 *   edges and the share of holdout rows in each bin, and the features it left out.
 * - Recent inputs: infer samples records, projects them, and writes small JSON batches under
 *   `monitor/<project>/<yyyy-mm-dd-hh>/v<version>/<uuid>.json`.
 */
export const DRIFT_PROJECTIONS = 8;
export const DRIFT_BINS = 10;
/** Keeps an empty bin from making the index infinite (a common choice for PSI). */
const PSI_EPSILON = 1e-4;

/** The seed of the directions over `dimension` projected features (the encoder's width less any left out). */
export function driftSeed(dimension: number): number {
  return hashSeed('agentflow-drift', dimension);
}

/** K × dimension unit vectors, row-major, over `dimension` projected features. */
export function projectionDirections(dimension: number, count = DRIFT_PROJECTIONS): Float64Array {
  const rng = createRng(driftSeed(dimension));
  const directions = new Float64Array(count * dimension);
  for (let k = 0; k < count; k += 1) {
    let norm = 0;
    for (let i = 0; i < dimension; i += 1) {
      const value = rng.normal();
      directions[k * dimension + i] = value;
      norm += value * value;
    }
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < dimension; i += 1) directions[k * dimension + i] *= scale;
  }
  return directions;
}

/**
 * Which of an encoder's output features drift projects. A tabular encoder hands each embedded
 * categorical column to the heads as one feature holding its level's index (0 … up to 10 000):
 * as a coordinate it would dominate every projection, so the score would follow that one
 * column's level mix and numeric drift would go unseen, and its magnitude means nothing (level
 * 900 is not "more" than level 3). Those features are left out, on both sides, and the
 * directions are seeded by how many features remain, so a version with embedded columns is
 * projected exactly as a version whose encoder had only its other features.
 */
export interface DriftLayout {
  /** The encoder's output width. */
  dimension: number;
  /** Features left out (the level indices); none when absent. */
  excludedFeatures?: readonly number[];
}

export interface DriftProjection {
  dimension: number;
  /** Ascending. */
  excludedFeatures: number[];
  /** The features projected, ascending; undefined when it is every feature. */
  features: Int32Array | undefined;
  /** How many features are projected (dimension − excluded). */
  width: number;
  seed: number;
  /** K × width unit vectors, row-major. */
  directions: Float64Array;
}

/** The index features of an encoder as the card or the run manifest lists them (`categoryEmbeddings`), ascending. */
export function levelIndexFeatures(encoder: { categoryEmbeddings?: readonly { feature: number }[] | undefined }): number[] {
  return (encoder.categoryEmbeddings ?? []).map((e) => e.feature).sort((a, b) => a - b);
}

/** The projection of a layout; a left-out feature outside the encoder's output or listed twice is an error. */
export function driftProjection(layout: DriftLayout): DriftProjection {
  const { dimension } = layout;
  const excludedFeatures = [...(layout.excludedFeatures ?? [])].sort((a, b) => a - b);
  excludedFeatures.forEach((feature, i) => {
    if (!Number.isInteger(feature) || feature < 0 || feature >= dimension || feature === excludedFeatures[i - 1]) {
      throw new ServeError(
        `drift cannot leave out feature ${feature}: the left-out features [${excludedFeatures.join(', ')}] must be distinct positions 0 … ${dimension - 1} of the encoder's output; the card's encoder.categoryEmbeddings is damaged, re-export the version`,
        { code: 'MODEL_INVALID', context: { dimension, excludedFeatures } },
      );
    }
  });
  const width = dimension - excludedFeatures.length;
  const skipped = new Set(excludedFeatures);
  const features = excludedFeatures.length === 0 ? undefined : Int32Array.from({ length: dimension }, (_, i) => i).filter((i) => !skipped.has(i));
  return { dimension, excludedFeatures, features, width, seed: driftSeed(width), directions: projectionDirections(width) };
}

/** `8`, or `8-7` with feature 7 left out: what tells two layouts apart. */
function layoutKey(dimension: number, excludedFeatures: readonly number[]): string {
  return excludedFeatures.length === 0 ? String(dimension) : `${dimension}-${excludedFeatures.join(',')}`;
}

/** Whether two lists of left-out features are the same (absent is none). */
export function sameExcludedFeatures(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  const left = [...(a ?? [])].sort((x, y) => x - y);
  const right = [...(b ?? [])].sort((x, y) => x - y);
  return left.length === right.length && left.every((feature, i) => feature === right[i]);
}

/** Projections of `rows` embeddings (rows × projection.dimension, row-major): rows × K. */
export function projectRows(embeddings: Float32Array, projection: DriftProjection, rowIndices?: readonly number[]): number[][] {
  const { dimension, width, directions, features } = projection;
  const count = DRIFT_PROJECTIONS;
  const rows = rowIndices ?? Array.from({ length: embeddings.length / dimension }, (_, i) => i);
  return rows.map((row) => {
    const out = new Array<number>(count);
    const offset = row * dimension;
    for (let k = 0; k < count; k += 1) {
      let sum = 0;
      if (features) for (let i = 0; i < width; i += 1) sum += directions[k * width + i] * embeddings[offset + features[i]];
      else for (let i = 0; i < width; i += 1) sum += directions[k * width + i] * embeddings[offset + i];
      out[k] = sum;
    }
    return out;
  });
}

export interface DriftReference {
  referenceVersion: 1;
  /** The encoder's output width. */
  dimension: number;
  /** The features left out of the projections (see `driftProjection`); absent when none (and in references written before there could be any). */
  excludedFeatures?: number[];
  seed: number;
  /** Holdout rows it was built from. */
  rows: number;
  /** Per projection, the bins' inner edges (DRIFT_BINS − 1 values, ascending). */
  edges: number[][];
  /** Per projection, the share of reference rows in each bin. */
  proportions: number[][];
}

/** A stored reference read back (`models/<p>/<v>/reference.json`). */
export const DriftReferenceSchema = z.strictObject({
  referenceVersion: z.literal(1),
  dimension: z.int().positive(),
  excludedFeatures: z.array(z.int().nonnegative()).optional(),
  seed: z.number(),
  rows: z.int().positive(),
  edges: z.array(z.array(z.number())),
  proportions: z.array(z.array(z.number())),
}) satisfies z.ZodType<DriftReference>;

/** The reference histograms of holdout rows projected by `projection` (rows × K). */
export function buildReference(projected: readonly number[][], projection: DriftProjection): DriftReference {
  const count = projected[0]?.length ?? DRIFT_PROJECTIONS;
  const edges: number[][] = [];
  const proportions: number[][] = [];
  for (let k = 0; k < count; k += 1) {
    const values = projected.map((row) => row[k]).sort((a, b) => a - b);
    const inner = Array.from({ length: DRIFT_BINS - 1 }, (_, b) => values[Math.min(values.length - 1, Math.floor(((b + 1) * values.length) / DRIFT_BINS))]);
    edges.push(inner);
    proportions.push(histogram(values, inner).map((c) => c / values.length));
  }
  const { dimension, excludedFeatures, seed } = projection;
  // Written only when there are some, so a reference without any is the same document as before left-out features existed.
  return { referenceVersion: 1, dimension, ...(excludedFeatures.length > 0 ? { excludedFeatures } : {}), seed, rows: projected.length, edges, proportions };
}

/** Holdout rows a reference is built from, at most: enough for stable deciles of each projection. */
export const REFERENCE_ROWS = 20_000;

/** Fewer holdout rows than this make no reference worth comparing live inputs against. */
export const MIN_REFERENCE_ROWS = DRIFT_PROJECTIONS * 10;

/**
 * The drift reference of up to `maxRows` holdout embeddings (chunks of rows × dimension), leaving
 * out `excludedFeatures`; no reference when there are fewer than MIN_REFERENCE_ROWS, or no feature
 * is left to project. `rows` says how many were projected.
 */
export async function referenceFromEmbeddings(
  chunks: AsyncIterable<Float32Array>,
  options: DriftLayout & { maxRows: number },
): Promise<{ reference?: DriftReference; rows: number }> {
  const { maxRows } = options;
  const projection = driftProjection(options);
  if (projection.width === 0) return { rows: 0 };
  const projected: number[][] = [];
  for await (const chunk of chunks) {
    const rows = Math.min(chunk.length / projection.dimension, maxRows - projected.length);
    projected.push(
      ...projectRows(
        chunk,
        projection,
        Array.from({ length: rows }, (_, i) => i),
      ),
    );
    if (projected.length >= maxRows) break;
  }
  if (projected.length < MIN_REFERENCE_ROWS) return { rows: projected.length };
  return { reference: buildReference(projected, projection), rows: projected.length };
}

/** Counts per bin; bin b holds edges[b−1] ≤ v < edges[b]. */
export function histogram(values: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const value of values) {
    let lo = 0;
    let hi = edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (value < edges[mid]) hi = mid;
      else lo = mid + 1;
    }
    counts[lo] += 1;
  }
  return counts;
}

/** Σ (a − e) · ln(a / e) over bins, shares floored at a small ε. */
export function populationStabilityIndex(expected: readonly number[], actual: readonly number[]): number {
  let psi = 0;
  for (let b = 0; b < expected.length; b += 1) {
    const e = Math.max(expected[b], PSI_EPSILON);
    const a = Math.max(actual[b], PSI_EPSILON);
    psi += (a - e) * Math.log(a / e);
  }
  return psi;
}

/** PSI of recent projected rows against the reference, per projection. */
export function driftOf(reference: DriftReference, projected: readonly number[][]): number[] {
  return reference.edges.map((edges, k) => {
    const counts = histogram(
      projected.map((row) => row[k]),
      edges,
    );
    return populationStabilityIndex(
      reference.proportions[k],
      counts.map((c) => c / projected.length),
    );
  });
}

/** `2025-03-01-14`: the hour folder of a sample batch (UTC). */
export function hourKey(timeMs: number): string {
  return new Date(timeMs).toISOString().slice(0, 13).replace('T', '-');
}

export function samplePrefix(project: string, hour: string, version: number): string {
  return `monitor/${project}/${hour}/v${version}/`;
}

export const SampleBatch = z.object({
  project: z.string(),
  version: z.int().positive(),
  /** The encoder's output width. */
  dimension: z.int().positive(),
  /** The features left out of the projections; absent when none. */
  excludedFeatures: z.array(z.int().nonnegative()).optional(),
  seed: z.number(),
  /** rows × K projections. */
  projections: z.array(z.array(z.number())),
});
export type SampleBatch = z.infer<typeof SampleBatch>;

export interface DriftSamplerOptions {
  store: ArtifactStore;
  /** Share of served records sampled, in [0, 1]. Default 0.05. */
  sampleRate?: number;
  /** A batch is written when it holds this many records… Default 256. */
  batchRecords?: number;
  /** …or when its oldest record is this old (checked on each request). Default 60 s. */
  flushAfterMs?: number;
  /** At most this many records per version per hour per process: bounds what the monitor reads. Default 5000. */
  maxRecordsPerHour?: number;
  clock?: () => number;
  random?: () => number;
  onError?: (error: unknown, context: Record<string, unknown>) => void;
}

interface SampleBuffer {
  project: string;
  version: number;
  projection: DriftProjection;
  hour: string;
  startedMs: number;
  rows: number[][];
}

/**
 * Collects projected samples in memory and writes them as small S3 objects off the request path.
 * A lost batch (a frozen or recycled container) only thins the sample; it never biases it.
 */
export class DriftSampler {
  readonly #store: ArtifactStore;
  readonly #rate: number;
  readonly #batchRecords: number;
  readonly #flushAfterMs: number;
  readonly #maxPerHour: number;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #onError: NonNullable<DriftSamplerOptions['onError']>;
  readonly #buffers = new Map<string, SampleBuffer>();
  readonly #sampledPerHour = new Map<string, number>();
  /** Per layout (`layoutKey`), shared by the versions that have it; undefined for a layout that cannot be projected. */
  readonly #projections = new Map<string, DriftProjection | undefined>();
  readonly #pending = new Set<Promise<void>>();

  constructor(options: DriftSamplerOptions) {
    this.#store = options.store;
    this.#rate = options.sampleRate ?? 0.05;
    this.#batchRecords = options.batchRecords ?? 256;
    this.#flushAfterMs = options.flushAfterMs ?? 60_000;
    this.#maxPerHour = options.maxRecordsPerHour ?? 5000;
    this.#clock = options.clock ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#onError = options.onError ?? (() => {});
  }

  /**
   * Which of a request's `rows` records to sample, decided before the model runs, so the
   * embedding output is fetched only for requests that have a pick (one in twenty at one record
   * and the default rate; fetching it costs a tensor copy per request). Also writes any batch
   * that has waited long enough. Never throws, never waits.
   */
  pick(project: string, version: number, rows: number): number[] | undefined {
    const now = this.#clock();
    const hour = this.#hourOf(now);
    for (const [key, buffer] of this.#buffers) {
      if (buffer.rows.length >= this.#batchRecords || now - buffer.startedMs >= this.#flushAfterMs || buffer.hour !== hour) {
        this.#buffers.delete(key);
        this.#write(buffer);
      }
    }
    if (this.#rate <= 0) return undefined;
    let picked: number[] | undefined;
    for (let row = 0; row < rows; row += 1) {
      if (this.#random() < this.#rate) (picked ??= []).push(row);
    }
    if (!picked) return undefined;
    const quotaKey = `${project}/${version}/${hour}`;
    const used = this.#sampledPerHour.get(quotaKey) ?? 0;
    if (used + picked.length > this.#maxPerHour) picked = picked.slice(0, Math.max(0, this.#maxPerHour - used));
    if (picked.length === 0) return undefined;
    if (this.#sampledPerHour.size > 1000) this.#sampledPerHour.clear();
    this.#sampledPerHour.set(quotaKey, used + picked.length);
    return picked;
  }

  /**
   * Buffers the projections of the `picked` rows of a request's embeddings (rows × dimension),
   * leaving out the encoder's category level indices (the card's `encoder.categoryEmbeddings`).
   * Never throws, never waits.
   */
  offer(
    project: string,
    version: number,
    embeddings: Float32Array,
    encoder: { dimension: number; categoryEmbeddings?: readonly { feature: number }[] | undefined },
    picked: readonly number[],
  ): void {
    if (picked.length === 0 || encoder.dimension <= 0) return;
    const excludedFeatures = levelIndexFeatures(encoder);
    const layout = layoutKey(encoder.dimension, excludedFeatures);
    const projection = this.#projections.has(layout)
      ? this.#projections.get(layout)
      : this.#projectionOf(layout, { dimension: encoder.dimension, excludedFeatures });
    if (!projection) return;
    const now = this.#clock();
    const hour = this.#hourOf(now);
    const key = `${project}/${version}`;
    let buffer = this.#buffers.get(key);
    if (buffer && buffer.hour !== hour) {
      this.#write(buffer);
      buffer = undefined;
    }
    if (!buffer) {
      buffer = { project, version, projection, hour, startedMs: now, rows: [] };
      this.#buffers.set(key, buffer);
    }
    buffer.rows.push(...projectRows(embeddings, projection, picked));
    if (buffer.rows.length >= this.#batchRecords) {
      this.#buffers.delete(key);
      this.#write(buffer);
    }
  }

  /** A layout's projection, remembered; undefined (nothing to sample, said once) when the card's layout is damaged or every feature is a level index. */
  #projectionOf(key: string, layout: DriftLayout): DriftProjection | undefined {
    let projection: DriftProjection | undefined;
    try {
      projection = driftProjection(layout);
      if (projection.width === 0) projection = undefined;
    } catch (error) {
      this.#onError(error, { layout: key });
    }
    this.#projections.set(key, projection);
    return projection;
  }

  #hour: { index: number; key: string } = { index: Number.NaN, key: '' };

  /** `hourKey(now)`, formatted once an hour rather than on every request. */
  #hourOf(now: number): string {
    const index = Math.floor(now / 3_600_000);
    if (index !== this.#hour.index) this.#hour = { index, key: hourKey(now) };
    return this.#hour.key;
  }

  /** Writes every buffered sample and waits for all writes (tests, shutdown). */
  async flush(): Promise<void> {
    for (const [key, buffer] of this.#buffers) {
      this.#buffers.delete(key);
      this.#write(buffer);
    }
    await Promise.all([...this.#pending]);
  }

  #write(buffer: SampleBuffer): void {
    if (buffer.rows.length === 0) return;
    const batch: SampleBatch = {
      project: buffer.project,
      version: buffer.version,
      dimension: buffer.projection.dimension,
      ...(buffer.projection.excludedFeatures.length > 0 ? { excludedFeatures: buffer.projection.excludedFeatures } : {}),
      seed: buffer.projection.seed,
      projections: buffer.rows,
    };
    const key = `${samplePrefix(buffer.project, buffer.hour, buffer.version)}${randomUUID()}.json`;
    const pending: Promise<void> = this.#store
      .putBytes(key, Buffer.from(JSON.stringify(batch)), { contentType: 'application/json' })
      .then(
        () => undefined,
        (error: unknown) => this.#onError(error, { key, records: buffer.rows.length }),
      )
      .finally(() => this.#pending.delete(pending));
    this.#pending.add(pending);
  }
}
