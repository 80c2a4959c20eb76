/**
 * Embedding throughput of the built-in encoders in ONNX Runtime (CPU), in rows per second at
 * batch sizes 1, 64 and 1024, beside a plain-JavaScript computation of the same embedding measured
 * in the same run (the baseline the ratio is against). Run: `npx tsx bench/embed.ts`.
 * The last line printed is one JSON object with every figure.
 *
 * A second section measures the sparse text shards: the 5k-document × 20k-vocabulary set of
 * `bench/textSet.ts` written as sparse TF-IDF rows (what Embed writes) and as the dense rows × 20k
 * matrix it replaced, with the size ratio beside its goal (≥ 10× smaller).
 */
import { pathToFileURL } from 'node:url';
import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { mulberry32 } from '#lib/domain/random/index.ts';
import { fitEncoder, fitTabularStats, fitTextVocabulary, loadEncoder, ngramsOf, textTokens, type Encoder } from '#lib/domain/encoders/index.ts';
import { ShardWriter } from '#lib/domain/shards/index.ts';
import type { BaseModelSpec, TabularBaseModelSpec, TextBaseModelSpec } from '#lib/domain/spec/index.ts';
import { wordOf } from '#lib/domain/synth/index.ts';
import { loadTextSet, TEXT_SET, TEXT_SHARD_TASKS, textLabelColumns } from './textSet.ts';

export const BATCH_SIZES = [1, 64, 1024] as const;

export interface EmbedBenchRow {
  encoder: 'text' | 'tabular' | 'features';
  dimension: number;
  /** Rows per second through ONNX Runtime, by batch size. */
  rowsPerSecond: Record<string, number>;
  /** Rows per second of the plain-JavaScript baseline (one pass over all rows). */
  baselineRowsPerSecond: number;
  /** ORT at batch 1024 over the JavaScript baseline. */
  speedupAtLargestBatch: number;
}

const WORDS = Array.from({ length: 3000 }, (_, i) => wordOf(i));

function syntheticRows(count: number, seed: number): ValidatedRow[] {
  const rand = mulberry32(seed);
  return Array.from({ length: count }, () => {
    // Zipf-like word choice so the vocabulary has frequent and rare terms, as real text does.
    const text = Array.from({ length: 12 + Math.floor(rand() * 30) }, () => WORDS[Math.floor(WORDS.length * rand() ** 3)]).join(' ');
    return {
      input: {
        text,
        a: rand() < 0.1 ? null : rand() * 100,
        b: rand() * 5 - 2,
        c: rand() < 0.05 ? null : Math.round(rand() * 1000),
        city: `city${Math.floor(rand() ** 2 * 40)}`,
        plan: ['free', 'pro', 'team', 'enterprise'][Math.floor(rand() * 4)],
        vec: Array.from({ length: 128 }, () => rand() * 2 - 1),
      },
      labels: {},
    };
  });
}

async function timeIt(run: () => Promise<void> | void, minMs = 300): Promise<number> {
  await run();
  let runs = 0;
  const start = performance.now();
  do {
    await run();
    runs += 1;
  } while (performance.now() - start < minMs);
  return (performance.now() - start) / runs;
}

async function ortRowsPerSecond(encoder: Encoder, rows: ValidatedRow[], batchSize: number): Promise<number> {
  const count = batchSize === 1 ? 512 : rows.length;
  const ms = await timeIt(async () => {
    for (let start = 0; start < count; start += batchSize) await encoder.encode(rows.slice(start, Math.min(count, start + batchSize)));
  });
  return (count / ms) * 1000;
}

function textBaseline(spec: TextBaseModelSpec, vocabulary: { terms: string[]; idf: Float64Array }) {
  const column = new Map(vocabulary.terms.map((term, j) => [term, j]));
  const dim = vocabulary.terms.length;
  return (rows: ValidatedRow[]) => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((row, i) => {
      const v = out.subarray(i * dim, (i + 1) * dim);
      for (const gram of ngramsOf(textTokens(row.input[spec.field] as string, { lowercase: spec.lowercase }), spec.ngramRange)) {
        const j = column.get(gram);
        if (j !== undefined) v[j] += vocabulary.idf[j];
      }
      let norm = 0;
      for (let j = 0; j < dim; j += 1) norm += v[j] * v[j];
      if (norm > 0) for (let j = 0, s = 1 / Math.sqrt(norm); j < dim; j += 1) v[j] *= s;
    });
    return out;
  };
}

function tabularBaseline(stats: Awaited<ReturnType<typeof fitTabularStats>>, dim: number) {
  const categories = stats.categorical.map((c) => new Map(c.categories.map((name, k) => [name, k])));
  return (rows: ValidatedRow[]) => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((row, i) => {
      let o = i * dim;
      const missing: number[] = [];
      for (const s of stats.numeric) {
        const value = row.input[s.column];
        out[o++] = typeof value === 'number' ? (value - s.mean) / s.std : 0;
        if (s.indicator) missing.push(typeof value === 'number' ? 0 : 1);
      }
      for (const m of missing) out[o++] = m;
      stats.categorical.forEach((s, c) => {
        const k = categories[c].get(row.input[s.column] as string);
        if (k !== undefined) out[o + k] = 1;
        o += s.categories.length;
      });
    });
    return out;
  };
}

export async function benchEmbed(options: { rows?: number } = {}): Promise<EmbedBenchRow[]> {
  const rows = syntheticRows(options.rows ?? 4096, 17);
  const source = async function* () {
    yield* rows;
  };
  const textSpec: TextBaseModelSpec = { kind: 'text', field: 'text', ngramRange: [1, 2], vocabularySize: 20000, minDocumentFrequency: 2, lowercase: true };
  const tabularSpec: TabularBaseModelSpec = { kind: 'tabular', numeric: ['a', 'b', 'c'], categorical: ['city', 'plan'], maxCategories: 50 };
  const featuresSpec: BaseModelSpec = { kind: 'features', field: 'vec', dimension: 128 };

  const vocabulary = await fitTextVocabulary(textSpec, source);
  const stats = await fitTabularStats(tabularSpec, source);
  const cases = [
    { name: 'text' as const, spec: textSpec as BaseModelSpec, baseline: textBaseline(textSpec, vocabulary) },
    { name: 'tabular' as const, spec: tabularSpec as BaseModelSpec, baseline: undefined as undefined | ((rows: ValidatedRow[]) => Float32Array) },
    {
      name: 'features' as const,
      spec: featuresSpec,
      baseline: (batch: ValidatedRow[]) => {
        const out = new Float32Array(batch.length * 128);
        batch.forEach((row, i) => out.set(row.input.vec as number[], i * 128));
        return out;
      },
    },
  ];

  const results: EmbedBenchRow[] = [];
  for (const c of cases) {
    const fitted = await fitEncoder(c.spec, source);
    const baseline = c.baseline ?? tabularBaseline(stats, fitted.dimension);
    const encoder = await loadEncoder(fitted.model, { intraOpNumThreads: 1 });
    const rowsPerSecond: Record<string, number> = {};
    for (const batchSize of BATCH_SIZES) rowsPerSecond[String(batchSize)] = await ortRowsPerSecond(encoder, rows, batchSize);
    await encoder.release();
    const baselineRowsPerSecond = (rows.length / (await timeIt(() => void baseline(rows)))) * 1000;
    results.push({
      encoder: c.name,
      dimension: fitted.dimension,
      rowsPerSecond,
      baselineRowsPerSecond,
      speedupAtLargestBatch: rowsPerSecond[String(BATCH_SIZES.at(-1))] / baselineRowsPerSecond,
    });
  }
  return results;
}

function printTable(results: EmbedBenchRow[]): void {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const header = ['encoder', 'dim', ...BATCH_SIZES.map((b) => `ORT batch ${b}`), 'plain JS', 'ORT 1024 / JS'];
  const lines = results.map((r) => [
    r.encoder,
    String(r.dimension),
    ...BATCH_SIZES.map((b) => `${fmt(r.rowsPerSecond[String(b)])} rows/s`),
    `${fmt(r.baselineRowsPerSecond)} rows/s`,
    `${r.speedupAtLargestBatch.toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  for (const line of [header, widths.map((w) => '-'.repeat(w)), ...lines]) console.log(line.map((cell, i) => cell.padStart(widths[i])).join('  '));
}

export interface SparseShardFigures {
  documents: number;
  dimension: number;
  meanNonzerosPerRow: number;
  sparse: { sizeBytes: number; rowsPerSecond: number };
  dense: { sizeBytes: number; rowsPerSecond: number };
  /** Dense bytes ÷ sparse bytes. */
  ratio: number;
  goal: { ratio: number; met: boolean };
}

/** Writes the text set's rows as a sparse shard (JavaScript TF-IDF) and as a dense one (the ONNX graph's rows), counting bytes and time. */
export async function benchSparseShards(): Promise<SparseShardFigures> {
  const set = await loadTextSet();
  const batchRows = 512;
  const write = async (layout: 'sparse' | 'dense') => {
    const writer = new ShardWriter({ dim: set.encoder.dimension, layout, tasks: TEXT_SHARD_TASKS, encoderDigest: 'bench' });
    writer.output!.resume();
    let nonzeros = 0;
    const start = performance.now();
    for (let from = 0; from < set.rows.length; from += batchRows) {
      const rows = set.rows.slice(from, from + batchRows);
      const { labels, masks } = textLabelColumns(rows);
      if (layout === 'sparse') {
        const sparse = set.encoder.encodeSparse(rows);
        nonzeros += sparse.reduce((n, r) => n + r.indices.length, 0);
        await writer.writeRows({ rows: rows.length, features: new Float32Array(0), sparse, labels, masks });
      } else {
        await writer.writeRows({ rows: rows.length, features: await set.encoder.encode(rows), labels, masks });
      }
    }
    const summary = await writer.finish();
    return { sizeBytes: summary.sizeBytes, rowsPerSecond: set.rows.length / ((performance.now() - start) / 1000), nonzeros };
  };
  const sparse = await write('sparse');
  const dense = await write('dense');
  await set.encoder.release();
  const ratio = dense.sizeBytes / sparse.sizeBytes;
  return {
    documents: set.rows.length,
    dimension: set.encoder.dimension,
    meanNonzerosPerRow: sparse.nonzeros / set.rows.length,
    sparse: { sizeBytes: sparse.sizeBytes, rowsPerSecond: sparse.rowsPerSecond },
    dense: { sizeBytes: dense.sizeBytes, rowsPerSecond: dense.rowsPerSecond },
    ratio,
    goal: { ratio: 10, met: ratio >= 10 },
  };
}

function printSparseShards(f: SparseShardFigures): void {
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  console.log(
    `\nsparse text shards: ${f.documents} generated documents (${TEXT_SET.tokens.join('–')} tokens, Zipf over ${TEXT_SET.vocabulary} words), TF-IDF dimension ${f.dimension}, ${f.meanNonzerosPerRow.toFixed(0)} nonzeros a row`,
  );
  console.log(`  sparse shard (indices + values, JS TF-IDF):   ${mb(f.sparse.sizeBytes).padStart(9)}  ${Math.round(f.sparse.rowsPerSecond)} rows/s`);
  console.log(`  dense shard (rows × ${f.dimension} float32, ORT graph): ${mb(f.dense.sizeBytes).padStart(9)}  ${Math.round(f.dense.rowsPerSecond)} rows/s`);
  console.log(`  dense / sparse: ${f.ratio.toFixed(1)}×; goal ≥ ${f.goal.ratio}× smaller: ${f.goal.met ? 'met' : 'not met'}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const results = await benchEmbed();
  printTable(results);
  const sparseShards = await benchSparseShards();
  printSparseShards(sparseShards);
  console.log(JSON.stringify({ bench: 'embed', unit: 'rows/s', threads: 1, results, sparseShards }));
}
