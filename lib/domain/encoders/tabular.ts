import { Graph, attr, type Value } from '#lib/domain/graph/index.ts';
import { mulberry32 } from '#lib/domain/random/index.ts';
import type { CategoryEmbedding } from '#lib/domain/run/index.ts';
import { NUMERIC_ENCODINGS, type CategoricalEncoding, type NumericEncoding, type TabularBaseModelSpec } from '#lib/domain/spec/index.ts';
import { EncoderError } from '#lib/domain/encoders/errors.ts';
import { finishEncoder, fitFailed, type RowSource } from '#lib/domain/encoders/common.ts';
import type { EncoderInput, FittedEncoder } from '#lib/domain/encoders/types.ts';

/** The tabular summary's key for each binned column's fitted `{ boundaries, levels }`. */
export const QUANTILES_SUMMARY_KEY = 'quantiles';

/** Quantile bins per column when the spec sets none. */
export const DEFAULT_BINS = 16;
/*
 * Values kept per column to fit quantile boundaries: every value up to this many, a uniform
 * reservoir sample beyond, so fitting holds a bounded amount whatever the train split's size.
 */
const QUANTILE_SAMPLE = 100_000;
/** Levels an embedded categorical column keeps when the spec sets no `maxEmbeddingLevels`. */
const DEFAULT_MAX_EMBEDDING_LEVELS = 10_000;
/*
 * A level seen once in train gets a table row that one row trains, which the model memorizes;
 * such levels share row 0 with missing and unseen values instead, which they then teach.
 */
const MIN_EMBEDDING_LEVEL_COUNT = 2;

/**
 * An embedded column's table width when the spec sets none: the rule of thumb fastai fitted to
 * its tabular benchmarks (1.6·levels^0.56), capped at 16 because the heads' first layer is small.
 */
export function defaultEmbeddingDimension(levels: number): number {
  return Math.max(1, Math.min(16, Math.round(1.6 * levels ** 0.56)));
}

export interface NumericColumnStats {
  column: string;
  encoding: NumericEncoding;
  /** Train mean of the present values (0 when none is present). */
  mean: number;
  /** Population standard deviation; 1 when it is 0 or undefined, so the column is only centred. */
  std: number;
  present: number;
  missing: number;
  /** A 0/1 missing-indicator column follows the encoded values when the train split had missing values. */
  indicator: boolean;
  /** What a missing value is encoded as: the mean for `standard`, the train median otherwise. */
  fill: number;
  /** `quantile` and `ple`: distinct fitted quantiles, ascending (at least two), and the quantile level of each. */
  boundaries?: number[];
  levels?: number[];
}

export interface CategoricalColumnStats {
  column: string;
  encoding: CategoricalEncoding;
  /**
   * Most frequent first (ties by name). `onehot`: the one-hot columns; other values, and missing
   * ones, are all zeros. `embedding`: the kept levels, index 1 … n; other values, and missing ones, are 0.
   */
  categories: string[];
  /** `embedding` only: the table's width. */
  dimension?: number;
  /** Distinct values seen in training, before the `maxCategories` cut. */
  distinct: number;
  missing: number;
}

export interface TabularStats {
  rows: number;
  numeric: NumericColumnStats[];
  categorical: CategoricalColumnStats[];
}

/** One pass over the rows: Welford mean/variance per numeric column, value counts per categorical column. */
export async function fitTabularStats(spec: TabularBaseModelSpec, rows: RowSource): Promise<TabularStats> {
  const encodings = numericEncodings(spec);
  const numeric = spec.numeric.map((column) => ({
    n: 0,
    mean: 0,
    m2: 0,
    missing: 0,
    sample: encodings[column] === 'standard' ? undefined : new Reservoir(QUANTILE_SAMPLE),
  }));
  const categorical = spec.categorical.map(() => ({ counts: new Map<string, number>(), missing: 0 }));
  let count = 0;
  for await (const row of rows()) {
    count += 1;
    spec.numeric.forEach((column, j) => {
      const value = row.input[column];
      const s = numeric[j];
      if (value === null || value === undefined) {
        s.missing += 1;
        return;
      }
      if (typeof value !== 'number' || !Number.isFinite(value)) throw badValue(column, value, 'a finite number or null');
      s.n += 1;
      s.sample?.add(value);
      const delta = value - s.mean;
      s.mean += delta / s.n;
      s.m2 += delta * (value - s.mean);
    });
    spec.categorical.forEach((column, j) => {
      const value = row.input[column];
      const s = categorical[j];
      if (value === null || value === undefined) {
        s.missing += 1;
        return;
      }
      if (typeof value !== 'string') throw badValue(column, value, 'a category name (string) or null');
      s.counts.set(value, (s.counts.get(value) ?? 0) + 1);
    });
  }
  if (count === 0) throw fitFailed('tabular encoder: the train split has no rows to fit scalers on; check the train dataset and the split fractions');
  return {
    rows: count,
    numeric: spec.numeric.map((column, j): NumericColumnStats => {
      const s = numeric[j];
      const std = s.n > 0 ? Math.sqrt(s.m2 / s.n) : 0;
      const common = { column, encoding: encodings[column], mean: s.mean, std: std > 0 ? std : 1, present: s.n, missing: s.missing, indicator: s.missing > 0 };
      if (!s.sample) return { ...common, fill: s.mean };
      const fitted = quantileBoundaries(s.sample.sorted(), spec.bins ?? DEFAULT_BINS);
      return { ...common, fill: fitted.median, boundaries: fitted.boundaries, levels: fitted.levels };
    }),
    categorical: spec.categorical.map((column, j): CategoricalColumnStats => {
      const s = categorical[j];
      const ranked = [...s.counts].sort(([a, ca], [b, cb]) => cb - ca || (a < b ? -1 : a > b ? 1 : 0));
      const common = { column, distinct: s.counts.size, missing: s.missing };
      if (categoricalEncodingOf(spec, column, s.counts.size) === 'onehot') {
        return { ...common, encoding: 'onehot', categories: ranked.slice(0, spec.maxCategories).map(([name]) => name) };
      }
      const categories = ranked
        .filter(([, count]) => count >= MIN_EMBEDDING_LEVEL_COUNT)
        .slice(0, spec.maxEmbeddingLevels ?? DEFAULT_MAX_EMBEDDING_LEVELS)
        .map(([name]) => name);
      return { ...common, encoding: 'embedding', categories, dimension: spec.embeddingDimension ?? defaultEmbeddingDimension(categories.length + 1) };
    }),
  };
}

/**
 * A categorical column's encoding: its `categoricalEncodings` entry, else `categoricalEncoding`;
 * `auto` (the default) embeds a column with more distinct train values than `maxCategories`.
 */
function categoricalEncodingOf(spec: TabularBaseModelSpec, column: string, distinct: number): CategoricalEncoding {
  const chosen = spec.categoricalEncodings?.[column] ?? spec.categoricalEncoding ?? 'auto';
  if (chosen !== 'auto') return chosen;
  return distinct > spec.maxCategories ? 'embedding' : 'onehot';
}

/** Features a numeric column becomes (its missing indicator aside): one, or one per bin for `ple`. */
function numericWidth(stats: NumericColumnStats): number {
  return stats.encoding === 'ple' ? stats.boundaries!.length - 1 : 1;
}

/** The standard, quantile and ple blocks, in that order, each in column order; empty blocks left out. */
function encodeNumeric(g: Graph, x: Value, isMissing: Value, stats: readonly NumericColumnStats[]): Value[] {
  const n = stats.length;
  const fill = g.initializer('numeric.fill', { data: Float32Array.from(stats, (s) => s.fill), shape: [n] });
  const filled = g.where(isMissing, fill, x, { name: 'numeric.impute' });
  const columnsOf = (encoding: NumericEncoding) => stats.flatMap((s, j) => (s.encoding === encoding ? [j] : []));
  const parts: Value[] = [];

  const standard = columnsOf('standard');
  if (standard.length > 0) {
    g.scope('numeric.standard', () => {
      const picked = standard.map((j) => stats[j]);
      const mean = g.initializer('numeric.standard.mean', { data: Float32Array.from(picked, (s) => s.mean), shape: [picked.length] });
      const invStd = g.initializer('numeric.standard.inv_std', { data: Float32Array.from(picked, (s) => 1 / s.std), shape: [picked.length] });
      // All columns standard (the default) reads the input as it is, as the encoder always has.
      const columns =
        standard.length === n
          ? filled
          : g.gather(filled, g.constant(BigInt64Array.from(standard, BigInt), { dtype: 'int64', name: 'columns' }), { axis: 1, name: 'pick' });
      parts.push(g.mul(g.sub(columns, mean), invStd, { name: 'scale' }));
    });
  }

  const quantile = columnsOf('quantile');
  if (quantile.length > 0) {
    g.scope('numeric.quantile', () => {
      // rank = level₀ + Σ_t clip((x − b_t) / (b_{t+1} − b_t), 0, 1) · (level_{t+1} − level_t): a matmul of the bin fractions.
      const bins = binsOf(quantile, stats);
      const fractions = binFractions(g, filled, bins, 'numeric.quantile');
      const steps = new Float32Array(bins.length * quantile.length);
      bins.forEach((bin, b) => {
        const levels = stats[bin.column].levels!;
        steps[b * quantile.length + quantile.indexOf(bin.column)] = levels[bin.index + 1] - levels[bin.index];
      });
      const weights = g.initializer('numeric.quantile.level_steps', { data: steps, shape: [bins.length, quantile.length] });
      const first = g.initializer('numeric.quantile.first_level', { data: Float32Array.from(quantile, (j) => stats[j].levels![0]), shape: [quantile.length] });
      parts.push(g.add(g.matmul(fractions, weights), first, { name: 'rank' }));
    });
  }

  const ple = columnsOf('ple');
  if (ple.length > 0) parts.push(g.scope('numeric.ple', () => binFractions(g, filled, binsOf(ple, stats), 'numeric.ple')));
  return parts;
}

interface Bin {
  /** The numeric input column. */
  column: number;
  /** The bin's place among its column's: between boundaries `index` and `index + 1`. */
  index: number;
  lower: number;
  width: number;
}

function binsOf(columns: readonly number[], stats: readonly NumericColumnStats[]): Bin[] {
  return columns.flatMap((column) => {
    const b = stats[column].boundaries!;
    return b.slice(0, -1).map((lower, index) => ({ column, index, lower, width: b[index + 1] - lower }));
  });
}

/** `[batch, bins]`: per bin, clip((x − lower) / width, 0, 1) of its column. */
function binFractions(g: Graph, filled: Value, bins: readonly Bin[], prefix: string): Value {
  const columns = g.constant(
    BigInt64Array.from(bins, (bin) => BigInt(bin.column)),
    { dtype: 'int64', name: 'bin_columns' },
  );
  const spread = g.gather(filled, columns, { axis: 1, name: 'spread' });
  const lower = g.initializer(`${prefix}.bin_lower`, { data: Float32Array.from(bins, (bin) => bin.lower), shape: [bins.length] });
  const invWidth = g.initializer(`${prefix}.bin_inv_width`, { data: Float32Array.from(bins, (bin) => 1 / bin.width), shape: [bins.length] });
  const position = g.mul(g.sub(spread, lower), invWidth, { name: 'position' });
  return g.min(g.max(position, 0, { name: 'above_lower' }), 1, { name: 'fraction' });
}

/** Each numeric column's encoding: its `columnEncodings` entry, else `numericEncoding` (default `standard`). */
export function numericEncodings(spec: TabularBaseModelSpec): Record<string, NumericEncoding> {
  const fallback = spec.numericEncoding ?? 'standard';
  if (fallback === 'auto') {
    throw fitFailed(
      'tabular encoder: numericEncoding "auto" is a choice for the agent to screen; fit one candidate of numericEncodingCandidates(spec) at a time',
      {},
    );
  }
  return Object.fromEntries(spec.numeric.map((column) => [column, spec.columnEncodings?.[column] ?? fallback]));
}

/**
 * The tabular base models to fit for a spec: itself, or with `numericEncoding: "auto"` one per
 * encoding (standard, quantile, ple; per-column overrides kept), for screening to choose from.
 */
export function numericEncodingCandidates(spec: TabularBaseModelSpec): TabularBaseModelSpec[] {
  if (spec.numericEncoding !== 'auto') return [spec];
  return NUMERIC_ENCODINGS.map((numericEncoding) => ({ ...spec, numericEncoding }));
}

/**
 * `bins + 1` quantiles of the sorted values (linear interpolation between order statistics), made
 * distinct: a repeated value, such as the zero of a mostly-zero column, becomes one boundary whose
 * level is the middle of the levels it stood for (its mid-rank). A single distinct value gets a
 * second boundary one above it, so every column has at least one bin.
 */
export function quantileBoundaries(sorted: Float64Array, bins: number): { boundaries: number[]; levels: number[]; median: number } {
  if (sorted.length === 0) return { boundaries: [0, 1], levels: [0, 1], median: 0 };
  const at = (q: number) => {
    const position = q * (sorted.length - 1);
    const low = Math.floor(position);
    const high = Math.min(low + 1, sorted.length - 1);
    return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
  };
  const boundaries: number[] = [];
  const levels: number[] = [];
  let run: number[] = [];
  for (let k = 0; k <= bins; k += 1) {
    // Rounded to float32, as the graph holds them, so equal-looking boundaries compare equal there too.
    const value = Math.fround(at(k / bins));
    // Too close to the last for a float32 1 / width (subnormal gaps) counts as the same boundary.
    if (boundaries.length > 0 && !Number.isFinite(Math.fround(1 / (value - boundaries.at(-1)!)))) {
      run.push(k / bins);
    } else {
      if (run.length > 0) levels.push(run.reduce((sum, level) => sum + level, 0) / run.length);
      boundaries.push(value);
      run = [k / bins];
    }
  }
  levels.push(run.reduce((sum, level) => sum + level, 0) / run.length);
  if (boundaries.length === 1) {
    boundaries.push(boundaries[0] + 1);
    levels.push(1);
  }
  return { boundaries, levels, median: at(0.5) };
}

/** A uniform sample of at most `capacity` values (Vitter's algorithm R), seeded so fits repeat. */
class Reservoir {
  readonly #values: Float64Array;
  readonly #random = mulberry32(0x9e3779b9);
  #seen = 0;

  constructor(capacity: number) {
    this.#values = new Float64Array(capacity);
  }

  add(value: number): void {
    if (this.#seen < this.#values.length) this.#values[this.#seen] = value;
    else {
      const slot = Math.floor(this.#random() * (this.#seen + 1));
      if (slot < this.#values.length) this.#values[slot] = value;
    }
    this.#seen += 1;
  }

  sorted(): Float64Array {
    return this.#values.slice(0, Math.min(this.#seen, this.#values.length)).sort();
  }
}

function badValue(column: string, value: unknown, expected: string): EncoderError {
  return new EncoderError(`row input "${column}" is ${JSON.stringify(value)}, expected ${expected}; validate rows against the spec first`, {
    code: 'ENCODER_INPUT',
    context: { column },
  });
}

/**
 * Numeric columns: NaN (missing) → a neutral fill (the train mean for `standard`, the median
 * otherwise), then per column its encoding — `standard` (x − mean) / std; `quantile` the rank in
 * [0, 1], interpolated linearly between fitted boundaries; `ple` one feature per bin, 0 below it,
 * 1 above it and the fractional position inside — then a 0/1 missing indicator for each column
 * that had missing values in training. Features come in blocks: standard, quantile, ple,
 * indicators, one-hot, embedding indices. One-hot categorical columns: ai.onnx.ml LabelEncoder
 * (value → index, unknown → −1), compared against 0 … K−1, so an unseen or missing value is all zeros.
 * Embedded columns (see `categoricalEncodingOf`): one float feature each, a LabelEncoder's kept
 * level k → k + 1 and anything else → 0, which the heads look up in a learned table; their
 * positions are the fitted encoder's `categoryEmbeddings`.
 */
export async function fitTabularEncoder(spec: TabularBaseModelSpec, rows: RowSource): Promise<FittedEncoder> {
  const stats = await fitTabularStats(spec, rows);
  const g = new Graph({ name: 'tabular-encoder' });
  const inputs: EncoderInput[] = [];
  const parts: Value[] = [];

  if (stats.numeric.length > 0) {
    const n = stats.numeric.length;
    const input: EncoderInput = { name: 'numeric', dtype: 'float32', shape: ['batch', n], role: 'numeric', fields: stats.numeric.map((s) => s.column) };
    inputs.push(input);
    const x = g.input(input.name, 'float32', ['batch', n]);
    const [isMissing] = g.op('IsNaN', [x], { name: 'numeric.is_missing', outputs: [{ dtype: 'bool', shape: ['batch', n] }] });
    parts.push(...encodeNumeric(g, x, isMissing, stats.numeric));
    const withIndicator = stats.numeric.flatMap((s, j) => (s.indicator ? [j] : []));
    if (withIndicator.length > 0) {
      const columns = g.constant(
        BigInt64Array.from(withIndicator, (j) => BigInt(j)),
        { dtype: 'int64', name: 'numeric.indicator_columns' },
      );
      parts.push(g.gather(g.cast(isMissing, 'float32'), columns, { axis: 1, name: 'numeric.missing_indicator' }));
    }
  }

  const oneHot = stats.categorical.filter((s) => s.encoding === 'onehot' && s.categories.length > 0);
  const embedded = stats.categorical.filter((s) => s.encoding === 'embedding');
  if (stats.categorical.length > 0) {
    const n = stats.categorical.length;
    const input: EncoderInput = {
      name: 'categorical',
      dtype: 'string',
      shape: ['batch', n],
      role: 'categorical',
      fields: stats.categorical.map((s) => s.column),
    };
    inputs.push(input);
    const x = g.input(input.name, 'string', ['batch', n]);
    const indexParts: Value[] = [];
    stats.categorical.forEach((s, j) => {
      // A one-hot column with no value in training contributes no columns but stays an input column.
      if (s.encoding === 'onehot' && s.categories.length === 0) return;
      g.scope(`categorical.${j}`, () => {
        const column = g.gather(x, g.constant(BigInt64Array.of(BigInt(j)), { dtype: 'int64', shape: [], name: 'index' }), { axis: 1, name: 'column' });
        if (s.encoding === 'embedding') {
          // Kept level k (0-based) → k + 1; missing ('') and every other value → 0, the shared row.
          const [index] = g.op('LabelEncoder', [column], {
            name: 'level_index',
            domain: 'ai.onnx.ml',
            attributes: {
              keys_strings: attr.strings(s.categories),
              values_floats: attr.floats(s.categories.map((_, k) => k + 1)),
              default_float: attr.float(0),
            },
            outputs: [{ dtype: 'float32', shape: ['batch'] }],
          });
          indexParts.push(g.unsqueeze(index, { axes: [1] }));
          return;
        }
        const [index] = g.op('LabelEncoder', [column], {
          name: 'label_encoder',
          domain: 'ai.onnx.ml',
          attributes: {
            keys_strings: attr.strings(s.categories),
            values_int64s: attr.ints(s.categories.map((_, k) => k)),
            default_int64: attr.int(-1),
          },
          outputs: [{ dtype: 'int64', shape: ['batch'] }],
        });
        const range = g.constant(
          BigInt64Array.from(s.categories, (_, k) => BigInt(k)),
          { dtype: 'int64', name: 'range' },
        );
        const hot = g.equal(g.unsqueeze(index, { axes: [1] }), range, { name: 'one_hot' });
        parts.push(g.cast(hot, 'float32'));
      });
    });
    // The index features come last, after every other block, so the heads find them at fixed positions.
    parts.push(...indexParts);
  }

  const denseWidth =
    stats.numeric.reduce((sum, s) => sum + numericWidth(s), 0) +
    stats.numeric.filter((s) => s.indicator).length +
    oneHot.reduce((sum, s) => sum + s.categories.length, 0);
  const categoryEmbeddings: CategoryEmbedding[] = embedded.map((s, k) => ({
    column: s.column,
    feature: denseWidth + k,
    levels: s.categories.length + 1,
    dimension: s.dimension!,
  }));
  const dimension = denseWidth + embedded.length;
  if (dimension === 0) {
    throw fitFailed(
      `tabular encoder: no categorical column (${spec.categorical.join(', ')}) has a value in the ${stats.rows} train rows and there are no numeric columns; check the column names`,
      { categorical: spec.categorical },
    );
  }
  const embedding = parts.length === 1 ? g.identity(parts[0]) : g.concat(parts, { axis: 1, name: 'features' });
  const fitted = finishEncoder(
    g,
    embedding,
    { kind: 'tabular', dimension, inputs },
    {
      rows: stats.rows,
      numeric: stats.numeric.map(({ boundaries, levels: _levels, ...facts }) => (boundaries ? { ...facts, bins: boundaries.length - 1 } : facts)),
      numericEncodings: stats.numeric.map((s) => s.encoding),
      // Kept apart: up to 257 numbers a column, for the manifest, not for every summary's reader.
      [QUANTILES_SUMMARY_KEY]: Object.fromEntries(
        stats.numeric.flatMap((s) => (s.boundaries ? [[s.column, { boundaries: s.boundaries, levels: s.levels }]] : [])),
      ),
      categorical: stats.categorical.map(({ column, encoding, categories, distinct, missing }) => ({ column, encoding, categories, distinct, missing })),
      maxCategories: spec.maxCategories,
      ...(categoryEmbeddings.length > 0 ? { categoryEmbeddings } : {}),
    },
  );
  return categoryEmbeddings.length > 0 ? { ...fitted, categoryEmbeddings } : fitted;
}
