import type OnnxTypes from 'onnx-proto';
import { decodeModel, onnx } from '#lib/domain/graph/index.ts';
import { DeployError } from './errors.ts';

type TensorProto = OnnxTypes.onnx.ITensorProto;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT8 = onnx.TensorProto.DataType.INT8;

/** `DequantizeLinear` takes an `axis` (per-channel scales) from opset 13 on. */
export const MIN_QUANTIZE_OPSET = 13;

/** Metadata key of a quantized file: what was quantized and how, as JSON. */
export const QUANTIZATION_METADATA_KEY = 'agentflow.quantization';

/**
 * ONNX Runtime session config (`extra`) for a weight-only quantized file. By default ORT's constant
 * folding skips DequantizeLinear (to keep QDQ groups for its int8 kernels), and with float
 * activations there is no group to fuse, so every run dequantizes every weight again. Disabling
 * the QDQ transformers lets constant folding dequantize once at load: the file stays small and
 * runs cost what the float model's do. A no-op for a float file.
 */
export const QUANTIZED_SESSION_CONFIG = { session: { disable_quant_qdq: '1' } } as const;

/** Weight matrices with fewer values stay float32 (see `QuantizeOptions.minElements`). */
export const DEFAULT_MIN_QUANTIZED_ELEMENTS = 256;

export interface QuantizeOptions {
  /**
   * Weight matrices with fewer values stay float32: an int8 copy saves 3 bytes a value, but its
   * scales, zero points and DequantizeLinear node cost about 5 bytes a column plus ~150 bytes, so
   * a small matrix gains nothing. Default `DEFAULT_MIN_QUANTIZED_ELEMENTS`.
   */
  minElements?: number;
}

/** One weight matrix stored as int8: `weight ≈ values · scale[channel]` along `axis`. */
export interface QuantizedWeight {
  /** The float weight's name; the DequantizeLinear node writes its value under this name. */
  name: string;
  shape: number[];
  /** The output-channel axis the scales run along: 1 for `MatMul` / `Gemm` B, 0 for `Gemm` with transB. */
  axis: number;
}

/**
 * Weight-only int8 quantization of an ONNX model: every float32 matrix initializer that feeds
 * `MatMul` or `Gemm` as the weight operand (B) becomes an int8 initializer with symmetric
 * per-output-channel scales (scale = max|w| / 127 over the channel, zero point 0) and a
 * `DequantizeLinear` node that writes the float value back under the weight's own name, so every
 * consumer reads what it read before, up to rounding (|w − q·scale| ≤ scale / 2). Biases,
 * vectors, shared or overridable initializers and matrices under `minElements` stay float32.
 * Activations stay float: ONNX Runtime runs the DequantizeLinear nodes and the float MatMul/Gemm,
 * so the file shrinks by about 4× in its weights while the arithmetic is float32 as before.
 */
export function quantizeWeights(model: Uint8Array, options: QuantizeOptions = {}): Uint8Array {
  const minElements = options.minElements ?? DEFAULT_MIN_QUANTIZED_ELEMENTS;
  const proto = decodeModel(model);
  const graph = proto.graph;
  if (!graph) throw new DeployError('quantizeWeights: the model has no graph; pass an exported ONNX file', { code: 'QUANTIZE', context: {} });
  const opset = Number((proto.opsetImport ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 0);
  if (opset < MIN_QUANTIZE_OPSET) {
    throw new DeployError(
      `quantizeWeights: the model uses default-domain opset ${opset}; per-channel DequantizeLinear needs opset ${MIN_QUANTIZE_OPSET} or later — convert the model first`,
      {
        code: 'QUANTIZE',
        context: { opset },
      },
    );
  }

  const nodes = graph.node ?? [];
  const graphInputs = new Set((graph.input ?? []).map((i) => i.name ?? ''));
  const axes = weightAxes(nodes);
  const taken = new Set<string>([...graphInputs, ...(graph.initializer ?? []).map((t) => t.name ?? ''), ...nodes.flatMap((n) => n.output ?? [])]);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };

  const initializers: TensorProto[] = [];
  const dequantize: OnnxTypes.onnx.INodeProto[] = [];
  const quantized: QuantizedWeight[] = [];
  for (const tensor of graph.initializer ?? []) {
    const name = tensor.name ?? '';
    const axis = axes.get(name);
    const shape = (tensor.dims ?? []).map(Number);
    const values = axis === undefined || graphInputs.has(name) || shape.length !== 2 ? undefined : floatValues(tensor);
    if (axis === undefined || values === undefined || values.length < minElements || !values.every(Number.isFinite)) {
      initializers.push(tensor);
      continue;
    }
    const { q, scales } = quantizePerChannel(values, shape as [number, number], axis);
    const channels = shape[axis];
    const [qName, scaleName, zeroName] = [fresh(`${name}.int8`), fresh(`${name}.scale`), fresh(`${name}.zero_point`)];
    initializers.push(
      { name: qName, dims: shape, dataType: INT8, rawData: new Uint8Array(q.buffer) },
      { name: scaleName, dims: [channels], dataType: FLOAT, rawData: new Uint8Array(scales.buffer) },
      { name: zeroName, dims: [channels], dataType: INT8, rawData: new Uint8Array(channels) },
    );
    dequantize.push(
      onnx.NodeProto.create({
        name: fresh(`${name}.dequantize`),
        opType: 'DequantizeLinear',
        domain: '',
        input: [qName, scaleName, zeroName],
        output: [name],
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: axis }],
      }),
    );
    quantized.push({ name, shape, axis });
  }
  // The DequantizeLinear nodes read only initializers, so they go first and the graph stays topologically sorted.
  graph.initializer = initializers;
  graph.node = [...dequantize, ...nodes];
  const metadata = (proto.metadataProps ?? []).filter((p) => p.key !== QUANTIZATION_METADATA_KEY);
  metadata.push(
    onnx.StringStringEntryProto.create({
      key: QUANTIZATION_METADATA_KEY,
      value: JSON.stringify({ scheme: 'int8 weight-only, symmetric per output channel', minElements, weights: quantized }),
    }),
  );
  proto.metadataProps = metadata;
  return onnx.ModelProto.encode(proto).finish();
}

/** The weights a file written by `quantizeWeights` stores as int8; empty for a float file. */
export function quantizedWeights(model: Uint8Array): QuantizedWeight[] {
  const entry = (decodeModel(model).metadataProps ?? []).find((p) => p.key === QUANTIZATION_METADATA_KEY);
  return entry ? ((JSON.parse(entry.value ?? '{}') as { weights?: QuantizedWeight[] }).weights ?? []) : [];
}

/**
 * The scale axis of every initializer used only as a weight operand: `MatMul` input 1 ([K, N],
 * channels on axis 1) or `Gemm` input 1 ([K, N], or [N, K] with transB). A name also read by any
 * other node or input position, or read with two different layouts, is left out: its consumers
 * would disagree on what an output channel is.
 */
function weightAxes(nodes: readonly OnnxTypes.onnx.INodeProto[]): Map<string, number> {
  const axes = new Map<string, number | null>();
  for (const node of nodes) {
    (node.input ?? []).forEach((input, position) => {
      if (input === '') return;
      const domain = node.domain ?? '';
      let axis: number | null = null;
      if ((domain === '' || domain === 'ai.onnx') && position === 1) {
        if (node.opType === 'MatMul') axis = 1;
        if (node.opType === 'Gemm') axis = Number((node.attribute ?? []).find((a) => a.name === 'transB')?.i ?? 0) === 1 ? 0 : 1;
      }
      const seen = axes.get(input);
      axes.set(input, seen === undefined || seen === axis ? axis : null);
    });
  }
  return new Map([...axes].filter((entry): entry is [string, number] => entry[1] !== null));
}

/** A float32 initializer's values, or undefined when it is not float32 or lives in external data. */
function floatValues(tensor: TensorProto): Float32Array | undefined {
  if (tensor.dataType !== FLOAT || tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) return undefined;
  if (tensor.rawData && tensor.rawData.byteLength > 0) {
    // raw_data is little-endian and may sit at any offset in the decoded buffer: copy before viewing.
    return new Float32Array(Uint8Array.from(tensor.rawData).buffer);
  }
  return Float32Array.from(tensor.floatData ?? []);
}

/** Symmetric int8 in [−127, 127] per channel along `axis` of a [rows, cols] matrix. */
export function quantizePerChannel(values: Float32Array, shape: readonly [number, number], axis: number): { q: Int8Array; scales: Float32Array } {
  const [rows, cols] = shape;
  const channels = axis === 0 ? rows : cols;
  const channelOf = (i: number) => (axis === 0 ? Math.floor(i / cols) : i % cols);
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < values.length; i++) maxAbs[channelOf(i)] = Math.max(maxAbs[channelOf(i)], Math.abs(values[i]));
  // An all-zero channel keeps scale 1 (DequantizeLinear needs no zero scale; its values are all 0 anyway).
  const scales = Float32Array.from(maxAbs, (m) => (m > 0 && Number.isFinite(m) ? m / 127 : 1));
  const q = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) q[i] = Math.max(-127, Math.min(127, Math.round(values[i] / scales[channelOf(i)])));
  return { q, scales };
}
