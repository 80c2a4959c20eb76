import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import {
  EncoderError,
  composeModels,
  encodeRows,
  encoderDescriptor,
  encoderFeeds,
  fitEncoder,
  loadEncoder,
  mergeEncoderAndHeads,
  tokenizationFromJson,
} from '#lib/domain/encoders/index.ts';
import { Graph, decodeModel, modelMetadata, onnx } from '#lib/domain/graph/index.ts';
import type { OnnxBaseModelSpec } from '#lib/domain/spec/index.ts';
import { expectClose } from './helpers/expectClose.ts';
import { seededNoise } from './helpers/random.ts';

const rowsOf = (texts: string[]): ValidatedRow[] => texts.map((text) => ({ input: { text }, labels: {} }));
const source = (rows: ValidatedRow[]) =>
  async function* () {
    yield* rows;
  };

// ---- a tiny WordPiece tokenizer.json, written here because nothing can be downloaded ----------

const SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'];
const WORDS = ['the', 'quick', 'brown', 'fox', 'lazy', 'dog', 'jump', '##s', '##ed', 'hello', 'world', 'un', '##believ', '##able', ',', '!'];
const VOCAB = [...SPECIAL, ...WORDS];

function wordPieceTokenizerJson(): string {
  const special = (content: string) => ({
    id: VOCAB.indexOf(content),
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [VOCAB.indexOf('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [VOCAB.indexOf('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(VOCAB.map((token, id) => [token, id])),
    },
  });
}

// ---- a tiny transformer-shaped encoder: embedding Gather + MatMul + Tanh ----------------------

const EMBED = 8;
const HIDDEN = 6;

interface TinyEncoder {
  bytes: Uint8Array;
  /** The same forward pass in plain JavaScript: last_hidden_state of one sequence. */
  forward(ids: number[], mask: number[]): number[][];
}

function tinyEncoder(options: { tokenTypes?: boolean } = {}): TinyEncoder {
  const rand = seededNoise(7);
  const embedding = Float32Array.from({ length: VOCAB.length * EMBED }, rand);
  const weight = Float32Array.from({ length: EMBED * HIDDEN }, rand);
  const typeEmbedding = Float32Array.from({ length: 2 * EMBED }, rand);
  const g = new Graph({ name: 'tiny-bert' });
  const ids = g.input('input_ids', 'int64', ['batch', 'sequence']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'sequence']);
  let x = g.gather(g.initializer('embeddings.word', { data: embedding, shape: [VOCAB.length, EMBED] }), ids);
  if (options.tokenTypes) {
    const types = g.input('token_type_ids', 'int64', ['batch', 'sequence']);
    x = g.add(x, g.gather(g.initializer('embeddings.type', { data: typeEmbedding, shape: [2, EMBED] }), types));
  }
  const h = g.tanh(g.matmul(x, g.initializer('dense.weight', { data: weight, shape: [EMBED, HIDDEN] })));
  // Uses the mask the way attention does: padded positions differ from real ones.
  const masked = g.add(h, g.mul(g.unsqueeze(g.cast(mask, 'float32'), { axes: [2] }), 0.1));
  g.output(masked, 'last_hidden_state');
  const bytes = g.toModel({ name: 'tiny-bert', metadata: { source: 'test' } });
  return {
    bytes,
    forward(tokenIds, tokenMask) {
      return tokenIds.map((id, position) => {
        const row = Array.from({ length: EMBED }, (_, e) => embedding[id * EMBED + e] + (options.tokenTypes ? typeEmbedding[e] : 0));
        return Array.from({ length: HIDDEN }, (_, j) => Math.tanh(row.reduce((s, v, e) => s + v * weight[e * HIDDEN + j], 0)) + 0.1 * tokenMask[position]);
      });
    },
  };
}

const onnxSpec = (over: Partial<OnnxBaseModelSpec> = {}): OnnxBaseModelSpec => ({
  kind: 'onnx',
  model: 's3://models-bucket/tiny/model.onnx',
  tokenizer: 's3://models-bucket/tiny/tokenizer.json',
  textField: 'text',
  pooling: 'mean',
  maxLength: 128,
  normalize: true,
  ...over,
});

function resolverFor(files: Record<string, Uint8Array | string>) {
  return async (uri: string) => {
    const file = files[uri];
    if (file === undefined) throw new Error(`no such file ${uri}`);
    return typeof file === 'string' ? new TextEncoder().encode(file) : file;
  };
}

function referencePooled(tiny: TinyEncoder, ids: number[], spec: OnnxBaseModelSpec): number[] {
  const mask = ids.map(() => 1);
  const hidden = tiny.forward(ids, mask);
  const pooled = spec.pooling === 'cls' ? hidden[0] : Array.from({ length: HIDDEN }, (_, j) => hidden.reduce((s, h) => s + h[j], 0) / hidden.length);
  const norm = Math.sqrt(pooled.reduce((s, v) => s + v * v, 0));
  return spec.normalize ? pooled.map((v) => v / norm) : pooled;
}

const TEXTS = ['The quick brown fox jumps!', 'hello, world', 'Unbelievable', 'the lazy dog jumped over the quick brown fox and the lazy dog', 'zebra'];

describe('bring-your-own ONNX encoder', () => {
  const tokenizerJson = wordPieceTokenizerJson();
  const tokenizer = new Tokenizer(JSON.parse(tokenizerJson) as object, {});

  it('reads the generated WordPiece tokenizer.json as BERT would', () => {
    expect(tokenizer.encode('The quick dogs jumped!').tokens).toEqual(['[CLS]', 'the', 'quick', 'dog', '##s', 'jump', '##ed', '!', '[SEP]']);
  });

  it.each([
    { name: 'mean pooling, normalized', spec: onnxSpec() },
    { name: 'CLS pooling, normalized', spec: onnxSpec({ pooling: 'cls' }) },
    { name: 'mean pooling, not normalized', spec: onnxSpec({ normalize: false }) },
  ])('matches a plain JavaScript forward pass with $name', async ({ spec }) => {
    const tiny = tinyEncoder();
    const fitted = await fitEncoder(spec, source(rowsOf(TEXTS)), { resolveFile: resolverFor({ [spec.model]: tiny.bytes, [spec.tokenizer]: tokenizerJson }) });

    expect(fitted.kind).toBe('onnx');
    expect(fitted.dimension).toBe(HIDDEN);
    expect(fitted.inputs.map((i) => [i.name, i.dtype, i.role])).toEqual([
      ['input_ids', 'int64', 'token_ids'],
      ['attention_mask', 'int64', 'attention_mask'],
    ]);
    // One file: the user's graph with pooling added, whose inputs are token ids and mask.
    const session = await ort.InferenceSession.create(fitted.model);
    expect([...session.inputNames].sort()).toEqual(['attention_mask', 'input_ids']);
    expect(session.outputNames).toEqual(['embedding']);
    await session.release();

    // Rows of different lengths in one batch: padding must not leak into the pooled vectors.
    const embedded = await encodeRows(fitted, rowsOf(TEXTS));
    const expected = TEXTS.flatMap((text) => referencePooled(tiny, tokenizer.encode(text).ids, spec));
    expectClose(embedded, expected);
  });

  it('feeds zeros for token_type_ids inside the graph', async () => {
    const spec = onnxSpec();
    const tiny = tinyEncoder({ tokenTypes: true });
    const fitted = await fitEncoder(spec, source(rowsOf(TEXTS)), { resolveFile: resolverFor({ [spec.model]: tiny.bytes, [spec.tokenizer]: tokenizerJson }) });
    expect(fitted.inputs.map((i) => i.name)).toEqual(['input_ids', 'attention_mask']);
    expect(fitted.summary.modelInputs).toEqual({ ids: 'input_ids', mask: 'attention_mask', tokenTypes: 'token_type_ids' });
    expectClose(
      await encodeRows(fitted, rowsOf(TEXTS)),
      TEXTS.flatMap((text) => referencePooled(tiny, tokenizer.encode(text).ids, spec)),
    );
  });

  it('truncates to maxLength keeping the trailing [SEP], and pads with mask 0', () => {
    const tokenization = tokenizationFromJson(tokenizerJson, 5);
    const sep = VOCAB.indexOf('[SEP]');
    const cls = VOCAB.indexOf('[CLS]');
    const long = tokenization.encode('the quick brown fox jumps');
    expect(long).toEqual([cls, VOCAB.indexOf('the'), VOCAB.indexOf('quick'), VOCAB.indexOf('brown'), sep]);
    const batch = tokenization.encodeBatch(['the quick brown fox jumps', 'hello']);
    expect(batch.length).toBe(5);
    expect([...batch.mask]).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0, 0].map(BigInt));
    expect([...batch.ids.slice(5)]).toEqual([cls, VOCAB.indexOf('hello'), sep, 0, 0].map(BigInt));
  });

  it('embeds truncated texts as the model would see the first maxLength tokens', async () => {
    const spec = onnxSpec({ maxLength: 6 });
    const tiny = tinyEncoder();
    const fitted = await fitEncoder(spec, source(rowsOf(TEXTS)), { resolveFile: resolverFor({ [spec.model]: tiny.bytes, [spec.tokenizer]: tokenizerJson }) });
    const ids = tokenizer.encode(TEXTS[3]).ids;
    const truncated = [...ids.slice(0, 5), ids.at(-1)!];
    expectClose(await encodeRows(fitted, rowsOf([TEXTS[3]])), referencePooled(tiny, truncated, spec));
  });

  it('explains a missing resolveFile, an unreadable file and a model it cannot feed', async () => {
    const spec = onnxSpec();
    await expect(fitEncoder(spec, source(rowsOf(TEXTS)))).rejects.toThrow(/needs resolveFile/);
    await expect(fitEncoder(spec, source(rowsOf(TEXTS)), { resolveFile: resolverFor({}) })).rejects.toThrow(
      /cannot read baseModel.model "s3:\/\/models-bucket\/tiny\/model.onnx"/,
    );
    const g = new Graph();
    const x = g.input('pixels', 'float32', ['batch', 3]);
    g.output(g.relu(x), 'out');
    const error = await fitEncoder(spec, source(rowsOf(TEXTS)), {
      resolveFile: resolverFor({ [spec.model]: g.toModel({ name: 'cnn' }), [spec.tokenizer]: tokenizerJson }),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EncoderError);
    expect((error as EncoderError).code).toBe('ENCODER_BYO');
    expect((error as EncoderError).message).toMatch(/no token-id input \(inputs: pixels float32\)/);
  });
});

// ---- merging for export ------------------------------------------------------------------------

function tinyHeads(dimension: number): Uint8Array {
  const rand = seededNoise(11);
  const g = new Graph({ name: 'heads' });
  const features = g.input('features', 'float32', ['batch', dimension]);
  const w = g.initializer('w', { data: Float32Array.from({ length: dimension * 2 }, rand), shape: [dimension, 2] });
  const b = g.initializer('b', { data: Float32Array.of(0.1, -0.2), shape: [2] });
  const logits = g.add(g.matmul(features, w), b);
  g.output(g.sigmoid(logits), 'spam.prob');
  g.output(logits, 'spam.logit');
  return g.toModel({ name: 'heads', metadata: { 'agentflow.tasks': '["spam"]', version: '3' } });
}

async function runSequential(encoder: Uint8Array, heads: Uint8Array, feeds: Record<string, ort.Tensor>) {
  const first = await ort.InferenceSession.create(encoder);
  const second = await ort.InferenceSession.create(heads);
  const { embedding } = await first.run(feeds);
  const out = await second.run({ features: embedding });
  await Promise.all([first.release(), second.release()]);
  return out;
}

describe('mergeEncoderAndHeads', () => {
  it('gives the same outputs as running a fitted text encoder and the heads one after the other', async () => {
    const texts = ['the quick brown fox', 'lazy dogs sleep', 'the fox and the dog', 'nothing known here !!!'];
    const fitted = await fitEncoder(
      { kind: 'text', field: 'text', ngramRange: [1, 2], vocabularySize: 100, minDocumentFrequency: 1, lowercase: true },
      source(rowsOf(texts)),
    );
    const heads = tinyHeads(fitted.dimension);
    const merged = mergeEncoderAndHeads(fitted.model, heads, { featureInput: 'features' });

    const feeds = encoderFeeds(encoderDescriptor(fitted.model), rowsOf(texts));
    const expected = await runSequential(fitted.model, heads, feeds);
    const session = await ort.InferenceSession.create(merged);
    expect(session.inputNames).toEqual(['text']);
    expect([...session.outputNames].sort()).toEqual(['spam.logit', 'spam.prob']);
    const actual = await session.run(feeds);
    expectClose(actual['spam.prob'].data as Float32Array, expected['spam.prob'].data as Float32Array, 1e-6);
    expectClose(actual['spam.logit'].data as Float32Array, expected['spam.logit'].data as Float32Array, 1e-6);
    await session.release();

    const metadata = modelMetadata(merged);
    expect(metadata['agentflow.tasks']).toBe('["spam"]');
    expect(metadata.version).toBe('3');
    expect(JSON.parse(metadata['agentflow.encoder']).inputs).toEqual(fitted.inputs);
    const opsets = Object.fromEntries(decodeModel(merged).opsetImport.map((o) => [o.domain, Number(o.version)]));
    expect(opsets).toEqual({ '': 18, 'com.microsoft': 1 });
  });

  it('merges a bring-your-own encoder exported at opset 13 (ReduceMean axes as an attribute) with opset-18 heads', async () => {
    const tokenizerJson = wordPieceTokenizerJson();
    const g = new Graph({ name: 'old-encoder', opset: 13 });
    const ids = g.input('input_ids', 'int64', ['batch', 'sequence']);
    g.input('attention_mask', 'int64', ['batch', 'sequence']);
    const x = g.gather(g.initializer('emb', { data: Float32Array.from({ length: VOCAB.length * 4 }, seededNoise(3)), shape: [VOCAB.length, 4] }), ids);
    // A layer norm without scale, as exporters below opset 17 write it.
    const centred = g.sub(x, g.reduceMean(x, { axes: [-1], keepdims: true }));
    const normed = g.div(centred, g.sqrt(g.add(g.reduceMean(g.square(centred), { axes: [-1], keepdims: true }), 1e-5)));
    g.output(normed, 'last_hidden_state');
    const spec = onnxSpec();
    const fitted = await fitEncoder(spec, source(rowsOf(TEXTS)), {
      resolveFile: resolverFor({ [spec.model]: g.toModel({ name: 'old' }), [spec.tokenizer]: tokenizerJson }),
    });
    const heads = tinyHeads(fitted.dimension);
    const merged = mergeEncoderAndHeads(fitted.model, heads, { featureInput: 'features' });

    const encoder = await loadEncoder(fitted.model);
    const feeds = encoder.feeds(rowsOf(TEXTS));
    await encoder.release();
    const expected = await runSequential(fitted.model, heads, feeds);
    const session = await ort.InferenceSession.create(merged);
    const actual = await session.run(feeds);
    expectClose(actual['spam.prob'].data as Float32Array, expected['spam.prob'].data as Float32Array, 1e-6);
    await session.release();
  });

  it('carries opset-11 Unsqueeze / ReduceSum / Split attributes to inputs at opset 18', async () => {
    const node = (opType: string, input: string[], output: string[], attribute: OnnxAttribute[] = []) =>
      onnx.NodeProto.create({ name: output[0], opType, input, output, attribute });
    const ints = (name: string, values: number[]): OnnxAttribute => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: values });
    const float = (dims: (number | string)[]) => ({
      tensorType: { elemType: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
    });
    const old = onnx.ModelProto.create({
      irVersion: 6,
      opsetImport: [{ domain: '', version: 11 }],
      graph: {
        name: 'old',
        input: [{ name: 'x', type: float(['batch', 4]) }],
        output: [{ name: 'embedding', type: float(['batch', 2]) }],
        node: [
          node('Unsqueeze', ['x'], ['x3'], [ints('axes', [1])]),
          node('ReduceSum', ['x3'], ['s'], [ints('axes', [1]), { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }]),
          node('Split', ['s'], ['left', 'right'], [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }, ints('split', [2, 2])]),
          node('Mul', ['left', 'right'], ['embedding']),
        ],
      },
    });
    const oldBytes = onnx.ModelProto.encode(old).finish();
    const heads = tinyHeads(2);
    const merged = onnx.ModelProto.encode(
      composeModels(old, decodeModel(heads), { connect: { features: 'embedding' }, prefixes: { first: 'e/', second: 'h/' } }),
    ).finish();
    const x = new ort.Tensor('float32', Float32Array.from({ length: 12 }, seededNoise(5)), [3, 4]);
    const expected = await runSequential(oldBytes, heads, { x });
    const session = await ort.InferenceSession.create(merged);
    expectClose((await session.run({ x }))['spam.prob'].data as Float32Array, expected['spam.prob'].data as Float32Array, 1e-6);
    await session.release();
  });

  it('refuses heads whose feature input is named otherwise, naming the inputs', async () => {
    const fitted = await fitEncoder({ kind: 'features', field: 'v', dimension: 3 }, source([]));
    expect(() => mergeEncoderAndHeads(fitted.model, tinyHeads(3), { featureInput: 'embedding' })).toThrow(/no input "embedding" \(inputs: features\)/);
  });

  it('refuses an op whose meaning changed and cannot be rewritten', () => {
    const old = onnx.ModelProto.create({
      irVersion: 6,
      opsetImport: [{ domain: '', version: 11 }],
      graph: {
        name: 'old',
        input: [{ name: 'x', type: { tensorType: { elemType: 1 } } }],
        output: [{ name: 'embedding', type: { tensorType: { elemType: 1 } } }],
        node: [onnx.NodeProto.create({ name: 'sm', opType: 'Softmax', input: ['x'], output: ['embedding'] })],
      },
    });
    expect(() => composeModels(old, decodeModel(tinyHeads(2)), { connect: { features: 'embedding' } })).toThrow(
      /node "sm" \(Softmax\) is written for opset 11/,
    );
  });
});

type OnnxAttribute = Parameters<typeof onnx.AttributeProto.create>[0] & object;
