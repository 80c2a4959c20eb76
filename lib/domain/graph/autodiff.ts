import { FLOAT_DTYPES, type Graph, type Node, type Value } from './builder.ts';
import { GraphError } from './errors.ts';
import { formatShape, isStatic, sameShape, staticSize, type Shape } from './shape.ts';

/**
 * A reverse-mode rule: given the node and the gradients of its outputs (undefined for outputs
 * the loss does not depend on), return the gradient of each input, or undefined where
 * `needs[i]` is false or the input is not differentiable. Every returned gradient must have
 * exactly its input's static shape.
 */
export type GradientRule = (ctx: { g: Graph; node: Node; dOut: readonly (Value | undefined)[]; needs: readonly boolean[] }) => (Value | undefined)[];

/**
 * Emits the gradients of a scalar `loss` with respect to `wrt` into the same graph. Only nodes
 * on a path from some `wrt` to the loss are differentiated; a value used several times gets
 * the sum of its gradients. A parameter the loss does not depend on is an error unless
 * `allowUnused`, in which case its gradient is zeros.
 */
export function gradients(g: Graph, loss: Value, wrt: readonly Value[], options: { allowUnused?: boolean } = {}): Value[] {
  if (staticSize(loss.shape) !== 1) {
    throw new GraphError(`gradients: loss ${loss} must hold exactly one element; reduce it first (g.reduceSum / g.reduceMean)`, {
      code: 'GRAPH_GRADIENT',
      context: { loss: loss.name, shape: loss.shape },
    });
  }
  for (const w of [loss, ...wrt]) {
    if (w.graph !== g) {
      throw new GraphError(`gradients: ${w} belongs to another graph`, { code: 'GRAPH_GRADIENT' });
    }
  }
  for (const w of wrt) {
    if (!FLOAT_DTYPES.has(w.dtype)) {
      throw new GraphError(`gradients: cannot differentiate with respect to ${w}; only float values have gradients`, {
        code: 'GRAPH_GRADIENT',
        context: { value: w.name },
      });
    }
  }

  // Values that depend on some wrt (forward sweep) and that the loss depends on (backward sweep).
  const nodes = [...g.nodes];
  const dependsOnWrt = new Set<Value>(wrt);
  for (const node of nodes) {
    if (node.stopsGradient === true) continue;
    if (node.inputs.some((v) => v !== undefined && dependsOnWrt.has(v))) {
      for (const out of node.outputs) if (FLOAT_DTYPES.has(out.dtype)) dependsOnWrt.add(out);
    }
  }
  const lossDependsOn = new Set<Value>([loss]);
  for (let i = nodes.length - 1; i >= 0; i -= 1) {
    const node = nodes[i];
    if (node.outputs.some((v) => lossDependsOn.has(v))) {
      for (const v of node.inputs) if (v !== undefined) lossDependsOn.add(v);
    }
  }
  const onPath = (v: Value | undefined): boolean => v !== undefined && dependsOnWrt.has(v) && lossDependsOn.has(v);

  const pending = new Map<Value, Value[]>();
  const accumulate = (v: Value, grad: Value, node: Node): void => {
    if (grad.dtype !== v.dtype || !sameShape(grad.shape, v.shape)) {
      throw new GraphError(
        `gradients: the ${node.opType} rule for node "${node.name}" produced ${grad.dtype}${formatShape(grad.shape)} for input ${v}; a gradient must match its input`,
        { code: 'GRAPH_GRADIENT', context: { node: node.name, op: node.opType } },
      );
    }
    const list = pending.get(v);
    if (list === undefined) pending.set(v, [grad]);
    else list.push(grad);
  };
  const total = (v: Value): Value | undefined => {
    const list = pending.get(v);
    if (list === undefined) return undefined;
    if (list.length === 1) return list[0];
    const summed = list.length === 2 ? g.add(list[0], list[1]) : g.sum(list);
    pending.set(v, [summed]);
    return summed;
  };

  g.scope('grad', () => {
    if (!onPath(loss)) return;
    const seed = g.constant(new Array(staticSize(loss.shape)).fill(1), { dtype: loss.dtype, shape: loss.shape as number[], name: 'seed' });
    pending.set(loss, [seed]);
    for (let i = nodes.length - 1; i >= 0; i -= 1) {
      const node = nodes[i];
      if (node.stopsGradient === true) continue;
      const needs = node.inputs.map(onPath);
      if (!needs.some(Boolean)) continue;
      const dOut = node.outputs.map(total);
      if (dOut.every((d) => d === undefined)) continue;
      const rule = node.domain === '' ? GRADIENT_RULES[node.opType] : undefined;
      if (rule === undefined) {
        throw new GraphError(
          `gradients: no gradient rule for ${node.domain === '' ? '' : `${node.domain}.`}${node.opType} (node "${node.name}"); keep it off the path from the parameters to the loss, wrap its input in g.stopGradient, or add a rule to GRADIENT_RULES`,
          { code: 'GRAPH_NO_GRADIENT_RULE', context: { node: node.name, op: node.opType, domain: node.domain } },
        );
      }
      const grads = g.scope(node.name, () => rule({ g, node, dOut, needs }));
      node.inputs.forEach((input, k) => {
        const grad = grads[k];
        if (input !== undefined && needs[k] && grad !== undefined) accumulate(input, grad, node);
      });
    }
  });

  return wrt.map((w) => {
    const grad = total(w);
    if (grad !== undefined) return grad;
    if (options.allowUnused === true) return g.zerosLike(w, { name: `grad/${w.name}.zeros` });
    throw new GraphError(`gradients: the loss ${loss.name} does not depend on ${w}; remove it from wrt or pass allowUnused: true`, {
      code: 'GRAPH_GRADIENT',
      context: { value: w.name, loss: loss.name },
    });
  });
}

/** Sums a broadcast gradient back to `shape`: over leading extra axes and axes where `shape` has 1. */
export function sumToShape(g: Graph, grad: Value, shape: Shape): Value {
  if (sameShape(grad.shape, shape)) return grad;
  const lead = grad.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i += 1) {
    if (i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1)) axes.push(i);
  }
  const reduced = axes.length === 0 ? grad : g.reduceSum(grad, { axes, keepdims: true });
  const leading = Array.from({ length: lead }, (_, i) => i);
  return leading.length === 0 ? reduced : g.squeeze(reduced, { axes: leading });
}

function constantInts(v: Value | undefined, what: string, node: Node): number[] {
  if (v?.constant === undefined) {
    throw new GraphError(`gradients: ${node.opType} node "${node.name}" needs constant ${what} to be differentiated`, {
      code: 'GRAPH_GRADIENT',
      context: { node: node.name },
    });
  }
  return Array.from(v.constant.data as BigInt64Array, Number);
}

/** Reduce axes: an input from opset 18 (ReduceSum from 13), an attribute before. */
function reduceAxes(node: Node): number[] {
  const a = node.attributes.axes;
  return a?.type === 'ints' ? [...a.value] : constantInts(node.inputs[1], 'axes', node);
}

function intAttribute(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a !== undefined && (a.type === 'int' || a.type === 'float') ? a.value : fallback;
}

function transposeLastTwo(g: Graph, x: Value): Value {
  const perm = x.shape.map((_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return g.transpose(x, { perm });
}

/** Expands a reduced gradient (keepdims or not) back over the reduced axes of `x`. */
function unreduce(g: Graph, node: Node, dY: Value): Value {
  const x = node.inputs[0] as Value;
  const axes = reduceAxes(node);
  const keepdims = intAttribute(node, 'keepdims', 1) === 1;
  const kept = keepdims ? dY : g.unsqueeze(dY, { axes });
  return g.expand(kept, isStatic(x.shape) ? [...x.shape] : x);
}

const unary =
  (rule: (g: Graph, dY: Value, x: Value, y: Value) => Value): GradientRule =>
  ({ g, node, dOut }) => [rule(g, dOut[0] as Value, node.inputs[0] as Value, node.outputs[0])];

/** Min/Max: the selected operand gets the gradient; exact ties split it evenly (as in JAX). */
const minMax =
  (selectA: 'greater' | 'less'): GradientRule =>
  ({ g, node, dOut, needs }) => {
    const [a, b] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    const wins = g.cast(g[selectA](a, b), a.dtype);
    const ties = g.cast(g.equal(a, b), a.dtype);
    const weightA = g.add(wins, g.mul(ties, 0.5));
    return [needs[0] ? sumToShape(g, g.mul(dY, weightA), a.shape) : undefined, needs[1] ? sumToShape(g, g.mul(dY, g.sub(1, weightA)), b.shape) : undefined];
  };

/** One rule per differentiable ONNX op (default domain). */
export const GRADIENT_RULES: Readonly<Record<string, GradientRule>> = {
  Identity: unary((_g, dY) => dY),
  Neg: unary((g, dY) => g.neg(dY)),
  Exp: unary((g, dY, _x, y) => g.mul(dY, y)),
  Log: unary((g, dY, x) => g.div(dY, x)),
  Sqrt: unary((g, dY, _x, y) => g.div(g.mul(dY, 0.5), y)),
  Abs: unary((g, dY, x) => g.mul(dY, g.sign(x))),
  Relu: unary((g, dY, x) => g.where(g.greater(x, 0), dY, 0)),
  Tanh: unary((g, dY, _x, y) => g.mul(dY, g.sub(1, g.mul(y, y)))),
  Sigmoid: unary((g, dY, _x, y) => g.mul(dY, g.mul(y, g.sub(1, y)))),
  Cast: ({ g, node, dOut }) => {
    const x = node.inputs[0] as Value;
    return [FLOAT_DTYPES.has(x.dtype) ? g.cast(dOut[0] as Value, x.dtype) : undefined];
  },

  Add: ({ g, node, dOut, needs }) => {
    const [a, b] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    return [needs[0] ? sumToShape(g, dY, a.shape) : undefined, needs[1] ? sumToShape(g, dY, b.shape) : undefined];
  },
  Sub: ({ g, node, dOut, needs }) => {
    const [a, b] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    return [needs[0] ? sumToShape(g, dY, a.shape) : undefined, needs[1] ? sumToShape(g, g.neg(dY), b.shape) : undefined];
  },
  Mul: ({ g, node, dOut, needs }) => {
    const [a, b] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    return [needs[0] ? sumToShape(g, g.mul(dY, b), a.shape) : undefined, needs[1] ? sumToShape(g, g.mul(dY, a), b.shape) : undefined];
  },
  Div: ({ g, node, dOut, needs }) => {
    const [a, b] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    const y = node.outputs[0];
    return [needs[0] ? sumToShape(g, g.div(dY, b), a.shape) : undefined, needs[1] ? sumToShape(g, g.neg(g.div(g.mul(dY, y), b)), b.shape) : undefined];
  },
  Pow: ({ g, node, dOut, needs }) => {
    const [a, b] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    const y = node.outputs[0];
    return [
      needs[0] ? sumToShape(g, g.mul(dY, g.mul(b, g.pow(a, g.sub(b, 1)))), a.shape) : undefined,
      needs[1] ? sumToShape(g, g.mul(dY, g.mul(y, g.log(a))), b.shape) : undefined,
    ];
  },
  Max: minMax('greater'),
  Min: minMax('less'),
  Sum: ({ g, node, dOut, needs }) => node.inputs.map((x, i) => (needs[i] && x !== undefined ? sumToShape(g, dOut[0] as Value, x.shape) : undefined)),

  MatMul: ({ g, node, dOut, needs }) => {
    const [a, b] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    return [
      needs[0] ? sumToShape(g, g.matmul(dY, transposeLastTwo(g, b)), a.shape) : undefined,
      needs[1] ? sumToShape(g, g.matmul(transposeLastTwo(g, a), dY), b.shape) : undefined,
    ];
  },
  Gemm: ({ g, node, dOut, needs }) => {
    const [a, b, c] = node.inputs;
    const dY = dOut[0] as Value;
    const transA = intAttribute(node, 'transA', 0) === 1;
    const transB = intAttribute(node, 'transB', 0) === 1;
    const alpha = intAttribute(node, 'alpha', 1);
    const beta = intAttribute(node, 'beta', 1);
    const A = a as Value;
    const B = b as Value;
    const dA = !needs[0]
      ? undefined
      : transA
        ? g.gemm(B, dY, undefined, { transA: transB, transB: true, alpha })
        : g.gemm(dY, B, undefined, { transB: !transB, alpha });
    const dB = !needs[1]
      ? undefined
      : transB
        ? g.gemm(dY, A, undefined, { transA: true, transB: transA, alpha })
        : g.gemm(A, dY, undefined, { transA: !transA, alpha });
    const dC = needs[2] && c !== undefined ? sumToShape(g, beta === 1 ? dY : g.mul(dY, beta), c.shape) : undefined;
    return [dA, dB, dC];
  },

  Softmax: ({ g, node, dOut }) => {
    const y = node.outputs[0];
    const dY = dOut[0] as Value;
    const axis = intAttribute(node, 'axis', -1);
    const dot = g.reduceSum(g.mul(dY, y), { axes: [axis], keepdims: true });
    return [g.mul(y, g.sub(dY, dot))];
  },
  LogSoftmax: ({ g, node, dOut }) => {
    const y = node.outputs[0];
    const dY = dOut[0] as Value;
    const axis = intAttribute(node, 'axis', -1);
    return [g.sub(dY, g.mul(g.exp(y), g.reduceSum(dY, { axes: [axis], keepdims: true })))];
  },

  ReduceSum: ({ g, node, dOut }) => [unreduce(g, node, dOut[0] as Value)],
  ReduceMean: ({ g, node, dOut }) => {
    const x = node.inputs[0] as Value;
    const y = node.outputs[0];
    const expanded = unreduce(g, node, dOut[0] as Value);
    const reduced = staticSize(reduceAxes(node).map((a) => x.shape[a]));
    const count = reduced !== undefined ? g.scalarLike(x, reduced) : g.cast(g.div(g.sizeOf(x), g.sizeOf(y)), x.dtype);
    return [g.div(expanded, count)];
  },

  Transpose: ({ g, node, dOut }) => {
    const permAttr = node.attributes.perm;
    const perm = permAttr?.type === 'ints' ? permAttr.value : [];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(dOut[0] as Value, { perm: inverse })];
  },
  Reshape: ({ g, node, dOut }) => [g.reshapeLike(dOut[0] as Value, node.inputs[0] as Value), undefined],
  Unsqueeze: ({ g, node, dOut }) => [g.reshapeLike(dOut[0] as Value, node.inputs[0] as Value), undefined],
  Squeeze: ({ g, node, dOut }) => [g.reshapeLike(dOut[0] as Value, node.inputs[0] as Value), undefined],
  Expand: ({ g, node, dOut }) => [sumToShape(g, dOut[0] as Value, (node.inputs[0] as Value).shape), undefined],

  Concat: ({ g, node, dOut, needs }) => {
    const axis = intAttribute(node, 'axis', 0);
    const sizes = node.inputs.map((v) => (v as Value).shape[axis]);
    if (!sizes.every((d) => typeof d === 'number')) {
      throw new GraphError(
        `gradients: Concat node "${node.name}" joins symbolic dims [${sizes.join(',')}] along axis ${axis}; differentiate only concats along static axes`,
        { code: 'GRAPH_GRADIENT', context: { node: node.name } },
      );
    }
    const parts = sizes.length === 1 ? [dOut[0] as Value] : g.split(dOut[0] as Value, { axis, sizes: sizes as number[] });
    return parts.map((p, i) => (needs[i] ? p : undefined));
  },
  Split: ({ g, node, dOut }) => {
    const axis = intAttribute(node, 'axis', 0);
    const parts = node.outputs.map((out, i) => dOut[i] ?? g.zerosLike(out));
    return [parts.length === 1 ? parts[0] : g.concat(parts, { axis }), undefined];
  },
  Gather: ({ g, node, dOut }) => {
    // Move the gathered axis to the front, scatter-add the rows, move it back.
    const [data, indices] = node.inputs as [Value, Value];
    const dY = dOut[0] as Value;
    const axis = intAttribute(node, 'axis', 0);
    const q = indices.rank;
    const r = data.rank;
    const dataPerm = [axis, ...Array.from({ length: r }, (_, i) => i).filter((i) => i !== axis)];
    const dYPerm = [
      ...Array.from({ length: q }, (_, i) => axis + i),
      ...Array.from({ length: axis }, (_, i) => i),
      ...Array.from({ length: r - axis - 1 }, (_, i) => axis + q + i),
    ];
    const front = axis === 0 ? data : g.transpose(data, { perm: dataPerm });
    const updates = axis === 0 ? dY : g.transpose(dY, { perm: dYPerm });
    const idx = g.unsqueeze(indices.dtype === 'int64' ? indices : g.cast(indices, 'int64'), { axes: [-1] });
    const scattered = g.scatterND(g.zerosLike(front), idx, updates, { reduction: 'add' });
    const inverse = dataPerm.map((_, i) => dataPerm.indexOf(i));
    return [axis === 0 ? scattered : g.transpose(scattered, { perm: inverse }), undefined];
  },
  Where: ({ g, node, dOut, needs }) => {
    const [condition, a, b] = node.inputs as [Value, Value, Value];
    const dY = dOut[0] as Value;
    return [
      undefined,
      needs[1] ? sumToShape(g, g.where(condition, dY, 0), a.shape) : undefined,
      needs[2] ? sumToShape(g, g.where(condition, 0, dY), b.shape) : undefined,
    ];
  },
};

/** The ops `gradients` can differentiate. */
export function differentiableOps(): string[] {
  return Object.keys(GRADIENT_RULES).sort();
}
