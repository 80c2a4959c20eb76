import onnxProto from 'onnx-proto';

import type { Attribute, Graph, Value } from './builder.ts';
import { dtypeCode, dtypeFromCode, dtypeOfValues, tensorLiteral, type DType, type TensorLiteral, type TensorValues } from './tensor.ts';
import { GraphError } from './errors.ts';
import { formatShape, type Shape } from './shape.ts';

export const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.ModelProto;

/**
 * IR version 8 is what onnx-proto's schema (ONNX 1.10+) describes and what opset 18 requires
 * at minimum; ORT 1.30 loads it.
 */
export const IR_VERSION = 8;

export interface ModelOptions {
  /** Written as the graph name and the model's domain-free identity. */
  readonly name: string;
  /** Free-form key/value pairs (tasks, classes, version, metrics, digests). */
  readonly metadata?: Readonly<Record<string, string>>;
  readonly docString?: string;
  readonly modelVersion?: number;
  readonly producerVersion?: string;
}

export function encodeGraph(graph: Graph, options: ModelOptions): Uint8Array {
  const graphProto = onnx.GraphProto.create({
    name: options.name,
    node: graph.nodes.flatMap((node) =>
      node.inlined !== undefined
        ? node.inlined.nodes
        : [
            onnx.NodeProto.create({
              name: node.name,
              opType: node.opType,
              domain: node.domain,
              input: node.inputs.map((v) => v?.name ?? ''),
              output: node.outputs.map((v) => v.name),
              attribute: Object.entries(node.attributes).map(([name, a]) => attributeProto(name, a)),
            }),
          ],
    ),
    input: graph.inputs.map(valueInfo),
    output: graph.outputs.map((o) => valueInfo(o.value)),
    initializer: [...graph.initializers.map((i) => tensorProto(i.value.name, i.tensor)), ...graph.nodes.flatMap((node) => node.inlined?.initializers ?? [])],
  });
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'agentflow',
    producerVersion: options.producerVersion ?? '0.1.0',
    modelVersion: options.modelVersion ?? 1,
    docString: options.docString ?? '',
    opsetImport: [...graph.opsets].map(([domain, version]) => onnx.OperatorSetIdProto.create({ domain, version })),
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
    graph: graphProto,
  });
  return onnx.ModelProto.encode(model).finish();
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (cause) {
    throw new GraphError(`model: ${bytes.byteLength} bytes do not decode as an ONNX ModelProto; pass the bytes written by toModel`, {
      code: 'GRAPH_MODEL',
      cause,
    });
  }
}

/** The model's metadata_props as a plain record. */
export function modelMetadata(bytes: Uint8Array): Record<string, string> {
  const model = decodeModel(bytes);
  return Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
}

/**
 * Turns named graph inputs into initializers holding the given data: the export path bakes
 * trained weights into the forward graph. Each input needs a fully static shape whose size
 * matches the data, and a dtype matching the typed array.
 */
export function bakeInitializers(bytes: Uint8Array, tensors: Readonly<Record<string, TensorValues>>): Uint8Array {
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (graph === null || graph === undefined) {
    throw new GraphError('bakeInitializers: the model has no graph', { code: 'GRAPH_MODEL' });
  }
  const inputs = graph.input ?? [];
  const initializers = graph.initializer ?? [];
  for (const [name, data] of Object.entries(tensors)) {
    const index = inputs.findIndex((i) => i.name === name);
    if (index < 0) {
      throw new GraphError(`bakeInitializers: "${name}" is not a graph input; inputs are ${inputs.map((i) => `"${i.name}"`).join(', ')}`, {
        code: 'GRAPH_MODEL',
        context: { name },
      });
    }
    const tensorType = inputs[index].type?.tensorType;
    const dims = tensorType?.shape?.dim ?? [];
    const shape: number[] = [];
    for (const d of dims) {
      if (d.dimParam) {
        throw new GraphError(`bakeInitializers: input "${name}" has symbolic dim "${d.dimParam}"; only fully static inputs can become weights`, {
          code: 'GRAPH_SHAPE',
          context: { name },
        });
      }
      shape.push(toNumber(d.dimValue ?? 0));
    }
    const dtype = dtypeFromCode(tensorType?.elemType ?? 0);
    const given = dtypeOfValues(data);
    if (dtype === undefined || (given !== dtype && !(given === 'uint8' && dtype === 'bool'))) {
      throw new GraphError(
        `bakeInitializers: input "${name}" is ${dtype ?? 'of an unsupported type'} but the data is ${given}; pass the matching typed array`,
        {
          code: 'GRAPH_DTYPE',
          context: { name, dtype, given },
        },
      );
    }
    const size = shape.reduce((p, d) => p * d, 1);
    if (size !== data.length) {
      throw new GraphError(`bakeInitializers: input "${name}" has shape ${formatShape(shape)} (${size} values) but ${data.length} values were given`, {
        code: 'GRAPH_SHAPE',
        context: { name, shape, length: data.length },
      });
    }
    inputs.splice(index, 1);
    initializers.push(tensorProto(name, tensorLiteral(data, { shape, dtype })));
  }
  graph.input = inputs;
  graph.initializer = initializers;
  return onnx.ModelProto.encode(model).finish();
}

/** The renamed nodes and weights of a model copied into a graph by `Graph.inlineModel`. */
export interface InlinedModel {
  readonly nodes: readonly onnxProto.onnx.INodeProto[];
  readonly initializers: readonly onnxProto.onnx.ITensorProto[];
}

export interface PreparedInline {
  readonly model: InlinedModel;
  /** The graph values feeding the model, in its input order. */
  readonly inputs: Value[];
  readonly outputs: { name: string; renamed: string; dtype: DType; shape: Shape; passthrough?: Value }[];
  readonly opsets: ReadonlyMap<string, number>;
}

/** Renames a model's nodes and weights under `prefix/` and maps its inputs to graph values. */
export function prepareInline(
  bytes: Uint8Array,
  options: { prefix: string; inputs: Readonly<Record<string, Value>>; opsets: ReadonlyMap<string, number> },
): PreparedInline {
  const fail = (detail: string, context: Record<string, unknown> = {}) =>
    new GraphError(`inlineModel "${options.prefix}": ${detail}`, { code: 'GRAPH_MODEL', context: { prefix: options.prefix, ...context } });
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (graph === null || graph === undefined) throw fail('the model has no graph');

  const opsets = new Map<string, number>();
  for (const o of model.opsetImport ?? []) {
    const domain = o.domain === 'ai.onnx' ? '' : (o.domain ?? '');
    const version = toNumber(o.version ?? 0);
    const ours = options.opsets.get(domain);
    if (ours !== undefined && ours !== version) {
      throw fail(
        `the model uses ${domain === '' ? 'the default domain' : `domain ${domain}`} at opset ${version} but this graph uses ${ours}; build the graph with new Graph({ opset: ${version} }) or convert the model`,
        { domain, version, ours },
      );
    }
    opsets.set(domain, version);
  }

  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const rename = new Map<string, string>();
  const inputs: Value[] = [];
  for (const input of graph.input ?? []) {
    const name = input.name ?? '';
    if (initializerNames.has(name)) continue;
    const value = options.inputs[name];
    if (value === undefined) {
      throw fail(`model input "${name}" is not connected; pass it in inputs (given: ${Object.keys(options.inputs).join(', ') || 'none'})`, { input: name });
    }
    const expected = dtypeFromCode(input.type?.tensorType?.elemType ?? 0);
    if (expected !== value.dtype) throw fail(`model input "${name}" is ${expected ?? 'not a tensor'} but ${value} was given; g.cast it`, { input: name });
    const rank = input.type?.tensorType?.shape?.dim?.length;
    if (rank !== undefined && rank !== value.rank) throw fail(`model input "${name}" has rank ${rank} but ${value} was given`, { input: name });
    rename.set(name, value.name);
    inputs.push(value);
  }
  for (const given of Object.keys(options.inputs)) {
    if (!rename.has(given)) throw fail(`"${given}" is not an input of the model`, { input: given });
  }
  const renamed = (name: string): string => {
    if (name === '') return name;
    let r = rename.get(name);
    if (r === undefined) {
      r = `${options.prefix}/${name}`;
      rename.set(name, r);
    }
    return r;
  };

  const nodes = (graph.node ?? []).map((node, i) => {
    for (const a of node.attribute ?? []) {
      if (a.g || (a.graphs?.length ?? 0) > 0) {
        throw fail(`node "${node.name ?? i}" (${node.opType}) has a subgraph; models with control flow cannot be inlined`, { node: node.name });
      }
    }
    return onnx.NodeProto.create({
      ...node,
      name: `${options.prefix}/${node.name || `${node.opType}_${i}`}`,
      input: (node.input ?? []).map(renamed),
      output: (node.output ?? []).map(renamed),
    });
  });
  const initializers = (graph.initializer ?? []).map((t) => onnx.TensorProto.create({ ...t, name: renamed(t.name ?? '') }));
  const outputs = (graph.output ?? []).map((o) => {
    const name = o.name ?? '';
    const dtype = dtypeFromCode(o.type?.tensorType?.elemType ?? 0);
    if (dtype === undefined) throw fail(`output "${name}" is not a tensor of a supported type`, { output: name });
    const shape = (o.type?.tensorType?.shape?.dim ?? []).map((d, k) =>
      d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? toNumber(d.dimValue) : `${options.prefix}/${name}:${k}`,
    );
    const passthrough = Object.entries(options.inputs).find(([inputName]) => inputName === name)?.[1];
    return { name, renamed: renamed(name), dtype, shape, ...(passthrough === undefined ? {} : { passthrough }) };
  });
  return { model: { nodes, initializers }, inputs, outputs, opsets };
}

function toNumber(v: number | { toNumber(): number }): number {
  return typeof v === 'number' ? v : v.toNumber();
}

function valueInfo(value: Value): onnxProto.onnx.IValueInfoProto {
  return {
    name: value.name,
    type: { tensorType: { elemType: dtypeCode(value.dtype), shape: shapeProto(value.shape) } },
  };
}

function shapeProto(shape: Shape): onnxProto.onnx.ITensorShapeProto {
  return { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
}

export function tensorProto(name: string, tensor: TensorLiteral): onnxProto.onnx.ITensorProto {
  const proto: onnxProto.onnx.ITensorProto = { name, dims: [...tensor.shape], dataType: dtypeCode(tensor.dtype) };
  if (tensor.dtype === 'string') {
    const encoder = new TextEncoder();
    proto.stringData = (tensor.data as readonly string[]).map((s) => encoder.encode(s));
  } else {
    const typed = tensor.data as Exclude<TensorValues, readonly string[]>;
    // ONNX raw_data is little-endian, as are typed arrays on every platform Node supports here.
    proto.rawData = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  }
  return proto;
}

function attributeProto(name: string, a: Attribute): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
    case 'ints':
      return { name, type: T.INTS, ints: [...a.value] };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...a.value] };
    case 'strings':
      return { name, type: T.STRINGS, strings: a.value.map((s) => new TextEncoder().encode(s)) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorProto('', a.value) };
  }
}
