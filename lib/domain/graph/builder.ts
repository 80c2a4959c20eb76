import { GraphError, type GraphErrorCode } from './errors.ts';
import { encodeGraph, prepareInline, type InlinedModel, type ModelOptions } from './model.ts';
import { broadcastShapes, formatShape, isStatic, normalizeAxis, productDim, sameShape, staticSize, type Dim, type Shape } from './shape.ts';
import { dtypeCode, dtypeFromCode, dtypeOfValues, FLOAT_DTYPES, tensorLiteral, type DType, type TensorLiteral, type TensorValues } from './tensor.ts';

export { dtypeCode, dtypeFromCode, dtypeOfValues, FLOAT_DTYPES, tensorLiteral, type DType, type TensorLiteral, type TensorValues };

export type Attribute =
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'ints'; readonly value: readonly number[] }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'strings'; readonly value: readonly string[] }
  | { readonly type: 'tensor'; readonly value: TensorLiteral };

/** Shorthands for `g.op(…, { attributes })`. */
export const attr = {
  int: (value: number): Attribute => ({ type: 'int', value }),
  float: (value: number): Attribute => ({ type: 'float', value }),
  string: (value: string): Attribute => ({ type: 'string', value }),
  ints: (value: readonly number[]): Attribute => ({ type: 'ints', value }),
  floats: (value: readonly number[]): Attribute => ({ type: 'floats', value }),
  strings: (value: readonly string[]): Attribute => ({ type: 'strings', value }),
  tensor: (value: TensorLiteral): Attribute => ({ type: 'tensor', value }),
};

/** A symbolic tensor in a graph: a graph input, an initializer or a node output. */
export class Value {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    /** The node that computes it; undefined for inputs and initializers. */
    readonly producer: Node | undefined,
    /** The literal when this value is a constant, so rules can read axes and sizes. */
    readonly constant?: TensorLiteral,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name} ${this.dtype}${formatShape(this.shape)}`;
  }
}

export interface Node {
  readonly name: string;
  readonly opType: string;
  /** '' is the default ONNX domain. */
  readonly domain: string;
  /** undefined marks an omitted optional input (serialized as ''). */
  readonly inputs: readonly (Value | undefined)[];
  readonly outputs: readonly Value[];
  readonly attributes: Readonly<Record<string, Attribute>>;
  /** Set by `stopGradient`: autodiff treats the output as a constant. */
  readonly stopsGradient?: boolean;
  /** Set by `inlineModel`: the renamed nodes and weights this node stands for when serialized. */
  readonly inlined?: InlinedModel;
}

export interface OpOptions {
  /** A readable node name, shown in errors (`matmul "bottom.0": …`); made unique in the graph. */
  readonly name?: string;
}

/** The opset versions written into the model when a domain is used. ORT 1.30 runs these well. */
export const DEFAULT_OPSETS: Readonly<Record<string, number>> = {
  '': 18,
  'ai.onnx.ml': 3,
  'com.microsoft': 1,
};

type Operand = Value | number;

/**
 * An ONNX graph under construction. Every op method checks dtypes and static shapes and throws a
 * `GraphError` naming the node, the shapes and the fix, so a malformed model never reaches ORT.
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: { readonly name: string; readonly value: Value }[] = [];
  readonly initializers: { readonly value: Value; readonly tensor: TensorLiteral }[] = [];
  readonly name: string;
  private readonly usedNames = new Set<string>();
  private readonly counters = new Map<string, number>();
  private readonly scopes: string[] = [];
  private readonly scalarCache = new Map<string, Value>();
  private readonly domains: Map<string, number>;

  /**
   * `opset` (13–18, default 18) is the default-domain opset, for graphs that must match a
   * model built elsewhere; below 18, ReduceMean/ReduceMax take `axes` as an attribute.
   */
  constructor(options: { name?: string; opset?: number } = {}) {
    this.name = options.name ?? 'agentflow';
    const opset = options.opset ?? DEFAULT_OPSETS[''];
    if (!Number.isInteger(opset) || opset < 13 || opset > 18) {
      throw new GraphError(`graph "${this.name}": opset ${opset} is not supported; use 13 to 18 (axes-as-input Squeeze/Unsqueeze/ReduceSum need 13)`, {
        code: 'GRAPH_INVALID',
        context: { opset },
      });
    }
    this.domains = new Map([['', opset]]);
  }

  // ---- structure -------------------------------------------------------------------------

  input(name: string, dtype: DType, shape: Shape): Value {
    this.claimName(name, 'input');
    const value = new Value(this, name, dtype, [...shape], undefined);
    this.inputs.push(value);
    return value;
  }

  /** A named weight stored in the model. The dtype follows the typed array. */
  initializer(name: string, tensor: { data: TensorValues; shape: readonly number[]; dtype?: DType }): Value {
    const literal = tensorLiteral(tensor.data, { shape: tensor.shape, dtype: tensor.dtype });
    this.claimName(name, 'initializer');
    const value = new Value(this, name, literal.dtype, literal.shape, undefined);
    this.initializers.push({ value, tensor: literal });
    return value;
  }

  /** Marks a value as a graph output; an Identity renames it when `name` differs. */
  output(value: Value, name?: string): Value {
    this.own(value, 'output');
    if (name !== undefined && name !== value.name && this.usedNames.has(name)) {
      throw new GraphError(`output "${name}": the name is already used in graph "${this.name}"; pick another output name`, {
        code: 'GRAPH_INVALID',
        context: { name },
      });
    }
    let out = value;
    const isInput = this.inputs.includes(value) || this.initializers.some((i) => i.value === value);
    if ((name !== undefined && name !== value.name) || isInput || this.outputs.some((o) => o.value === value)) {
      out = this.emit('Identity', [value], { dtype: value.dtype, shape: value.shape }, { name: name ?? `${value.name}.out`, exact: name !== undefined });
    }
    this.outputs.push({ name: out.name, value: out });
    return out;
  }

  /** Declares a domain's opset, e.g. `g.useDomain('com.microsoft', 1)` for contrib ops. */
  useDomain(domain: string, version: number = DEFAULT_OPSETS[domain] ?? 1): void {
    this.domains.set(domain, version);
  }

  get opsets(): ReadonlyMap<string, number> {
    return this.domains;
  }

  /** Runs `build` with node names prefixed by `scope/`. */
  scope<T>(scope: string, build: () => T): T {
    this.scopes.push(scope);
    try {
      return build();
    } finally {
      this.scopes.pop();
    }
  }

  /** Serializes to ONNX `ModelProto` bytes. */
  toModel(options: ModelOptions): Uint8Array {
    if (this.outputs.length === 0) {
      throw new GraphError(`graph "${this.name}" has no outputs; call g.output(value, name) before toModel`, {
        code: 'GRAPH_INVALID',
      });
    }
    return encodeGraph(this, options);
  }

  /**
   * Any op, for domains and ops without a typed method (e.g. `com.microsoft` `Tokenizer`): the
   * caller states the output dtypes and shapes, which are taken on trust.
   */
  op(
    opType: string,
    inputs: readonly (Value | undefined)[],
    options: {
      domain?: string;
      attributes?: Record<string, Attribute>;
      outputs: readonly { dtype: DType; shape: Shape }[];
      name?: string;
    },
  ): Value[] {
    const domain = options.domain ?? '';
    if (!this.domains.has(domain)) this.useDomain(domain);
    return this.emitMany(opType, inputs, options.outputs, { name: options.name, attributes: options.attributes, domain });
  }

  /**
   * Copies another ONNX model into this graph behind `inputs` (its graph inputs by name) and
   * returns its outputs by name: a frozen base model in front of the heads, in one file. Names
   * inside are prefixed with `prefix/`. Its default-domain opset must equal this graph's (build
   * this graph with `new Graph({ opset })` to match). The copy is opaque to autodiff: gradients
   * never flow into it.
   */
  inlineModel(bytes: Uint8Array, options: { inputs: Readonly<Record<string, Value>>; prefix: string }): Record<string, Value> {
    for (const v of Object.values(options.inputs)) this.own(v, 'inlineModel');
    const prepared = prepareInline(bytes, { prefix: options.prefix, inputs: options.inputs, opsets: this.domains });
    const newNames = [
      ...prepared.outputs.filter((o) => o.passthrough === undefined).map((o) => o.renamed),
      ...prepared.model.initializers.map((t) => t.name ?? ''),
    ];
    const taken = newNames.find((n) => this.usedNames.has(n));
    if (taken !== undefined) {
      throw new GraphError(`inlineModel "${options.prefix}": "${taken}" is already used in graph "${this.name}"; choose another prefix`, {
        code: 'GRAPH_INVALID',
        context: { name: taken },
      });
    }
    for (const [domain, version] of prepared.opsets) this.domains.set(domain, version);
    const name = this.uniqueName([...this.scopes, options.prefix].join('/'));
    const outputValues: Value[] = [];
    const node: Node = {
      name,
      opType: 'InlinedModel',
      domain: 'agentflow.inline',
      inputs: prepared.inputs,
      outputs: outputValues,
      attributes: {},
      inlined: prepared.model,
    };
    const result: Record<string, Value> = {};
    for (const out of prepared.outputs) {
      if (out.passthrough !== undefined) {
        result[out.name] = out.passthrough;
        continue;
      }
      this.claimName(out.renamed, 'inlineModel output');
      const value = new Value(this, out.renamed, out.dtype, out.shape, node);
      outputValues.push(value);
      result[out.name] = value;
    }
    for (const init of prepared.model.initializers) this.claimName(init.name ?? '', 'inlineModel initializer');
    this.nodes.push(node);
    return result;
  }

  // ---- constants -------------------------------------------------------------------------

  constant(
    values: number | readonly number[] | readonly bigint[] | TensorValues,
    options: { dtype?: DType; shape?: readonly number[]; name?: string } = {},
  ): Value {
    const literal = tensorLiteral(values, options);
    return this.emit(
      'Constant',
      [],
      { dtype: literal.dtype, shape: literal.shape },
      {
        name: options.name,
        attributes: { value: attr.tensor(literal) },
        constant: literal,
      },
    );
  }

  /** A shared scalar constant of the given dtype. */
  scalar(value: number, dtype: DType = 'float32'): Value {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : String(value)}`;
    let cached = this.scalarCache.get(key);
    if (cached === undefined) {
      cached = this.constant(value, { dtype, name: `const.${dtype}.${value}` });
      this.scalarCache.set(key, cached);
    }
    return cached;
  }

  /** A scalar constant with `like`'s dtype. */
  scalarLike(like: Value, value: number): Value {
    return this.scalar(value, like.dtype);
  }

  private int64s(values: readonly number[], name: string): Value {
    return this.constant(
      BigInt64Array.from(values, (v) => BigInt(v)),
      { dtype: 'int64', name },
    );
  }

  // ---- elementwise binary ----------------------------------------------------------------

  add(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('add', 'Add', a, b, options);
  }

  sub(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('sub', 'Sub', a, b, options);
  }

  mul(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('mul', 'Mul', a, b, options);
  }

  div(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('div', 'Div', a, b, options);
  }

  pow(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('pow', 'Pow', a, b, options);
  }

  min(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('min', 'Min', a, b, options);
  }

  max(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('max', 'Max', a, b, options);
  }

  /** x², as Mul(x, x) so the gradient needs no Pow. */
  square(x: Value, options?: OpOptions): Value {
    return this.binary('square', 'Mul', x, x, options);
  }

  greater(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('greater', 'Greater', a, b, options, 'bool');
  }

  greaterOrEqual(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('greaterOrEqual', 'GreaterOrEqual', a, b, options, 'bool');
  }

  less(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('less', 'Less', a, b, options, 'bool');
  }

  lessOrEqual(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('lessOrEqual', 'LessOrEqual', a, b, options, 'bool');
  }

  equal(a: Operand, b: Operand, options?: OpOptions): Value {
    return this.binary('equal', 'Equal', a, b, options, 'bool');
  }

  and(a: Value, b: Value, options?: OpOptions): Value {
    this.requireDtype('and', a, ['bool'], options);
    return this.binary('and', 'And', a, b, options, 'bool');
  }

  or(a: Value, b: Value, options?: OpOptions): Value {
    this.requireDtype('or', a, ['bool'], options);
    return this.binary('or', 'Or', a, b, options, 'bool');
  }

  /** Elementwise sum of many values with broadcasting (ONNX Sum). */
  sum(values: readonly Value[], options?: OpOptions): Value {
    const nodeName = this.nodeName('Sum', options);
    if (values.length === 0) this.fail('sum', nodeName, 'needs at least one input', 'GRAPH_INVALID');
    let shape: Shape = values[0].shape;
    for (const v of values) {
      this.own(v, 'sum');
      if (v.dtype !== values[0].dtype) this.dtypeMismatch('sum', nodeName, values[0], v);
      shape = this.broadcastOrFail('sum', nodeName, shape, v.shape);
    }
    return this.emit('Sum', values, { dtype: values[0].dtype, shape }, { name: nodeName, exact: true });
  }

  // ---- elementwise unary -----------------------------------------------------------------

  neg(x: Value, options?: OpOptions): Value {
    return this.unary('neg', 'Neg', x, options);
  }

  abs(x: Value, options?: OpOptions): Value {
    return this.unary('abs', 'Abs', x, options);
  }

  sign(x: Value, options?: OpOptions): Value {
    return this.unary('sign', 'Sign', x, options);
  }

  exp(x: Value, options?: OpOptions): Value {
    return this.unary('exp', 'Exp', x, options, true);
  }

  log(x: Value, options?: OpOptions): Value {
    return this.unary('log', 'Log', x, options, true);
  }

  sqrt(x: Value, options?: OpOptions): Value {
    return this.unary('sqrt', 'Sqrt', x, options, true);
  }

  relu(x: Value, options?: OpOptions): Value {
    return this.unary('relu', 'Relu', x, options, true);
  }

  tanh(x: Value, options?: OpOptions): Value {
    return this.unary('tanh', 'Tanh', x, options, true);
  }

  sigmoid(x: Value, options?: OpOptions): Value {
    return this.unary('sigmoid', 'Sigmoid', x, options, true);
  }

  /** GELU, tanh approximation, composed from primitives so autodiff needs no extra rule. */
  gelu(x: Value, options?: OpOptions): Value {
    this.requireFloat('gelu', x, options);
    const label = options?.name ?? (this.nodeName('Gelu', undefined).split('/').pop() as string);
    return this.scope(label, () => {
      const cube = this.mul(this.square(x), x);
      const inner = this.mul(this.add(x, this.mul(cube, this.scalarLike(x, 0.044715))), this.scalarLike(x, Math.sqrt(2 / Math.PI)));
      const gate = this.add(this.tanh(inner), this.scalarLike(x, 1));
      return this.mul(this.mul(x, gate), this.scalarLike(x, 0.5));
    });
  }

  /**
   * Inverted dropout with the mask given: x·keep/(1 − rate), `keep` 0 or 1 per element (fed by the
   * trainer from its seeded generator). A mask from outside, not ONNX Dropout's own generator, keeps
   * a training step deterministic and reproducible, and composing it from Mul needs no extra
   * autodiff rule. Inference graphs leave it out: there it is the identity.
   */
  dropout(x: Value, keep: Value, rate: number, options?: OpOptions): Value {
    this.requireFloat('dropout', x, options);
    if (!(rate >= 0 && rate < 1)) {
      throw new GraphError(`dropout rate ${rate} must lie in [0, 1); 0 keeps every unit`, { code: 'GRAPH_INVALID', context: { rate } });
    }
    const label = options?.name ?? (this.nodeName('Dropout', undefined).split('/').pop() as string);
    return this.scope(label, () => this.mul(this.mul(x, keep), this.scalarLike(x, 1 / (1 - rate))));
  }

  identity(x: Value, options?: OpOptions): Value {
    this.own(x, 'identity');
    return this.emit('Identity', [x], { dtype: x.dtype, shape: x.shape }, options);
  }

  /** Identity whose output autodiff treats as a constant. */
  stopGradient(x: Value, options?: OpOptions): Value {
    this.own(x, 'stopGradient');
    return this.emit('Identity', [x], { dtype: x.dtype, shape: x.shape }, { ...options, stopsGradient: true });
  }

  cast(x: Value, to: DType, options?: OpOptions): Value {
    this.own(x, 'cast');
    return this.emit('Cast', [x], { dtype: to, shape: x.shape }, { ...options, attributes: { to: attr.int(dtypeCode(to)) } });
  }

  not(x: Value, options?: OpOptions): Value {
    this.requireDtype('not', x, ['bool'], options);
    return this.emit('Not', [x], { dtype: 'bool', shape: x.shape }, options);
  }

  // ---- linear algebra --------------------------------------------------------------------

  /** Batched matrix product (ONNX MatMul); both operands need rank ≥ 2. */
  matmul(a: Value, b: Value, options?: OpOptions): Value {
    const nodeName = this.nodeName('MatMul', options);
    this.own(a, 'matmul');
    this.own(b, 'matmul');
    this.requireFloat('matmul', a, { name: nodeName });
    if (a.dtype !== b.dtype) this.dtypeMismatch('matmul', nodeName, a, b);
    for (const [label, v] of [
      ['a', a],
      ['b', b],
    ] as const) {
      if (v.rank < 2) {
        this.fail('matmul', nodeName, `operand ${label} ${formatShape(v.shape)} has rank ${v.rank}; reshape it to rank 2 (e.g. [${v.shape.join(',')},1])`);
      }
    }
    const k1 = a.shape[a.rank - 1];
    const k2 = b.shape[b.rank - 2];
    if (k1 !== k2) {
      this.fail(
        'matmul',
        nodeName,
        `inner dims ${k1} and ${k2} differ (a ${formatShape(a.shape)}, b ${formatShape(b.shape)}); the last dim of a must equal the second-to-last dim of b`,
      );
    }
    const batch = this.broadcastOrFail('matmul', nodeName, a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.emit('MatMul', [a, b], { dtype: a.dtype, shape: [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]] }, { name: nodeName, exact: true });
  }

  /**
   * Sparse rows times a weight matrix, as an embedding bag: for row b, Σ_k values[b,k]·weight[indices[b,k]].
   * `indices` and `values` are `[batch, nnz]`, padded to the batch's longest row with index 0 and
   * value 0 (a padded slot adds 0·weight[0]). Gather, then a batched MatMul of `[batch, 1, nnz]` by
   * the gathered `[batch, nnz, out]`, so the weighted sum never materializes a product tensor. Its
   * gradient comes from the Gather (ScatterND add) and MatMul rules. Equals MatMul(dense x, weight).
   *
   * With `assignment` (`[batch, pieces]`, 1 where a piece belongs to a row), `indices` and `values`
   * are `[pieces, length]`: rows cut into pieces (see `piecedSparse` in lib/domain/shards), whose bags
   * `assignment` sums into the rows'. The bag's work is padded slots times width, so pieces of one
   * length pad far less than rows padded to the batch's longest when the rows' lengths differ.
   */
  embeddingBag(weight: Value, indices: Value, values: Value, options: OpOptions & { assignment?: Value } = {}): Value {
    const nodeName = this.nodeName('EmbeddingBag', options);
    this.requireFloat('embeddingBag', weight, { name: nodeName });
    if (weight.rank !== 2) this.fail('embeddingBag', nodeName, `weight ${weight} must be a [vocabulary, out] matrix`);
    if (indices.rank !== 2 || values.rank !== 2) {
      this.fail(
        'embeddingBag',
        nodeName,
        `indices ${indices} and values ${values} must both be [batch, nnz]; pad rows to the batch's longest with index 0, value 0`,
      );
    }
    if (values.dtype !== weight.dtype) this.dtypeMismatch('embeddingBag', nodeName, weight, values);
    const { assignment } = options;
    if (assignment !== undefined && (assignment.rank !== 2 || assignment.dtype !== weight.dtype)) {
      this.fail(
        'embeddingBag',
        nodeName,
        `assignment ${assignment} must be a ${weight.dtype} [batch, pieces] matrix (1 where a piece belongs to a row); build it with piecedSparse`,
      );
    }
    const label = options.name ?? (nodeName.split('/').pop() as string);
    return this.scope(label, () => {
      const rows = this.gather(weight, indices);
      const weighted = this.squeeze(this.matmul(this.unsqueeze(values, { axes: [1] }), rows), { axes: [1] });
      return assignment === undefined ? weighted : this.matmul(assignment, weighted);
    });
  }

  /** alpha·op(a)·op(b) + beta·c for 2-D a and b (ONNX Gemm); c broadcasts to the result. */
  gemm(a: Value, b: Value, c?: Value, options: OpOptions & { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {}): Value {
    const nodeName = this.nodeName('Gemm', options);
    this.own(a, 'gemm');
    this.own(b, 'gemm');
    this.requireFloat('gemm', a, { name: nodeName });
    for (const [label, v] of [
      ['a', a],
      ['b', b],
      ['c', c],
    ] as const) {
      if (v === undefined) continue;
      if (v.dtype !== a.dtype) this.dtypeMismatch('gemm', nodeName, a, v);
      if (label !== 'c' && v.rank !== 2)
        this.fail('gemm', nodeName, `operand ${label} ${formatShape(v.shape)} must have rank 2; use matmul for batched products`);
    }
    const transA = options.transA ?? false;
    const transB = options.transB ?? false;
    const [m, ka] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
    const [kb, n] = transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
    if (ka !== kb) {
      this.fail(
        'gemm',
        nodeName,
        `inner dims ${ka} and ${kb} differ (a ${formatShape(a.shape)}${transA ? 'ᵀ' : ''}, b ${formatShape(b.shape)}${transB ? 'ᵀ' : ''}); check transA/transB`,
      );
    }
    const shape: Dim[] = [m, n];
    if (c !== undefined) {
      const out = this.broadcastOrFail('gemm', nodeName, shape, c.shape);
      if (!sameShape(out, shape)) this.fail('gemm', nodeName, `bias c ${formatShape(c.shape)} does not broadcast to the result ${formatShape(shape)}`);
    }
    return this.emit(
      'Gemm',
      c === undefined ? [a, b] : [a, b, c],
      { dtype: a.dtype, shape },
      {
        name: nodeName,
        exact: true,
        attributes: {
          transA: attr.int(transA ? 1 : 0),
          transB: attr.int(transB ? 1 : 0),
          alpha: attr.float(options.alpha ?? 1),
          beta: attr.float(options.beta ?? 1),
        },
      },
    );
  }

  // ---- normalizers -----------------------------------------------------------------------

  softmax(x: Value, options: OpOptions & { axis?: number } = {}): Value {
    return this.softmaxLike('softmax', 'Softmax', x, options);
  }

  logSoftmax(x: Value, options: OpOptions & { axis?: number } = {}): Value {
    return this.softmaxLike('logSoftmax', 'LogSoftmax', x, options);
  }

  // ---- reductions ------------------------------------------------------------------------

  /** Sum over `axes` (all when omitted); `keepdims` defaults to false as in numpy. */
  reduceSum(x: Value, options: OpOptions & { axes?: readonly number[]; keepdims?: boolean } = {}): Value {
    return this.reduce('reduceSum', 'ReduceSum', x, options);
  }

  reduceMean(x: Value, options: OpOptions & { axes?: readonly number[]; keepdims?: boolean } = {}): Value {
    return this.reduce('reduceMean', 'ReduceMean', x, options);
  }

  reduceMax(x: Value, options: OpOptions & { axes?: readonly number[]; keepdims?: boolean } = {}): Value {
    return this.reduce('reduceMax', 'ReduceMax', x, options);
  }

  // ---- shape manipulation ----------------------------------------------------------------

  transpose(x: Value, options: OpOptions & { perm?: readonly number[] } = {}): Value {
    const nodeName = this.nodeName('Transpose', options);
    this.own(x, 'transpose');
    const perm = options.perm ?? x.shape.map((_, i) => x.rank - 1 - i);
    const sorted = [...perm].sort((p, q) => p - q);
    if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) {
      this.fail('transpose', nodeName, `perm [${perm.join(',')}] is not a permutation of the ${x.rank} axes of ${formatShape(x.shape)}`);
    }
    return this.emit(
      'Transpose',
      [x],
      { dtype: x.dtype, shape: perm.map((p) => x.shape[p]) },
      {
        name: nodeName,
        exact: true,
        attributes: { perm: attr.ints(perm) },
      },
    );
  }

  concat(values: readonly Value[], options: OpOptions & { axis: number }): Value {
    const nodeName = this.nodeName('Concat', options);
    if (values.length === 0) this.fail('concat', nodeName, 'needs at least one input', 'GRAPH_INVALID');
    const first = values[0];
    const axis = this.axisOrFail('concat', nodeName, options.axis, first);
    const along: Dim[] = [];
    for (const v of values) {
      this.own(v, 'concat');
      if (v.dtype !== first.dtype) this.dtypeMismatch('concat', nodeName, first, v);
      const differs = v.rank !== first.rank || v.shape.some((d, i) => i !== axis && d !== first.shape[i]);
      if (differs) {
        this.fail(
          'concat',
          nodeName,
          `input ${formatShape(v.shape)} does not match ${formatShape(first.shape)} outside axis ${axis}; all inputs need the same shape except along the concat axis`,
        );
      }
      along.push(v.shape[axis]);
    }
    const total = along.every((d) => typeof d === 'number') ? along.reduce((s: number, d) => s + (d as number), 0) : `(${along.join('+')})`;
    const shape = first.shape.map((d, i) => (i === axis ? total : d));
    return this.emit('Concat', values, { dtype: first.dtype, shape }, { name: nodeName, exact: true, attributes: { axis: attr.int(axis) } });
  }

  split(x: Value, options: OpOptions & { axis: number; sizes: readonly number[] }): Value[] {
    const nodeName = this.nodeName('Split', options);
    this.own(x, 'split');
    const axis = this.axisOrFail('split', nodeName, options.axis, x);
    const total = options.sizes.reduce((s, d) => s + d, 0);
    if (x.shape[axis] !== total) {
      this.fail(
        'split',
        nodeName,
        `sizes [${options.sizes.join(',')}] sum to ${total} but axis ${axis} of ${formatShape(x.shape)} is ${x.shape[axis]}; sizes must add up to the (static) dim`,
      );
    }
    const splitSizes = this.int64s(options.sizes, `${nodeName}.sizes`);
    return this.emitMany(
      'Split',
      [x, splitSizes],
      options.sizes.map((size) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === axis ? size : d)) })),
      { name: nodeName, exact: true, attributes: { axis: attr.int(axis) } },
    );
  }

  /** Picks slices along `axis` (default 0) by int64/int32 indices (embedding lookups, class columns). */
  gather(data: Value, indices: Value, options: OpOptions & { axis?: number } = {}): Value {
    const nodeName = this.nodeName('Gather', options);
    this.own(data, 'gather');
    this.own(indices, 'gather');
    if (indices.dtype !== 'int64' && indices.dtype !== 'int32') {
      this.fail('gather', nodeName, `indices ${indices} must be int64 or int32; g.cast them`, 'GRAPH_DTYPE');
    }
    const axis = this.axisOrFail('gather', nodeName, options.axis ?? 0, data);
    const shape = [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)];
    return this.emit('Gather', [data, indices], { dtype: data.dtype, shape }, { name: nodeName, exact: true, attributes: { axis: attr.int(axis) } });
  }

  /** `condition ? a : b` elementwise with broadcasting (masks). */
  where(condition: Value, a: Operand, b: Operand, options?: OpOptions): Value {
    const nodeName = this.nodeName('Where', options);
    this.own(condition, 'where');
    if (condition.dtype !== 'bool')
      this.fail('where', nodeName, `condition ${condition} must be bool; compare it (g.greater(mask, 0)) or g.cast it`, 'GRAPH_DTYPE');
    const [va, vb] = this.operands(a, b);
    if (va.dtype !== vb.dtype) this.dtypeMismatch('where', nodeName, va, vb);
    const shape = this.broadcastOrFail('where', nodeName, this.broadcastOrFail('where', nodeName, condition.shape, va.shape), vb.shape);
    return this.emit('Where', [condition, va, vb], { dtype: va.dtype, shape }, { name: nodeName, exact: true });
  }

  /**
   * Reshape to `shape`: numbers (0 copies the input dim, -1 is inferred) and symbolic dims of
   * the input (`['batch', 8, 48]`). At most one dim may be left for ORT to infer.
   */
  reshape(x: Value, shape: Shape, options?: OpOptions): Value {
    const nodeName = this.nodeName('Reshape', options);
    this.own(x, 'reshape');
    const emitted: number[] = [];
    const out: (Dim | undefined)[] = [];
    shape.forEach((d, i) => {
      if (typeof d === 'string') {
        if (x.shape[i] === d) {
          emitted.push(0);
          out.push(d);
        } else {
          emitted.push(-1);
          out.push(d);
        }
      } else if (d === 0) {
        if (i >= x.rank) this.fail('reshape', nodeName, `dim 0 at index ${i} copies an input dim but ${formatShape(x.shape)} has rank ${x.rank}`);
        emitted.push(0);
        out.push(x.shape[i]);
      } else if (d === -1) {
        emitted.push(-1);
        out.push(undefined);
      } else if (Number.isInteger(d) && d > 0) {
        emitted.push(d);
        out.push(d);
      } else {
        this.fail('reshape', nodeName, `dim ${d} in ${formatShape(shape)} is not a positive integer, 0 or -1`);
      }
    });
    if (emitted.filter((d) => d === -1).length > 1) {
      this.fail(
        'reshape',
        nodeName,
        `${formatShape(shape)} leaves more than one dim to infer; name at most one unknown dim (symbolic dims not at the same index as in ${formatShape(x.shape)} count as unknown)`,
      );
    }
    const inKnown = productDim(x.shape);
    const outKnownDims = out.filter((d): d is Dim => d !== undefined);
    const inferIndex = out.indexOf(undefined);
    if (inferIndex >= 0) {
      if (typeof inKnown === 'number' && isStatic(outKnownDims)) {
        const rest = staticSize(outKnownDims) ?? 1;
        if (rest === 0 || inKnown % rest !== 0)
          this.fail('reshape', nodeName, `cannot reshape ${formatShape(x.shape)} (${inKnown} elements) to ${formatShape(shape)}`);
        out[inferIndex] = inKnown / rest;
      } else {
        const inSymbols = x.shape.filter((d) => typeof d === 'string');
        const outSymbols = outKnownDims.filter((d) => typeof d === 'string');
        const leftover = inSymbols.filter((s) => !outSymbols.includes(s));
        const inNumeric = staticSize(x.shape.filter((d) => typeof d === 'number')) ?? 1;
        const outNumeric = staticSize(outKnownDims.filter((d) => typeof d === 'number')) ?? 1;
        // Symbols of the input not named in the target, times the numeric remainder.
        out[inferIndex] = inNumeric % outNumeric === 0 ? productDim([...leftover, inNumeric / outNumeric]) : `(${nodeName}:${inferIndex})`;
      }
    } else if (typeof inKnown === 'number' && staticSize(out as Dim[]) !== inKnown) {
      this.fail(
        'reshape',
        nodeName,
        `cannot reshape ${formatShape(x.shape)} (${inKnown} elements) to ${formatShape(shape)} (${staticSize(out as Dim[])} elements)`,
      );
    }
    const target = this.int64s(emitted, `${nodeName}.shape`);
    return this.emit('Reshape', [x, target], { dtype: x.dtype, shape: out as Dim[] }, { name: nodeName, exact: true });
  }

  /** Reshape to another value's runtime shape (any symbolic dims). */
  reshapeLike(x: Value, like: Value, options?: OpOptions): Value {
    const nodeName = this.nodeName('Reshape', options);
    this.own(x, 'reshapeLike');
    const a = staticSize(x.shape);
    const b = staticSize(like.shape);
    if (a !== undefined && b !== undefined && a !== b) {
      this.fail('reshapeLike', nodeName, `cannot reshape ${formatShape(x.shape)} to the shape of ${like} (element counts differ)`);
    }
    return this.emit('Reshape', [x, this.shapeOf(like)], { dtype: x.dtype, shape: like.shape }, { name: nodeName, exact: true });
  }

  unsqueeze(x: Value, options: OpOptions & { axes: readonly number[] }): Value {
    const nodeName = this.nodeName('Unsqueeze', options);
    this.own(x, 'unsqueeze');
    const rank = x.rank + options.axes.length;
    const axes = options.axes.map((a) => {
      const n = normalizeAxis(a, rank);
      if (n === undefined) this.fail('unsqueeze', nodeName, `axis ${a} is out of range for output rank ${rank}`);
      return n as number;
    });
    const shape: Dim[] = [];
    let next = 0;
    for (let i = 0; i < rank; i += 1) shape.push(axes.includes(i) ? 1 : x.shape[next++]);
    return this.emit('Unsqueeze', [x, this.int64s(axes, `${nodeName}.axes`)], { dtype: x.dtype, shape }, { name: nodeName, exact: true });
  }

  squeeze(x: Value, options: OpOptions & { axes: readonly number[] }): Value {
    const nodeName = this.nodeName('Squeeze', options);
    this.own(x, 'squeeze');
    const axes = options.axes.map((a) => this.axisOrFail('squeeze', nodeName, a, x));
    for (const a of axes) {
      if (x.shape[a] !== 1) this.fail('squeeze', nodeName, `axis ${a} of ${formatShape(x.shape)} is ${x.shape[a]}, not 1`);
    }
    const shape = x.shape.filter((_, i) => !axes.includes(i));
    return this.emit('Squeeze', [x, this.int64s(axes, `${nodeName}.axes`)], { dtype: x.dtype, shape }, { name: nodeName, exact: true });
  }

  /** Broadcasts x to a static shape, or to another value's runtime shape. */
  expand(x: Value, target: readonly number[] | Value, options?: OpOptions): Value {
    const nodeName = this.nodeName('Expand', options);
    this.own(x, 'expand');
    const targetShape = target instanceof Value ? target.shape : target;
    const shape = this.broadcastOrFail('expand', nodeName, x.shape, targetShape);
    const shapeInput = target instanceof Value ? this.shapeOf(target) : this.int64s(target, `${nodeName}.shape`);
    return this.emit('Expand', [x, shapeInput], { dtype: x.dtype, shape }, { name: nodeName, exact: true });
  }

  /** The runtime shape of x as int64 `[rank]` (ONNX Shape). */
  shapeOf(x: Value, options?: OpOptions): Value {
    this.own(x, 'shapeOf');
    return this.emit('Shape', [x], { dtype: 'int64', shape: [x.rank] }, options);
  }

  /** The runtime element count of x as an int64 scalar (ONNX Size). */
  sizeOf(x: Value, options?: OpOptions): Value {
    this.own(x, 'sizeOf');
    return this.emit('Size', [x], { dtype: 'int64', shape: [] }, options);
  }

  /** Zeros with x's dtype and runtime shape. */
  zerosLike(x: Value, options?: OpOptions): Value {
    this.own(x, 'zerosLike');
    const value = tensorLiteral(0, { dtype: x.dtype, shape: [1] });
    return this.emit('ConstantOfShape', [this.shapeOf(x)], { dtype: x.dtype, shape: x.shape }, { ...options, attributes: { value: attr.tensor(value) } });
  }

  /** ScatterND into a copy of `data`; `reduction: 'add'` accumulates duplicate indices. */
  scatterND(data: Value, indices: Value, updates: Value, options: OpOptions & { reduction?: 'none' | 'add' | 'mul' } = {}): Value {
    const nodeName = this.nodeName('ScatterND', options);
    this.own(data, 'scatterND');
    if (indices.dtype !== 'int64') this.fail('scatterND', nodeName, `indices ${indices} must be int64`, 'GRAPH_DTYPE');
    if (updates.dtype !== data.dtype) this.dtypeMismatch('scatterND', nodeName, data, updates);
    return this.emit(
      'ScatterND',
      [data, indices, updates],
      { dtype: data.dtype, shape: data.shape },
      {
        name: nodeName,
        exact: true,
        attributes: { reduction: attr.string(options.reduction ?? 'none') },
      },
    );
  }

  // ---- internals -------------------------------------------------------------------------

  private binary(method: string, opType: string, a: Operand, b: Operand, options: OpOptions | undefined, outDtype?: DType): Value {
    const nodeName = this.nodeName(opType, options);
    const [va, vb] = this.operands(a, b);
    this.own(va, method);
    this.own(vb, method);
    if (va.dtype !== vb.dtype) this.dtypeMismatch(method, nodeName, va, vb);
    const shape = this.broadcastOrFail(method, nodeName, va.shape, vb.shape);
    return this.emit(opType, [va, vb], { dtype: outDtype ?? va.dtype, shape }, { name: nodeName, exact: true });
  }

  private operands(a: Operand, b: Operand): [Value, Value] {
    if (typeof a === 'number' && typeof b === 'number') {
      throw new GraphError('binary op: at least one operand must be a graph Value; fold plain numbers in JavaScript', { code: 'GRAPH_INVALID' });
    }
    const va = typeof a === 'number' ? this.scalarLike(b as Value, a) : a;
    const vb = typeof b === 'number' ? this.scalarLike(va, b) : b;
    return [va, vb];
  }

  private unary(method: string, opType: string, x: Value, options: OpOptions | undefined, floatOnly = false): Value {
    const nodeName = this.nodeName(opType, options);
    this.own(x, method);
    if (floatOnly) this.requireFloat(method, x, { name: nodeName });
    return this.emit(opType, [x], { dtype: x.dtype, shape: x.shape }, { name: nodeName, exact: true });
  }

  private softmaxLike(method: string, opType: string, x: Value, options: OpOptions & { axis?: number }): Value {
    const nodeName = this.nodeName(opType, options);
    this.own(x, method);
    this.requireFloat(method, x, { name: nodeName });
    const axis = this.axisOrFail(method, nodeName, options.axis ?? -1, x);
    return this.emit(opType, [x], { dtype: x.dtype, shape: x.shape }, { name: nodeName, exact: true, attributes: { axis: attr.int(axis) } });
  }

  private reduce(method: string, opType: string, x: Value, options: OpOptions & { axes?: readonly number[]; keepdims?: boolean }): Value {
    const nodeName = this.nodeName(opType, options);
    this.own(x, method);
    const axes = (options.axes ?? x.shape.map((_, i) => i)).map((a) => this.axisOrFail(method, nodeName, a, x));
    if (new Set(axes).size !== axes.length) this.fail(method, nodeName, `axes [${options.axes?.join(',')}] repeat an axis`);
    const keepdims = options.keepdims ?? false;
    const shape = keepdims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    if (axes.length === 0) return this.emit('Identity', [x], { dtype: x.dtype, shape: x.shape }, { name: nodeName, exact: true });
    const sorted = [...axes].sort((p, q) => p - q);
    const keep = attr.int(keepdims ? 1 : 0);
    if (opType !== 'ReduceSum' && (this.domains.get('') ?? 18) < 18) {
      return this.emit(opType, [x], { dtype: x.dtype, shape }, { name: nodeName, exact: true, attributes: { keepdims: keep, axes: attr.ints(sorted) } });
    }
    return this.emit(
      opType,
      [x, this.int64s(sorted, `${nodeName}.axes`)],
      { dtype: x.dtype, shape },
      {
        name: nodeName,
        exact: true,
        attributes: { keepdims: keep },
      },
    );
  }

  private emit(
    opType: string,
    inputs: readonly (Value | undefined)[],
    output: { dtype: DType; shape: Shape },
    options: {
      name?: string;
      exact?: boolean;
      attributes?: Record<string, Attribute>;
      constant?: TensorLiteral;
      stopsGradient?: boolean;
      domain?: string;
    } = {},
  ): Value {
    return this.emitMany(opType, inputs, [output], options)[0];
  }

  private emitMany(
    opType: string,
    inputs: readonly (Value | undefined)[],
    outputs: readonly { dtype: DType; shape: Shape }[],
    options: {
      name?: string;
      exact?: boolean;
      attributes?: Record<string, Attribute>;
      constant?: TensorLiteral;
      stopsGradient?: boolean;
      domain?: string;
    },
  ): Value[] {
    for (const v of inputs) if (v !== undefined) this.own(v, opType);
    const base = options.exact === true && options.name !== undefined ? options.name : this.nodeName(opType, options);
    const name = this.uniqueName(base);
    const outputValues: Value[] = [];
    const node: Node = {
      name,
      opType,
      domain: options.domain ?? '',
      inputs: [...inputs],
      outputs: outputValues,
      attributes: options.attributes ?? {},
      ...(options.stopsGradient === true ? { stopsGradient: true } : {}),
    };
    outputs.forEach((o, i) => {
      const valueName = outputs.length === 1 ? name : this.uniqueName(`${name}:${i}`);
      outputValues.push(new Value(this, valueName, o.dtype, [...o.shape], node, options.constant));
    });
    this.nodes.push(node);
    return outputValues;
  }

  /** The (scoped) base name for a node; made unique when emitted. */
  private nodeName(opType: string, options: OpOptions | undefined): string {
    if (options?.name !== undefined) return [...this.scopes, options.name].join('/');
    const n = (this.counters.get(opType) ?? 0) + 1;
    this.counters.set(opType, n);
    return [...this.scopes, `${opType}_${n}`].join('/');
  }

  private uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.usedNames.has(name); i += 1) name = `${base}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  private claimName(name: string, what: string): void {
    if (this.usedNames.has(name)) {
      throw new GraphError(`${what} "${name}": the name is already used in graph "${this.name}"; pick a unique name`, {
        code: 'GRAPH_INVALID',
        context: { name },
      });
    }
    this.usedNames.add(name);
  }

  private own(v: Value, method: string): void {
    if (!(v instanceof Value) || v.graph !== this) {
      throw new GraphError(`${method}: ${String(v)} belongs to another graph; build every value with the same Graph`, {
        code: 'GRAPH_INVALID',
      });
    }
  }

  private requireFloat(method: string, x: Value, options: OpOptions | undefined): void {
    if (!FLOAT_DTYPES.has(x.dtype)) {
      this.fail(method, options?.name ?? method, `input ${x} must be float32 or float64; g.cast it first`, 'GRAPH_DTYPE');
    }
  }

  private requireDtype(method: string, x: Value, dtypes: readonly DType[], options: OpOptions | undefined): void {
    if (!dtypes.includes(x.dtype)) {
      this.fail(method, options?.name ?? method, `input ${x} must be ${dtypes.join(' or ')}`, 'GRAPH_DTYPE');
    }
  }

  private dtypeMismatch(method: string, nodeName: string, a: Value, b: Value): never {
    return this.fail(method, nodeName, `dtypes differ: ${a} vs ${b}; g.cast one of them`, 'GRAPH_DTYPE');
  }

  private broadcastOrFail(method: string, nodeName: string, a: Shape, b: Shape): Dim[] {
    const result = broadcastShapes(a, b);
    if ('reason' in result) {
      this.fail(method, nodeName, `shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast (${result.reason}); reshape or unsqueeze one operand`);
    }
    return result.shape;
  }

  private axisOrFail(method: string, nodeName: string, axis: number, x: Value): number {
    const normalized = normalizeAxis(axis, x.rank);
    if (normalized === undefined) this.fail(method, nodeName, `axis ${axis} is out of range for ${formatShape(x.shape)} (rank ${x.rank})`);
    return normalized as number;
  }

  private fail(method: string, nodeName: string, detail: string, code: GraphErrorCode = 'GRAPH_SHAPE'): never {
    throw new GraphError(`${method} "${nodeName}": ${detail}`, { code, context: { op: method, node: nodeName, graph: this.name } });
  }
}
