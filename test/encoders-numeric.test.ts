import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  encodeRows,
  encoderDescriptor,
  encoderFeeds,
  fitEncoder,
  mergeEncoderAndHeads,
  numericEncodingCandidates,
  quantileBoundaries,
  QUANTILES_SUMMARY_KEY,
  type FittedEncoder,
  type NumericColumnStats,
} from '#lib/domain/encoders/index.ts';
import { parseSpec, type NumericEncoding, type TabularBaseModelSpec } from '#lib/domain/spec/index.ts';
import { mulberry32 } from '#lib/domain/random/index.ts';
import { exportHeads, parityDifference, trainingForward } from '#lib/domain/train/index.ts';
import { rowSource as source, rowsOf, trainOnRows } from './helpers/trainRows.ts';

/*
 * Skewed like the public tables that motivated the encodings: `gain` is zero for most rows with a
 * long tail, `hours` is spread out and sometimes missing, `plan` is categorical.
 */
function skewedRows(count: number, seed: number): { inputs: Record<string, unknown>[]; labels: Record<string, number | null>[] } {
  const random = mulberry32(seed);
  const inputs: Record<string, unknown>[] = [];
  const labels: Record<string, number | null>[] = [];
  for (let i = 0; i < count; i += 1) {
    const gain = random() < 0.7 ? 0 : Math.round(Math.exp(random() * 10));
    const hours = random() < 0.1 ? null : Math.round(20 + random() * 40);
    const plan = ['free', 'pro', 'team'][Math.floor(random() * 3)];
    inputs.push({ gain, hours, plan });
    labels.push({ rich: gain > 3000 || (hours ?? 40) > 55 ? 1 : 0 });
  }
  return { inputs, labels };
}

const tabular = (over: Partial<TabularBaseModelSpec> = {}): TabularBaseModelSpec => ({
  kind: 'tabular',
  numeric: ['gain', 'hours'],
  categorical: ['plan'],
  maxCategories: 10,
  bins: 8,
  ...over,
});

/** The numeric columns' fitted facts from an encoder's summary, boundaries and levels put back in. */
function numericStats(fitted: FittedEncoder): NumericColumnStats[] {
  const quantiles = fitted.summary[QUANTILES_SUMMARY_KEY] as Record<string, { boundaries: number[]; levels: number[] }>;
  return (fitted.summary.numeric as NumericColumnStats[]).map((s) => ({ ...s, ...quantiles[s.column] }));
}

/** The definitions, from the fitted boundaries, in float64: what the graph must compute. */
function referenceNumeric(stats: NumericColumnStats, value: number | null): number[] {
  const x = value ?? stats.fill;
  if (stats.encoding === 'standard') return [(x - stats.mean) / stats.std];
  const b = stats.boundaries!;
  const fractions = b.slice(0, -1).map((lower, t) => Math.min(1, Math.max(0, (x - lower) / (b[t + 1] - lower))));
  if (stats.encoding === 'ple') return fractions;
  const levels = stats.levels!;
  return [fractions.reduce((rank, f, t) => rank + f * (levels[t + 1] - levels[t]), levels[0])];
}

function referenceRow(stats: readonly NumericColumnStats[], input: Record<string, unknown>): number[] {
  const blocks = (['standard', 'quantile', 'ple'] as const).flatMap((encoding) =>
    stats.filter((s) => s.encoding === encoding).flatMap((s) => referenceNumeric(s, input[s.column] as number | null)),
  );
  const indicators = stats.filter((s) => s.indicator).map((s) => (input[s.column] === null ? 1 : 0));
  return [...blocks, ...indicators];
}

const train = skewedRows(600, 3);
/* Past both ends of the train range, exactly on a boundary, and missing. */
const probes = [{ gain: -5, hours: 10 }, { gain: 0, hours: 40 }, { gain: 1e9, hours: 99 }, { gain: null, hours: null }, ...train.inputs.slice(0, 40)];

describe('quantileBoundaries', () => {
  it('interpolates quantiles and merges a repeated value into one boundary at its mid-rank level', () => {
    // 0 at levels 0, 0.25, 0.5 → one boundary at level 0.25.
    const fitted = quantileBoundaries(Float64Array.of(0, 0, 0, 0, 0, 0, 10, 20, 30), 4);
    expect(fitted.boundaries).toEqual([0, 10, 30]);
    expect(fitted.levels).toEqual([0.25, 0.75, 1]);
    expect(fitted.median).toBe(0);
  });

  it('gives a constant column one bin so it still has a feature', () => {
    expect(quantileBoundaries(Float64Array.of(5, 5, 5), 16)).toEqual({ boundaries: [5, 6], levels: [0.5, 1], median: 5 });
  });

  it('merges boundaries too close for a float32 inverse width, so no bin divides by infinity', () => {
    const tiny = 1e-40;
    const fitted = quantileBoundaries(Float64Array.of(0, tiny, 1, 2), 3);
    for (let t = 0; t + 1 < fitted.boundaries.length; t += 1)
      expect(Number.isFinite(Math.fround(1 / (fitted.boundaries[t + 1] - fitted.boundaries[t])))).toBe(true);
  });
});

describe('numeric encodings in the tabular encoder graph', () => {
  it.each<{ encoding: NumericEncoding; width: number }>([
    { encoding: 'standard', width: 1 },
    { encoding: 'quantile', width: 1 },
    { encoding: 'ple', width: 8 },
  ])(
    '$encoding: the graph computes the definition from the fitted boundaries, with a neutral fill and an indicator for missing values',
    async ({ encoding }) => {
      const fitted = await fitEncoder(tabular({ numericEncoding: encoding, categorical: [] }), source(rowsOf(train.inputs)));
      const stats = numericStats(fitted);

      const encoded = await encodeRows(fitted, rowsOf(probes));

      expect(stats.map((s) => [s.column, s.encoding, s.indicator])).toEqual([
        ['gain', encoding, false],
        ['hours', encoding, true],
      ]);
      const expected = probes.flatMap((input) => referenceRow(stats, input));
      expect(encoded.length).toBe(expected.length);
      expect(parityDifference(encoded, expected)).toBeLessThan(1e-5);
      if (encoding !== 'standard') {
        expect(Math.min(...encoded)).toBeGreaterThanOrEqual(0);
        expect(Math.max(...encoded)).toBeLessThanOrEqual(1);
        // The missing row: both columns at the median's encoding, then the hours indicator set.
        const missing = [...encoded.subarray(3 * fitted.dimension, 4 * fitted.dimension)];
        expect(missing.at(-1)).toBe(1);
      }
    },
  );

  it('mixes encodings per column in standard, quantile, ple blocks, and merges repeated zeros of a skewed column', async () => {
    const fitted = await fitEncoder(tabular({ numericEncoding: 'quantile', columnEncodings: { hours: 'ple' } }), source(rowsOf(train.inputs)));
    const [gain, hours] = numericStats(fitted);

    expect([gain.encoding, hours.encoding]).toEqual(['quantile', 'ple']);
    // About 70% of the gains are 0: the first boundaries collapse into one, at a level near 0.35.
    expect(gain.boundaries![0]).toBe(0);
    expect(gain.levels![0]).toBeGreaterThan(0.25);
    expect(gain.boundaries!.length).toBeLessThan(9);
    // 1 quantile + (hours bins) + 1 indicator + 3 plans
    expect(fitted.dimension).toBe(1 + hours.boundaries!.length - 1 + 1 + 3);
    const encoded = await encodeRows(fitted, rowsOf(probes));
    const numericWidth = fitted.dimension - 3;
    const numericPart = probes.flatMap((_, r) => [...encoded.subarray(r * fitted.dimension, r * fitted.dimension + numericWidth)]);
    expect(
      parityDifference(
        numericPart,
        probes.flatMap((input) => referenceRow([gain, hours], input)),
      ),
    ).toBeLessThan(1e-5);
  });

  it('auto stands for one candidate per encoding, keeping the per-column overrides', () => {
    const candidates = numericEncodingCandidates(tabular({ numericEncoding: 'auto', columnEncodings: { gain: 'ple' } }));
    expect(candidates.map((c) => [c.numericEncoding, c.columnEncodings])).toEqual([
      ['standard', { gain: 'ple' }],
      ['quantile', { gain: 'ple' }],
      ['ple', { gain: 'ple' }],
    ]);
    expect(numericEncodingCandidates(tabular())).toHaveLength(1);
  });

  it('refuses to fit auto directly, saying to fit its candidates', async () => {
    await expect(fitEncoder(tabular({ numericEncoding: 'auto' }), source(rowsOf(train.inputs)))).rejects.toThrow(/numericEncodingCandidates/);
  });
});

describe('the exported merged model with each numeric encoding', () => {
  const spec = parseSpec({
    project: 'numeric',
    baseModel: { kind: 'tabular', numeric: ['gain', 'hours'], categorical: ['plan'] },
    datasets: { train: 'train.jsonl' },
    tasks: [{ name: 'rich', type: 'binary' }],
    model: { hidden: [16] },
    training: { epochs: 30, batchSize: 64, learningRate: 1e-2, seed: 5, earlyStoppingPatience: 0 },
  });
  const validation = skewedRows(200, 8);

  it.each<NumericEncoding>(['standard', 'quantile', 'ple'])(
    '%s: raw records through the merged file give what the trained heads give on the training-time encoding',
    async (encoding) => {
      const fitted = await fitEncoder(tabular({ numericEncoding: encoding }), source(rowsOf(train.inputs)));
      const { encoder, result: trained } = await trainOnRows({ spec, fitted, lambda: { rich: 1 }, train, validation });
      const merged = mergeEncoderAndHeads(fitted.model, exportHeads({ spec, encoder, weights: trained.weights }), { featureInput: 'features' });

      const records = rowsOf(probes.map((p) => ({ ...p, plan: 'pro' })));
      const expected = await trainingForward({ spec, weights: trained.weights, batch: { features: await encodeRows(fitted, records), rows: records.length } });
      const session = await ort.InferenceSession.create(merged);
      const actual = await session.run(encoderFeeds(encoderDescriptor(merged), records));
      await session.release();

      expect(trained.metrics.rich.auc).toBeGreaterThan(0.7);
      for (const [name, want] of Object.entries(expected)) {
        expect(parityDifference(actual[name].data as Float32Array, want), name).toBeLessThan(1e-5);
      }
    },
  );
});
