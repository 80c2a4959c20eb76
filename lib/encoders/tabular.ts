import { Graph, attr, type Value } from '#lib/graph/index.ts';
import type { TabularBaseModelSpec } from '#lib/spec/index.ts';
import { EncoderError } from '#lib/encoders/errors.ts';
import { finishEncoder, fitFailed, type RowSource } from '#lib/encoders/common.ts';
import type { EncoderInput, FittedEncoder } from '#lib/encoders/types.ts';

export interface NumericColumnStats {
  column: string;
  /** Train mean of the present values (0 when none is present). */
  mean: number;
  /** Population standard deviation; 1 when it is 0 or undefined, so the column is only centred. */
  std: number;
  present: number;
  missing: number;
  /** A 0/1 missing-indicator column follows the scaled values when the train split had missing values. */
  indicator: boolean;
}

export interface CategoricalColumnStats {
  column: string;
  /** One-hot columns, most frequent first (ties by name); other values, and missing ones, are all zeros. */
  categories: string[];
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
  const numeric = spec.numeric.map(() => ({ n: 0, mean: 0, m2: 0, missing: 0 }));
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
    numeric: spec.numeric.map((column, j) => {
      const s = numeric[j];
      const std = s.n > 0 ? Math.sqrt(s.m2 / s.n) : 0;
      return { column, mean: s.mean, std: std > 0 ? std : 1, present: s.n, missing: s.missing, indicator: s.missing > 0 };
    }),
    categorical: spec.categorical.map((column, j) => {
      const s = categorical[j];
      const ranked = [...s.counts].sort(([a, ca], [b, cb]) => cb - ca || (a < b ? -1 : a > b ? 1 : 0));
      return { column, categories: ranked.slice(0, spec.maxCategories).map(([name]) => name), distinct: s.counts.size, missing: s.missing };
    }),
  };
}

function badValue(column: string, value: unknown, expected: string): EncoderError {
  return new EncoderError(`row input "${column}" is ${JSON.stringify(value)}, expected ${expected}; validate rows against the spec first`, {
    code: 'ENCODER_INPUT',
    context: { column },
  });
}

/**
 * Numeric columns: NaN (missing) → train mean, then (x − mean) / std, then a 0/1 missing indicator
 * for each column that had missing values in training. Categorical columns: ai.onnx.ml LabelEncoder
 * (value → index, unknown → −1), compared against 0 … K−1, so an unseen or missing value is all zeros.
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
    const mean = g.initializer('numeric.mean', { data: Float32Array.from(stats.numeric, (s) => s.mean), shape: [n] });
    const invStd = g.initializer('numeric.inv_std', { data: Float32Array.from(stats.numeric, (s) => 1 / s.std), shape: [n] });
    const [isMissing] = g.op('IsNaN', [x], { name: 'numeric.is_missing', outputs: [{ dtype: 'bool', shape: ['batch', n] }] });
    const imputed = g.where(isMissing, mean, x, { name: 'numeric.impute' });
    parts.push(g.mul(g.sub(imputed, mean), invStd, { name: 'numeric.scale' }));
    const withIndicator = stats.numeric.flatMap((s, j) => (s.indicator ? [j] : []));
    if (withIndicator.length > 0) {
      const columns = g.constant(BigInt64Array.from(withIndicator, (j) => BigInt(j)), { dtype: 'int64', name: 'numeric.indicator_columns' });
      parts.push(g.gather(g.cast(isMissing, 'float32'), columns, { axis: 1, name: 'numeric.missing_indicator' }));
    }
  }

  const oneHot = stats.categorical.filter((s) => s.categories.length > 0);
  if (stats.categorical.length > 0) {
    const n = stats.categorical.length;
    const input: EncoderInput = { name: 'categorical', dtype: 'string', shape: ['batch', n], role: 'categorical', fields: stats.categorical.map((s) => s.column) };
    inputs.push(input);
    const x = g.input(input.name, 'string', ['batch', n]);
    stats.categorical.forEach((s, j) => {
      // A column with no value in training contributes no one-hot columns but stays an input column.
      if (s.categories.length === 0) return;
      g.scope(`categorical.${j}`, () => {
        const column = g.gather(x, g.constant(BigInt64Array.of(BigInt(j)), { dtype: 'int64', shape: [], name: 'index' }), { axis: 1, name: 'column' });
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
        const range = g.constant(BigInt64Array.from(s.categories, (_, k) => BigInt(k)), { dtype: 'int64', name: 'range' });
        const hot = g.equal(g.unsqueeze(index, { axes: [1] }), range, { name: 'one_hot' });
        parts.push(g.cast(hot, 'float32'));
      });
    });
  }

  const dimension =
    stats.numeric.length + stats.numeric.filter((s) => s.indicator).length + oneHot.reduce((sum, s) => sum + s.categories.length, 0);
  if (dimension === 0) {
    throw fitFailed(
      `tabular encoder: no categorical column (${spec.categorical.join(', ')}) has a value in the ${stats.rows} train rows and there are no numeric columns; check the column names`,
      { categorical: spec.categorical },
    );
  }
  const embedding = parts.length === 1 ? g.identity(parts[0]) : g.concat(parts, { axis: 1, name: 'features' });
  return finishEncoder(
    g,
    embedding,
    { kind: 'tabular', dimension, inputs },
    {
      rows: stats.rows,
      numeric: stats.numeric,
      categorical: stats.categorical.map(({ column, categories, distinct, missing }) => ({ column, categories, distinct, missing })),
      maxCategories: spec.maxCategories,
    },
  );
}
