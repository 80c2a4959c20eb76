import { Graph, attr, type Value } from '#lib/domain/graph/index.ts';
import type { TextBaseModelSpec } from '#lib/domain/spec/index.ts';
import { finishEncoder, fitFailed, l2Normalize, textOf, type RowSource } from '#lib/domain/encoders/common.ts';
import type { EncoderInput, FittedEncoder } from '#lib/domain/encoders/types.ts';

/*
 * The graph's Tokenizer (ORT, RE2) and this module must cut text into the same tokens, or the
 * vocabulary fitted here would not match what the graph counts. Both keep ASCII letters and
 * digits only; everything else separates tokens.
 */
const TOKEN_PATTERN = { lowercase: '[a-z0-9]+', cased: '[A-Za-z0-9]+' } as const;
const TOKEN_REGEX = { lowercase: /[a-z0-9]+/g, cased: /[A-Za-z0-9]+/g } as const;
/** Written where a row has fewer tokens than the longest in its batch; never matches a token. */
const PAD_TOKEN = '#';

/**
 * Lowercases as ONNX StringNormalizer does under `C.UTF-8`: code point by code point (simple
 * case mapping). JavaScript's `toLowerCase` differs from that only for U+0130 (İ), which it turns
 * into "i" + U+0307; ORT gives "i". Other differences do not produce ASCII letters, so they cannot
 * change a token.
 */
export function lowercaseLikeOnnx(text: string): string {
  return (text.includes('\u0130') ? text.replaceAll('\u0130', 'i') : text).toLowerCase();
}

/** The tokens the text encoder's graph sees for a text. */
export function textTokens(text: string, options: { lowercase: boolean }): string[] {
  return options.lowercase ? (lowercaseLikeOnnx(text).match(TOKEN_REGEX.lowercase) ?? []) : (text.match(TOKEN_REGEX.cased) ?? []);
}

/** The n-grams of a token list for n in [low, high], each joined with one space. */
export function ngramsOf(tokens: readonly string[], range: readonly [number, number]): string[] {
  const grams: string[] = [];
  for (let n = range[0]; n <= range[1]; n += 1) {
    for (let i = 0; i + n <= tokens.length; i += 1) grams.push(n === 1 ? tokens[i] : tokens.slice(i, i + n).join(' '));
  }
  return grams;
}

export interface TextVocabulary {
  /** Output column → n-gram (tokens joined by one space). */
  terms: string[];
  /** Output column → idf = ln((1 + N) / (1 + df)) + 1. */
  idf: Float64Array;
  documentFrequency: Int32Array;
  documents: number;
  /** Distinct n-grams seen before the frequency cut and the size cap. */
  candidates: number;
}

/**
 * Text `[batch]` → tokens `[batch, maxTokens]` padded with '#': StringNormalizer (lowercase, as
 * `lowercaseLikeOnnx`) then the com.microsoft Tokenizer keeping the same pattern as `textTokens`.
 */
export function tokenizeInGraph(g: Graph, text: Value, options: { lowercase: boolean }): Value {
  const normalized = options.lowercase
    ? g.op('StringNormalizer', [text], {
        name: 'lowercase',
        attributes: { case_change_action: attr.string('LOWER'), is_case_sensitive: attr.int(1), locale: attr.string('C.UTF-8') },
        outputs: [{ dtype: 'string', shape: text.shape }],
      })[0]
    : text;
  return g.op('Tokenizer', [normalized], {
    name: 'tokenize',
    domain: 'com.microsoft',
    attributes: {
      mark: attr.int(0),
      mincharnum: attr.int(1),
      pad_value: attr.string(PAD_TOKEN),
      tokenexp: attr.string(options.lowercase ? TOKEN_PATTERN.lowercase : TOKEN_PATTERN.cased),
    },
    outputs: [{ dtype: 'string', shape: [...text.shape, 'tokens'] }],
  })[0];
}

/** A model of just the graph's tokenization (input `text` [batch] → output `tokens`), to check it against `textTokens`. */
export function textTokenizerModel(options: { lowercase: boolean }): Uint8Array {
  const g = new Graph({ name: 'text-tokenizer' });
  g.output(tokenizeInGraph(g, g.input('text', 'string', ['batch']), options), 'tokens');
  return g.toModel({ name: 'text-tokenizer' });
}

/** The token the graph pads short rows with. */
export const TEXT_PAD_TOKEN = PAD_TOKEN;

/**
 * Document frequencies of every n-gram over the rows, then the `vocabularySize` most frequent
 * with df ≥ `minDocumentFrequency` (ties broken by the n-gram's text so the result is stable).
 */
export async function fitTextVocabulary(spec: TextBaseModelSpec, rows: RowSource): Promise<TextVocabulary> {
  const counts = new Map<string, number>();
  let documents = 0;
  const tokenOptions = { lowercase: spec.lowercase };
  for await (const row of rows()) {
    documents += 1;
    const grams = new Set(ngramsOf(textTokens(textOf(row, spec.field), tokenOptions), spec.ngramRange));
    for (const gram of grams) counts.set(gram, (counts.get(gram) ?? 0) + 1);
  }
  if (documents === 0) throw fitFailed('text encoder: the train split has no rows to fit a vocabulary on; check the train dataset and the split fractions');
  const kept = [...counts].filter(([, df]) => df >= spec.minDocumentFrequency);
  if (kept.length === 0) {
    throw fitFailed(
      `text encoder: no ${spec.ngramRange.join('-')}-gram of field "${spec.field}" appears in at least minDocumentFrequency = ${spec.minDocumentFrequency} of ${documents} train rows; lower baseModel.minDocumentFrequency or add data`,
      { field: spec.field, minDocumentFrequency: spec.minDocumentFrequency, documents, candidates: counts.size },
    );
  }
  kept.sort(([a, dfa], [b, dfb]) => dfb - dfa || (a < b ? -1 : a > b ? 1 : 0));
  const chosen = kept.slice(0, spec.vocabularySize);
  const terms = chosen.map(([term]) => term);
  const documentFrequency = Int32Array.from(chosen, ([, df]) => df);
  const idf = Float64Array.from(documentFrequency, (df) => Math.log((1 + documents) / (1 + df)) + 1);
  return { terms, idf, documentFrequency, documents, candidates: counts.size };
}

/**
 * StringNormalizer (lowercase) → com.microsoft Tokenizer → TfIdfVectorizer (term counts) → × idf
 * → L2 normalize, with the vocabulary fitted on the train rows.
 */
export async function fitTextEncoder(spec: TextBaseModelSpec, rows: RowSource): Promise<FittedEncoder> {
  const vocabulary = await fitTextVocabulary(spec, rows);
  const [low, high] = spec.ngramRange;
  const dimension = vocabulary.terms.length;

  // TfIdfVectorizer wants the pool grouped by n (1-grams, then 2-grams, …), each n-gram written as
  // its tokens; ngram_counts holds where each group starts in pool_strings, ngram_indexes the
  // output column of each n-gram in pool order.
  const byLength = Array.from({ length: high }, () => [] as { tokens: string[]; column: number }[]);
  vocabulary.terms.forEach((term, column) => {
    const tokens = term.split(' ');
    byLength[tokens.length - 1].push({ tokens, column });
  });
  const poolStrings: string[] = [];
  const ngramCounts: number[] = [];
  const ngramIndexes: number[] = [];
  for (const group of byLength) {
    ngramCounts.push(poolStrings.length);
    for (const { tokens, column } of group) {
      poolStrings.push(...tokens);
      ngramIndexes.push(column);
    }
  }

  const g = new Graph({ name: 'text-encoder' });
  const input: EncoderInput = { name: 'text', dtype: 'string', shape: ['batch'], role: 'text', fields: [spec.field] };
  const tokens = tokenizeInGraph(g, g.input(input.name, 'string', ['batch']), { lowercase: spec.lowercase });
  const [counts] = g.op('TfIdfVectorizer', [tokens], {
    name: 'ngram_counts',
    attributes: {
      mode: attr.string('TF'),
      min_gram_length: attr.int(low),
      max_gram_length: attr.int(high),
      max_skip_count: attr.int(0),
      pool_strings: attr.strings(poolStrings),
      ngram_counts: attr.ints(ngramCounts),
      ngram_indexes: attr.ints(ngramIndexes),
    },
    outputs: [{ dtype: 'float32', shape: ['batch', dimension] }],
  });
  const idf = g.initializer('idf', { data: Float32Array.from(vocabulary.idf), shape: [dimension] });
  const embedding = l2Normalize(g, g.mul(counts, idf, { name: 'tfidf' }));

  const ngramsPerLength = Object.fromEntries(byLength.map((group, i) => [String(i + 1), group.length]).filter(([n]) => Number(n) >= low));
  return finishEncoder(
    g,
    embedding,
    { kind: 'text', dimension, inputs: [input] },
    {
      field: spec.field,
      vocabularySize: dimension,
      ngramRange: [low, high],
      ngramsPerLength,
      minDocumentFrequency: spec.minDocumentFrequency,
      lowercase: spec.lowercase,
      documents: vocabulary.documents,
      candidateNgrams: vocabulary.candidates,
      topTerms: vocabulary.terms.slice(0, 20),
    },
  );
}
