import type OnnxTypes from 'onnx-proto';
import { decodeModel, onnx, type ModelProto } from '#lib/domain/graph/index.ts';
import { EncoderError } from '#lib/domain/encoders/errors.ts';
import { encoderDescriptor } from '#lib/domain/encoders/runtime.ts';
import { ENCODER_METADATA_KEY } from '#lib/domain/encoders/types.ts';

type GraphProto = OnnxTypes.onnx.IGraphProto;
type NodeProto = OnnxTypes.onnx.INodeProto;
const AttributeType = onnx.AttributeProto.AttributeType;

export interface ComposeOptions {
  /** Inputs of the second model fed by values of the first (its graph inputs or outputs): `{ secondInput: firstValue }`. */
  connect: Readonly<Record<string, string>>;
  /** Prepended to every name of each model except the merged model's inputs and outputs. */
  prefixes?: { first: string; second: string };
  /** Graph name of the result; default the second model's. */
  name?: string;
}

/**
 * Chains two ONNX models into one ModelProto: the second model's `connect`ed inputs read the
 * first model's values, the result's inputs are the first model's inputs (plus any unconnected
 * inputs of the second), its outputs the second model's outputs. Every other name is prefixed
 * (inside subgraphs too) so the two graphs cannot collide. Opset imports are unioned; where the
 * default domain's versions differ, the older graph is carried to the newer opset (`axes` and
 * `split` attributes become inputs, as ONNX 13 and 18 require), and an op whose meaning changed in
 * a way that cannot be rewritten is refused by name. Metadata: the second model's keys win.
 */
export function composeModels(first: ModelProto, second: ModelProto, options: ComposeOptions): ModelProto {
  const prefixes = options.prefixes ?? { first: 'a/', second: 'b/' };
  const firstGraph = requireGraph(first, 'first');
  const secondGraph = requireGraph(second, 'second');
  const firstInputs = realInputs(firstGraph);
  const firstValues = new Set([...firstInputs.map((i) => i.name ?? ''), ...(firstGraph.output ?? []).map((o) => o.name ?? '')]);
  const secondInputs = realInputs(secondGraph);
  const secondInputNames = new Set(secondInputs.map((i) => i.name ?? ''));
  for (const [input, value] of Object.entries(options.connect)) {
    if (!secondInputNames.has(input)) {
      throw mergeError(`the second model has no input "${input}" to connect (inputs: ${[...secondInputNames].join(', ') || 'none'}); fix the connect map`, {
        input,
      });
    }
    if (!firstValues.has(value)) {
      throw mergeError(`the first model has no input or output "${value}" to feed "${input}" (it has ${[...firstValues].join(', ')}); fix the connect map`, {
        value,
      });
    }
  }

  const firstTypes = new Map([...firstInputs, ...(firstGraph.output ?? [])].map((v) => [v.name ?? '', v.type?.tensorType?.elemType]));
  for (const input of secondInputs) {
    const value = options.connect[input.name ?? ''];
    if (value === undefined) continue;
    const [want, got] = [input.type?.tensorType?.elemType, firstTypes.get(value)];
    if (want != null && got != null && want !== got) {
      throw mergeError(
        `"${value}" of the first model has element type ${got} but input "${input.name}" of the second wants ${want} (ONNX TensorProto codes); cast one side`,
        {
          value,
          input: input.name,
        },
      );
    }
  }

  const opsets = mergeOpsets(first, second);
  const defaultVersion = opsets.get('') ?? 0;
  const firstUpgraded = upgradeDefaultOpset(firstGraph, opsetVersion(first, ''), defaultVersion, prefixes.first);
  const secondUpgraded = upgradeDefaultOpset(secondGraph, opsetVersion(second, ''), defaultVersion, prefixes.second);

  const keepFirst = new Set(firstInputs.map((i) => i.name ?? ''));
  const renameFirst = (name: string) => (name === '' || keepFirst.has(name) ? name : prefixes.first + name);
  const keepSecond = new Set([
    ...(secondGraph.output ?? []).map((o) => o.name ?? ''),
    ...secondInputs.map((i) => i.name ?? '').filter((n) => !(n in options.connect)),
  ]);
  const renameSecond = (name: string) => {
    if (name === '') return name;
    if (Object.hasOwn(options.connect, name)) return renameFirst(options.connect[name]);
    return keepSecond.has(name) ? name : prefixes.second + name;
  };
  const a = renameGraph(firstUpgraded, renameFirst);
  const b = renameGraph(secondUpgraded, renameSecond);

  const unconnected = secondInputs.filter((i) => !Object.hasOwn(options.connect, i.name ?? ''));
  const graph: GraphProto = {
    name: options.name ?? secondGraph.name ?? 'agentflow',
    docString: secondGraph.docString ?? '',
    node: [...(a.node ?? []), ...(b.node ?? [])],
    initializer: [...(a.initializer ?? []), ...(b.initializer ?? [])],
    sparseInitializer: [...(a.sparseInitializer ?? []), ...(b.sparseInitializer ?? [])],
    input: [...realInputs(a), ...unconnected],
    output: b.output ?? [],
    valueInfo: [...(a.valueInfo ?? []), ...(a.output ?? []), ...(b.valueInfo ?? [])],
  };
  checkUniqueNames(graph);

  const metadata = new Map<string, string>();
  for (const entry of [...(first.metadataProps ?? []), ...(second.metadataProps ?? [])]) metadata.set(entry.key ?? '', entry.value ?? '');
  return onnx.ModelProto.create({
    irVersion: Math.max(toNumber(first.irVersion), toNumber(second.irVersion)),
    producerName: 'agentflow',
    producerVersion: second.producerVersion ?? '',
    domain: second.domain ?? '',
    modelVersion: second.modelVersion ?? 1,
    docString: second.docString ?? '',
    opsetImport: [...opsets].map(([domain, version]) => onnx.OperatorSetIdProto.create({ domain, version })),
    metadataProps: [...metadata].map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
    functions: [...(first.functions ?? []), ...(second.functions ?? [])],
    graph,
  });
}

export interface MergeOptions {
  /** The heads' input that takes the embedding. */
  featureInput: string;
}

/**
 * The export model: a fitted encoder (raw input → embedding) in front of the heads (embedding →
 * every task's output), as one ONNX file. Inputs are the encoder's raw inputs, outputs the heads'
 * outputs; the heads' metadata is kept, and the encoder's descriptor (`agentflow.encoder`: how to
 * build the inputs from a record, the tokenizer of a bring-your-own encoder) is added to it.
 */
export function mergeEncoderAndHeads(encoder: Uint8Array, heads: Uint8Array, options: MergeOptions): Uint8Array {
  const descriptor = encoderDescriptor(encoder);
  const encoderModel = decodeModel(encoder);
  const headsModel = decodeModel(heads);
  const headsInputs = realInputs(requireGraph(headsModel, 'heads')).map((i) => i.name ?? '');
  if (!headsInputs.includes(options.featureInput)) {
    throw mergeError(
      `the heads model has no input "${options.featureInput}" (inputs: ${headsInputs.join(', ')}); pass featureInput naming the heads' feature input`,
      {
        featureInput: options.featureInput,
      },
    );
  }
  const others = headsInputs.filter((name) => name !== options.featureInput);
  if (others.length > 0) {
    throw mergeError(`the heads model has inputs besides "${options.featureInput}" (${others.join(', ')}); bake weights into initializers before merging`, {
      others,
    });
  }
  const headsMetadata = new Set((headsModel.metadataProps ?? []).map((p) => p.key));
  encoderModel.metadataProps = (encoderModel.metadataProps ?? []).filter((p) => !headsMetadata.has(p.key) || p.key === ENCODER_METADATA_KEY);
  if (headsMetadata.has(ENCODER_METADATA_KEY)) {
    throw mergeError(`the heads model already carries "${ENCODER_METADATA_KEY}" metadata; merge an encoder only once`, {});
  }
  const merged = composeModels(encoderModel, headsModel, {
    connect: { [options.featureInput]: descriptor.output },
    prefixes: { first: 'encoder/', second: 'heads/' },
  });
  return onnx.ModelProto.encode(merged).finish();
}

// ---- names -----------------------------------------------------------------------------------

function requireGraph(model: ModelProto, which: string): GraphProto {
  if (!model.graph) throw mergeError(`the ${which} model has no graph`, {});
  return model.graph;
}

/** Graph inputs that are not initializers (IR < 4 lists initializers among the inputs). */
function realInputs(graph: GraphProto): OnnxTypes.onnx.IValueInfoProto[] {
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  return (graph.input ?? []).filter((i) => !initializers.has(i.name));
}

/** A deep copy of a graph with every value name passed through `rename`, subgraphs included. */
function renameGraph(graph: GraphProto, rename: (name: string) => string): GraphProto {
  const valueInfo = (v: OnnxTypes.onnx.IValueInfoProto): OnnxTypes.onnx.IValueInfoProto => ({ ...v, name: rename(v.name ?? '') });
  const tensor = (t: OnnxTypes.onnx.ITensorProto): OnnxTypes.onnx.ITensorProto => ({ ...t, name: rename(t.name ?? '') });
  const node = (n: NodeProto): NodeProto => ({
    ...n,
    name: n.name ? rename(n.name) : n.name,
    input: (n.input ?? []).map(rename),
    output: (n.output ?? []).map(rename),
    attribute: (n.attribute ?? []).map((at) => ({
      ...at,
      ...(at.g ? { g: renameGraph(at.g, rename) } : {}),
      ...(at.graphs && at.graphs.length > 0 ? { graphs: at.graphs.map((sub) => renameGraph(sub, rename)) } : {}),
    })),
  });
  return {
    ...graph,
    node: (graph.node ?? []).map(node),
    initializer: (graph.initializer ?? []).map(tensor),
    sparseInitializer: (graph.sparseInitializer ?? []).map((s) => ({ ...s, values: s.values ? tensor(s.values) : s.values })),
    input: (graph.input ?? []).map(valueInfo),
    output: (graph.output ?? []).map(valueInfo),
    valueInfo: (graph.valueInfo ?? []).map(valueInfo),
  };
}

function checkUniqueNames(graph: GraphProto): void {
  const seen = new Set<string>();
  const defined = [
    ...(graph.input ?? []).map((i) => i.name ?? ''),
    ...(graph.initializer ?? []).map((t) => t.name ?? ''),
    ...(graph.sparseInitializer ?? []).map((s) => s.values?.name ?? ''),
    ...(graph.node ?? []).flatMap((n) => (n.output ?? []).filter((o) => o !== '')),
  ];
  for (const name of defined) {
    if (seen.has(name)) {
      throw mergeError(
        `both models define "${name}" (an input of the first and an output of the second, or a name already carrying a merge prefix); rename one of them before merging`,
        {
          name,
        },
      );
    }
    seen.add(name);
  }
}

// ---- opsets ----------------------------------------------------------------------------------

function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

function opsetVersion(model: ModelProto, domain: string): number {
  const entry = (model.opsetImport ?? []).find((o) => (o.domain ?? '') === domain || (domain === '' && o.domain === 'ai.onnx'));
  return toNumber(entry?.version);
}

function mergeOpsets(first: ModelProto, second: ModelProto): Map<string, number> {
  const opsets = new Map<string, number>();
  for (const entry of [...(first.opsetImport ?? []), ...(second.opsetImport ?? [])]) {
    const domain = entry.domain === 'ai.onnx' ? '' : (entry.domain ?? '');
    opsets.set(domain, Math.max(opsets.get(domain) ?? 0, toNumber(entry.version)));
  }
  return opsets;
}

/** Ops whose `axes` attribute became an input at the given opset. */
const AXES_BECAME_INPUT: Readonly<Record<string, number>> = {
  ReduceSum: 13,
  Squeeze: 13,
  Unsqueeze: 13,
  ReduceMean: 18,
  ReduceMax: 18,
  ReduceMin: 18,
  ReduceProd: 18,
  ReduceL1: 18,
  ReduceL2: 18,
  ReduceLogSum: 18,
  ReduceLogSumExp: 18,
  ReduceSumSquare: 18,
};

/** Ops whose meaning or signature changed at the given opset in a way not rewritten here. */
const CHANGED_AT: Readonly<Record<string, number>> = {
  Slice: 10,
  TopK: 10,
  Upsample: 10,
  Pad: 11,
  Clip: 11,
  Scatter: 11,
};

/**
 * Carries a graph's default-domain nodes from opset `from` to `to` (a copy; the input is not
 * changed). New constant inputs become initializers named under `prefix`.
 */
export function upgradeDefaultOpset(graph: GraphProto, from: number, to: number, prefix: string): GraphProto {
  if (from === 0 || from >= to) return graph;
  const added: OnnxTypes.onnx.ITensorProto[] = [];
  const constant = (node: NodeProto, what: string, tensor: OnnxTypes.onnx.ITensorProto): string => {
    const name = `${prefix}opset${to}/${node.name || node.output?.[0] || 'node'}/${what}/${added.length}`;
    added.push({ ...tensor, name });
    return name;
  };
  const int64s = (values: readonly (number | { toNumber(): number })[]): OnnxTypes.onnx.ITensorProto => {
    const data = BigInt64Array.from(values, (v) => BigInt(toNumber(v)));
    return { dims: [data.length], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(data.buffer) };
  };
  const upgradeNode = (node: NodeProto): NodeProto => {
    const attributes = (node.attribute ?? []).map((at) => ({
      ...at,
      ...(at.g ? { g: upgradeNodes(at.g) } : {}),
      ...(at.graphs && at.graphs.length > 0 ? { graphs: at.graphs.map(upgradeNodes) } : {}),
    }));
    if (node.domain && node.domain !== 'ai.onnx') return { ...node, attribute: attributes };
    const op = node.opType ?? '';
    const take = (name: string) => {
      const index = attributes.findIndex((at) => at.name === name);
      return index < 0 ? undefined : attributes.splice(index, 1)[0];
    };
    const inputs = [...(node.input ?? [])];
    const changedAt = AXES_BECAME_INPUT[op];
    if (changedAt !== undefined && from < changedAt && to >= changedAt) {
      const axes = take('axes');
      if (axes) inputs[1] = constant(node, 'axes', int64s(axes.ints ?? []));
    } else if (op === 'Split' && from < 13 && to >= 13) {
      const split = take('split');
      if (split) inputs[1] = constant(node, 'split', int64s(split.ints ?? []));
      else if (to >= 18) attributes.push({ name: 'num_outputs', type: AttributeType.INT, i: (node.output ?? []).length });
    } else if (op === 'Split' && from < 18 && to >= 18 && inputs.length < 2) {
      attributes.push({ name: 'num_outputs', type: AttributeType.INT, i: (node.output ?? []).length });
    } else if (op === 'Dropout' && from < 12 && to >= 12) {
      // At inference Dropout is the identity; its ratio moved to an optional input.
      take('ratio');
      take('is_test');
    } else if ((op === 'Softmax' || op === 'LogSoftmax' || op === 'Hardmax') && from < 13 && to >= 13) {
      const axis = attributes.find((at) => at.name === 'axis');
      if (axis === undefined || toNumber(axis.i) !== -1) {
        throw unconvertible(op, node, from, to, 'before opset 13 it flattened the input to 2-D at axis (default 1)');
      }
    } else if (CHANGED_AT[op] !== undefined && from < CHANGED_AT[op] && to >= CHANGED_AT[op]) {
      throw unconvertible(op, node, from, to, `its signature changed at opset ${CHANGED_AT[op]}`);
    }
    return { ...node, input: inputs, attribute: attributes };
  };
  const upgradeNodes = (g: GraphProto): GraphProto => ({ ...g, node: (g.node ?? []).map(upgradeNode) });
  const upgraded = upgradeNodes(graph);
  return { ...upgraded, initializer: [...(upgraded.initializer ?? []), ...added] };
}

function unconvertible(op: string, node: NodeProto, from: number, to: number, why: string): EncoderError {
  return mergeError(
    `node "${node.name || node.output?.[0]}" (${op}) is written for opset ${from} and cannot be carried to opset ${to}: ${why}; export the model at opset ${to}`,
    { op, from, to },
  );
}

function mergeError(message: string, context: Record<string, unknown>): EncoderError {
  return new EncoderError(`merge: ${message}`, { code: 'ENCODER_MERGE', context });
}
