import type OnnxTypes from 'onnx-proto';
import { Graph, decodeModel, dtypeFromCode, onnx, type ModelProto } from '#lib/domain/graph/index.ts';
import type { OnnxBaseModelSpec } from '#lib/domain/spec/index.ts';
import { EncoderError } from '#lib/domain/encoders/errors.ts';
import { l2Normalize, type RowSource } from '#lib/domain/encoders/common.ts';
import { composeModels } from '#lib/domain/encoders/merge.ts';
import * as ort from 'onnxruntime-node';
import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { encoderDescriptor, encoderFeeds } from '#lib/domain/encoders/runtime.ts';
import { tokenizationFromJson } from '#lib/domain/encoders/tokenize.ts';
import { EMBEDDING_OUTPUT, ENCODER_METADATA_KEY, type EncoderDescriptor, type EncoderInput, type FittedEncoder } from '#lib/domain/encoders/types.ts';

/** Reads a model or tokenizer file named in the spec (a local path or an s3:// URI). */
export type ResolveFile = (uriOrPath: string) => Promise<Uint8Array>;

interface EncoderSignature {
  ids: string;
  mask?: string;
  tokenTypes?: string;
  hidden: string;
  hiddenDtype: 'float32' | 'float16';
}

/**
 * A bring-your-own encoder (a transformer exported to ONNX) with its tokenizer.json. The fitted
 * encoder is one ONNX file: the user's graph followed by pooling over the attention mask (mean, or
 * the first token for `cls`) and L2 normalization, whose inputs are token ids and mask. Token type
 * ids, when the model takes them, are zeros made inside the graph. The tokenizer.json travels in
 * the model's metadata, so Embed and serving tokenize exactly as here.
 */
export async function fitOnnxEncoder(spec: OnnxBaseModelSpec, rows: RowSource, resolveFile: ResolveFile | undefined): Promise<FittedEncoder> {
  if (!resolveFile) {
    throw byoError(`the onnx base model needs resolveFile to read "${spec.model}" and "${spec.tokenizer}"; pass options.resolveFile to fitEncoder`, {});
  }
  const [modelBytes, tokenizerBytes] = await Promise.all([read(resolveFile, spec.model, 'model'), read(resolveFile, spec.tokenizer, 'tokenizer')]);
  const tokenizerJson = Buffer.from(tokenizerBytes).toString('utf8');
  try {
    tokenizationFromJson(tokenizerJson, spec.maxLength).encode('agentflow');
  } catch (cause) {
    throw byoError(
      `baseModel.tokenizer "${spec.tokenizer}" is not a usable tokenizer.json (${(cause as Error).message}); give the tokenizer.json saved with the model`,
      {
        tokenizer: spec.tokenizer,
      },
      cause,
    );
  }

  const user = decodeModel(modelBytes);
  const signature = signatureOf(user, spec.model);
  if (signature.tokenTypes) zeroTokenTypes(user, signature);

  const pooling = poolingModel(spec, signature);
  const composed = composeModels(user, pooling, {
    connect: { hidden: signature.hidden, ...(signature.mask ? { [signature.mask]: signature.mask } : {}) },
    prefixes: { first: 'encoder/', second: 'pool/' },
    name: 'byo-encoder',
  });

  const inputs: EncoderInput[] = [
    { name: signature.ids, dtype: 'int64', shape: ['batch', 'sequence'], role: 'token_ids', fields: [spec.textField] },
    { name: signature.mask ?? 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'], role: 'attention_mask', fields: [spec.textField] },
  ];
  // The dimension is whatever the model produces: found by running it once on a train row.
  const probe = await firstRow(rows);
  const draft: EncoderDescriptor = { kind: 'onnx', dimension: 0, inputs, output: EMBEDDING_OUTPUT, tokenization: { maxLength: spec.maxLength, tokenizerJson } };
  const withDescriptor = (descriptor: EncoderDescriptor): Uint8Array => {
    composed.metadataProps = [
      ...(user.metadataProps ?? []).filter((p) => p.key !== ENCODER_METADATA_KEY),
      onnx.StringStringEntryProto.create({ key: ENCODER_METADATA_KEY, value: JSON.stringify(descriptor) }),
    ];
    return onnx.ModelProto.encode(composed).finish();
  };
  const dimension = await probeDimension(withDescriptor(draft), probe, spec.model);
  const model = withDescriptor({ ...draft, dimension });
  return {
    kind: 'onnx',
    model,
    dimension,
    inputs,
    summary: {
      model: spec.model,
      tokenizer: spec.tokenizer,
      textField: spec.textField,
      pooling: spec.pooling,
      normalize: spec.normalize,
      maxLength: spec.maxLength,
      dimension,
      modelInputs: { ids: signature.ids, mask: signature.mask ?? null, tokenTypes: signature.tokenTypes ?? null },
      hiddenOutput: signature.hidden,
      opset: (user.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? null,
    },
  };
}

async function probeDimension(model: Uint8Array, row: ValidatedRow, location: string): Promise<number> {
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
    const feeds = encoderFeeds(encoderDescriptor(model), [row]);
    const result = await session.run(feeds);
    const output = result[EMBEDDING_OUTPUT];
    if (output.dims.length !== 2 || output.type !== 'float32')
      throw new Error(`pooled output is ${output.type} [${output.dims.join(', ')}], not float32 [batch, hidden]`);
    return output.dims[1];
  } catch (cause) {
    throw byoError(
      `ONNX Runtime cannot run "${location}" with pooling added (${(cause as Error).message}); check that it is an encoder taking token ids and returning [batch, sequence, hidden]`,
      {
        model: location,
      },
      cause,
    );
  } finally {
    await session?.release();
  }
}

async function read(resolveFile: ResolveFile, location: string, what: 'model' | 'tokenizer'): Promise<Uint8Array> {
  try {
    return await resolveFile(location);
  } catch (cause) {
    throw byoError(`cannot read baseModel.${what} "${location}" (${(cause as Error).message}); check the path or S3 URI`, { [what]: location }, cause);
  }
}

async function firstRow(rows: RowSource) {
  for await (const row of rows()) return row;
  throw new EncoderError('onnx encoder: the train split has no rows; check the train dataset and the split fractions', { code: 'ENCODER_FIT' });
}

function signatureOf(model: ModelProto, location: string): EncoderSignature {
  const graph = model.graph;
  if (!graph) throw byoError(`"${location}" has no graph`, { model: location });
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !initializers.has(i.name));
  const dtypeOf = (v: OnnxTypes.onnx.IValueInfoProto) => dtypeFromCode(v.type?.tensorType?.elemType ?? 0);
  const rankOf = (v: OnnxTypes.onnx.IValueInfoProto) => v.type?.tensorType?.shape?.dim?.length;
  const find = (pattern: RegExp) => inputs.find((i) => pattern.test(i.name ?? ''));
  const ids = find(/input_ids|^ids$|^input$/) ?? inputs.find((i) => dtypeOf(i) === 'int64' && rankOf(i) === 2);
  const mask = find(/attention_mask|^mask$/);
  const tokenTypes = find(/token_type_ids|segment_ids/);
  const described = inputs.map((i) => `${i.name} ${dtypeOf(i) ?? '?'}`).join(', ');
  if (!ids) throw byoError(`"${location}" has no token-id input (inputs: ${described}); agentflow feeds input_ids and attention_mask`, { inputs: described });
  const others = inputs.filter((i) => i !== ids && i !== mask && i !== tokenTypes);
  if (others.length > 0) {
    throw byoError(
      `"${location}" takes inputs agentflow cannot fill (${others.map((i) => i.name).join(', ')}); export an encoder whose inputs are input_ids, attention_mask and optionally token_type_ids`,
      {
        inputs: described,
      },
    );
  }
  for (const input of [ids, mask, tokenTypes]) {
    if (input && dtypeOf(input) !== 'int64') {
      throw byoError(`"${location}" input "${input.name}" is ${dtypeOf(input)}, expected int64; export the model with int64 token inputs`, {
        input: input.name,
      });
    }
  }
  const outputs = graph.output ?? [];
  const hidden = outputs.find((o) => o.name === 'last_hidden_state') ?? outputs.find((o) => rankOf(o) === 3) ?? outputs[0];
  const hiddenDtype = hidden ? dtypeOf(hidden) : undefined;
  if (!hidden || (hiddenDtype !== 'float32' && hiddenDtype !== 'float16') || (rankOf(hidden) !== undefined && rankOf(hidden) !== 3)) {
    throw byoError(
      `"${location}" has no float [batch, sequence, hidden] output (outputs: ${outputs.map((o) => `${o.name} ${dtypeOf(o)} rank ${rankOf(o)}`).join(', ')}); export last_hidden_state`,
      { outputs: outputs.map((o) => o.name) },
    );
  }
  return { ids: ids.name ?? '', mask: mask?.name ?? undefined, tokenTypes: tokenTypes?.name ?? undefined, hidden: hidden.name ?? '', hiddenDtype };
}

/** Turns the token_type_ids input into zeros shaped like the ids, computed in the graph. */
function zeroTokenTypes(model: ModelProto, signature: EncoderSignature): void {
  const graph = model.graph!;
  const name = signature.tokenTypes!;
  graph.input = (graph.input ?? []).filter((i) => i.name !== name);
  const zero = BigInt64Array.of(0n);
  graph.node = [
    onnx.NodeProto.create({ name: `${name}/shape`, opType: 'Shape', input: [signature.ids], output: [`${name}/shape`] }),
    onnx.NodeProto.create({
      name: `${name}/zeros`,
      opType: 'ConstantOfShape',
      input: [`${name}/shape`],
      output: [name],
      attribute: [
        {
          name: 'value',
          type: onnx.AttributeProto.AttributeType.TENSOR,
          t: { dims: [1], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(zero.buffer) },
        },
      ],
    }),
    ...(graph.node ?? []),
  ];
}

/** hidden [batch, sequence, H] + attention_mask [batch, sequence] → pooled, optionally L2-normalized. */
function poolingModel(spec: OnnxBaseModelSpec, signature: EncoderSignature): ModelProto {
  const g = new Graph({ name: 'pooling' });
  const rawHidden = g.input('hidden', signature.hiddenDtype, ['batch', 'sequence', 'hidden']);
  const mask = g.input(signature.mask ?? 'attention_mask', 'int64', ['batch', 'sequence']);
  const hidden = signature.hiddenDtype === 'float32' ? rawHidden : g.cast(rawHidden, 'float32');
  let pooled;
  if (spec.pooling === 'cls') {
    pooled = g.gather(hidden, g.constant(BigInt64Array.of(0n), { dtype: 'int64', shape: [], name: 'first_token' }), { axis: 1, name: 'cls' });
  } else {
    const weights = g.unsqueeze(g.cast(mask, 'float32'), { axes: [2] });
    const summed = g.reduceSum(g.mul(hidden, weights), { axes: [1] });
    const count = g.reduceSum(weights, { axes: [1] });
    pooled = g.div(summed, g.max(count, 1e-9), { name: 'mean' });
  }
  const embedding = spec.normalize ? l2Normalize(g, pooled) : pooled;
  g.output(embedding, EMBEDDING_OUTPUT);
  return decodeModel(g.toModel({ name: 'pooling' }));
}

function byoError(message: string, context: Record<string, unknown>, cause?: unknown): EncoderError {
  return new EncoderError(`onnx encoder: ${message}`, { code: 'ENCODER_BYO', context, cause });
}
