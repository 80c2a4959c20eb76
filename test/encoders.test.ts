import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  EncoderError,
  encodeRows,
  fitEncoder,
  fitTextVocabulary,
  loadEncoder,
  textTokenizerModel,
  textTokens,
  TEXT_PAD_TOKEN,
} from '#lib/domain/encoders/index.ts';
import type { FeaturesBaseModelSpec, TabularBaseModelSpec, TextBaseModelSpec } from '#lib/domain/spec/index.ts';
import { denseFeatures } from '#lib/domain/shards/index.ts';
import { generateTextCorpus } from '#lib/domain/synth/index.ts';
import { expectClose } from './helpers/expectClose.ts';
import { rowSource as source, rowsOf } from './helpers/trainRows.ts';

const textSpec = (over: Partial<TextBaseModelSpec> = {}): TextBaseModelSpec => ({
  kind: 'text',
  field: 'text',
  ngramRange: [1, 2],
  vocabularySize: 20000,
  minDocumentFrequency: 1,
  lowercase: true,
  ...over,
});

const CORPUS = [
  'The quick brown fox jumps over the lazy dog',
  'the lazy dog sleeps; the QUICK fox runs',
  'Brown dogs and brown foxes: 2 quick 2 lazy',
  'İstanbul and the KELVIN \u212Aelvin sign, Straße café',
  'fox fox fox dog',
  'a b c d e f g',
  'quick-brown fox... (lazy) dog!',
  'Nothing in common here except the dog',
];

/** An independent TF-IDF: its own tokenizer, df, vocabulary choice, idf and L2. */
function referenceTfidf(train: string[], test: string[], spec: TextBaseModelSpec): { terms: string[]; vectors: number[][] } {
  const tokenize = (text: string) =>
    (spec.lowercase
      ? text
          .replace(/\u0130/g, 'i')
          .toLowerCase()
          .match(/[a-z0-9]+/g)
      : text.match(/[A-Za-z0-9]+/g)) ?? [];
  const grams = (text: string) => {
    const tokens = tokenize(text);
    const out: string[] = [];
    for (let n = spec.ngramRange[0]; n <= spec.ngramRange[1]; n++) for (let i = 0; i + n <= tokens.length; i++) out.push(tokens.slice(i, i + n).join(' '));
    return out;
  };
  const df: Record<string, number> = {};
  for (const text of train) for (const gram of new Set(grams(text))) df[gram] = (df[gram] ?? 0) + 1;
  const terms = Object.keys(df)
    .filter((t) => df[t] >= spec.minDocumentFrequency)
    .sort((a, b) => df[b] - df[a] || (a < b ? -1 : 1))
    .slice(0, spec.vocabularySize);
  const idf = terms.map((t) => Math.log((1 + train.length) / (1 + df[t])) + 1);
  const vectors = test.map((text) => {
    const counts = new Map<string, number>();
    for (const gram of grams(text)) counts.set(gram, (counts.get(gram) ?? 0) + 1);
    const v = terms.map((t, j) => (counts.get(t) ?? 0) * idf[j]);
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return norm > 0 ? v.map((x) => x / norm) : v;
  });
  return { terms, vectors };
}

describe('text encoder', () => {
  it.each([{ lowercase: true }, { lowercase: false }])('tokenizes in JavaScript exactly as the graph does (lowercase $lowercase)', async ({ lowercase }) => {
    const texts = [...CORPUS, '!!!', '', 'ÀÉÎ àéî Ω ω', 'tab\tnew\nline  spaces', 'x'.repeat(300), 'MiXeD CaSe 123abc ABC123', 'émoji 😀 in the middle 😀end'];
    const session = await ort.InferenceSession.create(textTokenizerModel({ lowercase }));
    const { tokens } = await session.run({ text: new ort.Tensor('string', texts, [texts.length]) });
    const width = tokens.dims[1];
    const graphTokens = texts.map((_, i) => (tokens.data as string[]).slice(i * width, (i + 1) * width).filter((t) => t !== TEXT_PAD_TOKEN));
    expect(graphTokens).toEqual(texts.map((text) => textTokens(text, { lowercase })));
    await session.release();
  });

  it.each([
    { name: 'unigrams and bigrams', spec: textSpec() },
    { name: 'bigrams only', spec: textSpec({ ngramRange: [2, 2] }) },
    { name: 'uni- to trigrams, case kept', spec: textSpec({ ngramRange: [1, 3], lowercase: false }) },
    { name: 'a capped vocabulary with a document-frequency floor', spec: textSpec({ vocabularySize: 7, minDocumentFrequency: 2 }) },
  ])('matches an independent TF-IDF for $name', async ({ spec }) => {
    const train = rowsOf(CORPUS.map((text) => ({ text })));
    const testTexts = [...CORPUS, 'a brand new text about a lazy fox', '!!! ???', 'dog'];
    const fitted = await fitEncoder(spec, source(train));
    const reference = referenceTfidf(CORPUS, testTexts, spec);
    const vocabulary = await fitTextVocabulary(spec, source(train));

    expect(vocabulary.terms).toEqual(reference.terms);
    expect(fitted.dimension).toBe(reference.terms.length);
    expect(fitted.summary.vocabularySize).toBe(reference.terms.length);
    expect(fitted.inputs).toEqual([{ name: 'text', dtype: 'string', shape: ['batch'], role: 'text', fields: ['text'] }]);
    const embedded = await encodeRows(fitted, rowsOf(testTexts.map((text) => ({ text }))));
    expectClose(embedded, reference.vectors.flat());
  });

  it.each([
    { name: 'unigrams and bigrams', spec: textSpec({ minDocumentFrequency: 2, vocabularySize: 3000 }) },
    { name: 'uni- to trigrams, case kept', spec: textSpec({ ngramRange: [1, 3], lowercase: false, vocabularySize: 3000 }) },
  ])('computes sparse rows in JavaScript equal to the graph dense output ($name)', async ({ spec }) => {
    const corpus = generateTextCorpus({ documents: 200, vocabulary: 2000, tokens: [20, 120], seed: 7 }).records.map((r) => String(r.text));
    const train = rowsOf(corpus.map((text) => ({ text })));
    const testTexts = [...corpus.slice(0, 50), ...CORPUS, 'w1 W1 w1; w2-w3', '', '!!!', 'İ w0 İw0'];
    const rows = rowsOf(testTexts.map((text) => ({ text })));
    const encoder = await loadEncoder((await fitEncoder(spec, source(train))).model);

    const sparse = encoder.encodeSparse(rows);
    const dense = await encoder.encode(rows);

    expect(encoder.sparse).toBe(true);
    expect(sparse.every((row) => row.indices.every((index, k) => k === 0 || index > row.indices[k - 1]))).toBe(true);
    expect(sparse.some((row) => row.indices.length > 5)).toBe(true);
    const batch = { rows: rows.length, dim: encoder.dimension, features: new Float32Array(0), sparse, labels: {}, masks: {}, rowIndex: new Int32Array(0) };
    expectClose(denseFeatures(batch), dense, 1e-6);
    await encoder.release();
  });

  it('embeds a batch in which no row has a known token as zero rows', async () => {
    const fitted = await fitEncoder(textSpec(), source(rowsOf(CORPUS.map((text) => ({ text })))));
    const embedded = await encodeRows(fitted, rowsOf([{ text: '!!!' }, { text: '...' }]));
    expect(embedded).toEqual(new Float32Array(2 * fitted.dimension));
  });

  it('refuses to fit when no n-gram reaches the document-frequency floor, naming the setting', async () => {
    const rows = rowsOf([{ text: 'alpha' }, { text: 'beta' }]);
    await expect(fitEncoder(textSpec({ minDocumentFrequency: 2 }), source(rows))).rejects.toThrow(/minDocumentFrequency = 2/);
  });

  it('reports a row without its text field by name', async () => {
    const fitted = await fitEncoder(textSpec(), source(rowsOf(CORPUS.map((text) => ({ text })))));
    await expect(encodeRows(fitted, rowsOf([{ body: 'x' }]))).rejects.toThrow(/row input "text" is missing/);
  });
});

const tabularSpec = (over: Partial<TabularBaseModelSpec> = {}): TabularBaseModelSpec => ({
  kind: 'tabular',
  numeric: ['age', 'income', 'constant'],
  categorical: ['city', 'plan'],
  maxCategories: 2,
  // Capped one-hot: under the default `auto`, columns over the cap would be embedded (test/categoryEmbeddings.test.ts).
  categoricalEncoding: 'onehot',
  ...over,
});

const TABULAR_TRAIN = [
  { age: 30, income: 1000, constant: 5, city: 'paris', plan: 'free' },
  { age: 40, income: null, constant: 5, city: 'rome', plan: 'pro' },
  { age: 50, income: 3000, constant: 5, city: 'paris', plan: null },
  { age: null, income: 2000, constant: 5, city: 'oslo', plan: 'free' },
  { age: 20, income: 4000, constant: 5, city: 'rome', plan: 'free' },
  { age: 35, income: 1500, constant: 5, city: 'paris', plan: 'team' },
];

/** Scaling, imputation, indicators and one-hot computed independently of the encoder. */
function referenceTabular(train: Record<string, unknown>[], test: Record<string, unknown>[], spec: TabularBaseModelSpec): number[][] {
  const numeric = spec.numeric.map((column) => {
    const values = train.map((r) => r[column]).filter((v): v is number => typeof v === 'number');
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
    return { column, mean, std: variance > 0 ? Math.sqrt(variance) : 1, indicator: values.length < train.length };
  });
  const categorical = spec.categorical.map((column) => {
    const counts = new Map<string, number>();
    for (const r of train) if (typeof r[column] === 'string') counts.set(r[column] as string, (counts.get(r[column] as string) ?? 0) + 1);
    const top = [...counts.keys()].sort((a, b) => counts.get(b)! - counts.get(a)! || (a < b ? -1 : 1)).slice(0, spec.maxCategories);
    return { column, top };
  });
  return test.map((r) => [
    ...numeric.map(({ column, mean, std }) => (typeof r[column] === 'number' ? ((r[column] as number) - mean) / std : 0)),
    ...numeric.filter((n) => n.indicator).map(({ column }) => (typeof r[column] === 'number' ? 0 : 1)),
    ...categorical.flatMap(({ column, top }) => top.map((value) => (r[column] === value ? 1 : 0))),
  ]);
}

describe('tabular encoder', () => {
  it('standardizes, imputes with the train mean, flags missing values and one-hot encodes the top categories', async () => {
    const spec = tabularSpec();
    const test = [
      ...TABULAR_TRAIN,
      { age: 99, income: null, constant: 7, city: 'tokyo', plan: 'pro' },
      { age: null, income: null, constant: null, city: null, plan: null },
    ];
    const fitted = await fitEncoder(spec, source(rowsOf(TABULAR_TRAIN)));
    const expected = referenceTabular(TABULAR_TRAIN, test, spec);

    // 3 scaled + 2 indicators (age, income) + 2 cities + 2 plans
    expect(fitted.dimension).toBe(9);
    expect(fitted.inputs.map((i) => [i.name, i.dtype, i.shape, i.fields])).toEqual([
      ['numeric', 'float32', ['batch', 3], ['age', 'income', 'constant']],
      ['categorical', 'string', ['batch', 2], ['city', 'plan']],
    ]);
    expect(fitted.summary.categorical).toEqual([
      { column: 'city', encoding: 'onehot', categories: ['paris', 'rome'], distinct: 3, missing: 0 },
      { column: 'plan', encoding: 'onehot', categories: ['free', 'pro'], distinct: 3, missing: 1 },
    ]);
    expectClose(await encodeRows(fitted, rowsOf(test)), expected.flat());
  });

  it.each([
    { name: 'numeric columns only', spec: tabularSpec({ categorical: [] }) },
    { name: 'categorical columns only', spec: tabularSpec({ numeric: [], maxCategories: 50 }) },
  ])('works with $name', async ({ spec }) => {
    const fitted = await fitEncoder(spec, source(rowsOf(TABULAR_TRAIN)));
    const expected = referenceTabular(TABULAR_TRAIN, TABULAR_TRAIN, spec);
    expect(fitted.inputs).toHaveLength(1);
    expectClose(await encodeRows(fitted, rowsOf(TABULAR_TRAIN)), expected.flat());
  });

  it('names a numeric column that holds text', async () => {
    await expect(fitEncoder(tabularSpec(), source(rowsOf([{ age: 'old', income: 1, constant: 1, city: 'x', plan: 'y' }])))).rejects.toThrow(/"age" is "old"/);
  });
});

describe('features encoder', () => {
  const spec: FeaturesBaseModelSpec = { kind: 'features', field: 'vec', dimension: 3 };

  it('passes vectors through unchanged', async () => {
    const rows = rowsOf([{ vec: [1, 2, 3] }, { vec: [-0.5, 0, 1e-3] }]);
    const fitted = await fitEncoder(spec, source([]));
    expect(fitted.dimension).toBe(3);
    expect(await encodeRows(fitted, rows)).toEqual(Float32Array.of(1, 2, 3, -0.5, 0, 1e-3));
  });

  it('refuses a vector of another dimension, in JavaScript and in the graph', async () => {
    const fitted = await fitEncoder(spec, source([]));
    const error = await encodeRows(fitted, rowsOf([{ vec: [1, 2] }])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EncoderError);
    expect((error as EncoderError).message).toMatch(/"vec" is 2 values, expected 3 values/);
    const session = await ort.InferenceSession.create(fitted.model);
    await expect(session.run({ features: new ort.Tensor('float32', new Float32Array(4), [1, 4]) })).rejects.toThrow(/dimension/i);
    await session.release();
  });

  it('loads with explicit execution providers and reports its descriptor', async () => {
    const fitted = await fitEncoder(spec, source([]));
    const encoder = await loadEncoder(fitted.model, { executionProviders: ['cpu'] });
    expect([encoder.kind, encoder.dimension, encoder.inputs]).toEqual(['features', 3, fitted.inputs]);
    expect(await encoder.encode([])).toEqual(new Float32Array(0));
    await encoder.release();
  });
});
