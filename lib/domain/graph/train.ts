import { gradients } from './autodiff.ts';
import { Graph, type DType, type Value } from './builder.ts';
import { GraphError } from './errors.ts';
import { formatShape, staticSize, type Shape } from './shape.ts';

export interface ParameterSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** Initial values (row-major, float32). */
  readonly init: Float32Array;
  /** Overrides the optimizer's decoupled weight decay for this parameter (biases usually 0). */
  readonly weightDecay?: number;
  /**
   * Overrides the optimizer's eps for this parameter. A large one makes Adam's step follow the
   * gradient's size where it is small instead of normalizing it away (see the heads' sparse layer).
   */
  readonly eps?: number;
  /**
   * Multiplies the learning rate of this parameter's Adam step (not of its decoupled decay). With
   * an `eps` well above √v, Adam's step is lr·m̂/eps, momentum SGD; the scale gives such a
   * parameter the rate SGD needs while the others keep Adam's.
   */
  readonly learningRateScale?: number;
}

export interface BatchInputSpec {
  readonly dtype: DType;
  /** Static except a leading symbolic batch dim, e.g. `['batch', 384]`. */
  readonly shape: Shape;
}

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export interface ForwardResult {
  /** One scalar per task, already the masked mean over labelled rows. */
  readonly losses: readonly Value[];
  /** Extra tensors to return from each step (predictions for metrics), as `out.<name>`. */
  readonly outputs?: Readonly<Record<string, Value>>;
}

export interface TrainingStepSpec {
  readonly parameters: readonly ParameterSpec[];
  readonly batch: Readonly<Record<string, BatchInputSpec>>;
  readonly forward: (g: Graph, params: Readonly<Record<string, Value>>, batch: Readonly<Record<string, Value>>) => ForwardResult;
  /** Task names in loss order; defaults to `task0…`. */
  readonly tasks?: readonly string[];
  readonly optimizer?: Partial<AdamWOptions>;
  /**
   * `lambda`: total = Σ λᵢ·Lᵢ. `uncertainty` (Kendall et al. 2018) adds a learned log-variance
   * sᵢ per task (parameter `taskLogVariance`): total = Σ λᵢ·(½e^(−sᵢ)·Lᵢ + ½sᵢ).
   */
  readonly taskWeighting?: 'lambda' | 'uncertainty';
  /** Rescales the gradients when their global L2 norm exceeds this. */
  readonly clipGradientNorm?: number;
  readonly name?: string;
}

/** The systematic names of a step graph's inputs and outputs. */
export const stepNames = {
  parameter: (name: string) => `p.${name}`,
  firstMoment: (name: string) => `m.${name}`,
  secondMoment: (name: string) => `v.${name}`,
  next: (inputName: string) => `${inputName}.next`,
  batch: (name: string) => `batch.${name}`,
  output: (name: string) => `out.${name}`,
  lambda: 'lambda',
  learningRate: 'lr',
  step: 'step',
  losses: 'losses',
  loss: 'loss',
  gradientNorm: 'gradNorm',
} as const;

export const UNCERTAINTY_PARAMETER = 'taskLogVariance';

export interface TrainingStep {
  /** ONNX bytes of the step graph. */
  readonly model: Uint8Array;
  /** Every trained parameter, including `taskLogVariance` under uncertainty weighting. */
  readonly parameters: readonly ParameterSpec[];
  readonly batch: Readonly<Record<string, BatchInputSpec>>;
  readonly tasks: readonly string[];
  readonly optimizer: AdamWOptions;
  /** Extra forward outputs (without the `out.` prefix). */
  readonly outputs: readonly string[];
}

/**
 * Builds one graph that does a whole training step: forward, per-task losses, the weighted
 * total, reverse-mode gradients and an AdamW update (decoupled weight decay, bias-corrected as
 * in PyTorch). Inputs: `p.<name>`, `m.<name>`, `v.<name>` per parameter, `batch.<name>`,
 * `lambda [tasks]`, `lr []` and `step []` (1 for the first step). Outputs: `<input>.next` for
 * every parameter and moment, `losses [tasks]`, `loss []`, `gradNorm []` and `out.<name>`.
 */
export function buildTrainingStep(spec: TrainingStepSpec): TrainingStep {
  const optimizer: AdamWOptions = { ...DEFAULT_ADAMW, ...spec.optimizer };
  validateOptimizer(optimizer);
  const g = new Graph({ name: spec.name ?? 'training-step' });

  const parameterSpecs = [...spec.parameters];
  const seen = new Set<string>();
  for (const p of parameterSpecs) {
    if (seen.has(p.name)) throw stepError(`parameter "${p.name}" is declared twice`, { parameter: p.name });
    seen.add(p.name);
    if (p.eps !== undefined && !(p.eps > 0)) throw stepError(`parameter "${p.name}": eps ${p.eps} must be > 0`, { parameter: p.name });
    if (p.learningRateScale !== undefined && !(p.learningRateScale > 0 && Number.isFinite(p.learningRateScale))) {
      throw stepError(`parameter "${p.name}": learningRateScale ${p.learningRateScale} must be a finite number > 0`, { parameter: p.name });
    }
    if (staticSize(p.shape) !== p.init.length) {
      throw stepError(`parameter "${p.name}": init has ${p.init.length} values but shape ${formatShape(p.shape)} holds ${staticSize(p.shape)}`, {
        parameter: p.name,
      });
    }
  }
  const params: Record<string, Value> = {};
  for (const p of parameterSpecs) params[p.name] = g.input(stepNames.parameter(p.name), 'float32', p.shape);
  const batch: Record<string, Value> = {};
  for (const [name, b] of Object.entries(spec.batch)) batch[name] = g.input(stepNames.batch(name), b.dtype, b.shape);

  const result = g.scope('forward', () => spec.forward(g, params, batch));
  const taskCount = result.losses.length;
  if (taskCount === 0) throw stepError('forward returned no losses; return one scalar loss per task', {});
  const tasks = spec.tasks ?? Array.from({ length: taskCount }, (_, i) => `task${i}`);
  if (tasks.length !== taskCount) {
    throw stepError(`forward returned ${taskCount} losses for ${tasks.length} tasks (${tasks.join(', ')}); return one loss per task, in task order`, {
      tasks,
    });
  }
  result.losses.forEach((loss, i) => {
    if (loss.dtype !== 'float32' || loss.rank !== 0) {
      throw stepError(`loss of task "${tasks[i]}" is ${loss}; each task loss must be a float32 scalar (reduce it, e.g. with maskedMean)`, {
        task: tasks[i],
      });
    }
  });

  const lambda = g.input(stepNames.lambda, 'float32', [taskCount]);
  const lr = g.input(stepNames.learningRate, 'float32', []);
  const step = g.input(stepNames.step, 'float32', []);

  const losses = g.concat(
    result.losses.map((l) => g.unsqueeze(l, { axes: [0] })),
    { axis: 0, name: stepNames.losses },
  );
  let weighted = g.mul(lambda, losses);
  if (spec.taskWeighting === 'uncertainty') {
    if (seen.has(UNCERTAINTY_PARAMETER)) throw stepError(`parameter name "${UNCERTAINTY_PARAMETER}" is reserved for uncertainty weighting`, {});
    const logVariance: ParameterSpec = { name: UNCERTAINTY_PARAMETER, shape: [taskCount], init: new Float32Array(taskCount), weightDecay: 0 };
    parameterSpecs.push(logVariance);
    const s = g.input(stepNames.parameter(logVariance.name), 'float32', logVariance.shape);
    params[logVariance.name] = s;
    weighted = g.mul(lambda, g.mul(g.add(g.mul(g.exp(g.neg(s)), losses), s), 0.5));
  }
  // Outputs are named by the ops that compute them, so no Identity copies sit before them.
  const total = g.reduceSum(weighted, { name: stepNames.loss });

  const wrt = parameterSpecs.map((p) => params[p.name]);
  let grads = gradients(g, total, wrt);

  const gradientNorm = g.sqrt(
    g.scope('optimizer', () => g.sum(grads.map((gr) => g.reduceSum(g.mul(gr, gr))))),
    { name: stepNames.gradientNorm },
  );
  if (spec.clipGradientNorm !== undefined) {
    if (!(spec.clipGradientNorm > 0)) throw stepError(`clipGradientNorm ${spec.clipGradientNorm} must be > 0`, {});
    const clip = spec.clipGradientNorm;
    const scale = g.scope('optimizer', () => g.min(g.div(clip, g.add(gradientNorm, 1e-6)), 1));
    grads = grads.map((gr) => g.mul(gr, scale));
  }

  const { beta1, beta2, eps } = optimizer;
  // Scalars shared by every parameter: bias corrections and the step size.
  const [stepSize, invSqrtBc2] = g.scope('adamw', () => {
    const bc1 = g.sub(1, g.pow(g.scalar(beta1), step), { name: 'biasCorrection1' });
    const bc2 = g.sub(1, g.pow(g.scalar(beta2), step), { name: 'biasCorrection2' });
    return [g.div(lr, bc1, { name: 'stepSize' }), g.div(1, g.sqrt(bc2), { name: 'invSqrtBiasCorrection2' })];
  });
  const decayFactors = new Map<number, Value>();
  parameterSpecs.forEach((p, i) => {
    const grad = grads[i];
    const param = params[p.name];
    const pName = stepNames.parameter(p.name);
    const mName = stepNames.firstMoment(p.name);
    const vName = stepNames.secondMoment(p.name);
    const m = g.input(mName, 'float32', p.shape);
    const v = g.input(vName, 'float32', p.shape);
    const [mScaled, gradScaled, vScaled, gradSquaredScaled] = g.scope(`adamw/${p.name}`, () => [
      g.mul(m, beta1),
      g.mul(grad, 1 - beta1),
      g.mul(v, beta2),
      g.mul(g.mul(grad, grad), 1 - beta2),
    ]);
    const mNext = g.add(mScaled, gradScaled, { name: stepNames.next(mName) });
    const vNext = g.add(vScaled, gradSquaredScaled, { name: stepNames.next(vName) });
    const [decayed, update] = g.scope(`adamw/${p.name}`, () => {
      const denom = g.add(g.mul(g.sqrt(vNext), invSqrtBc2), p.eps ?? eps);
      const decay = p.weightDecay ?? optimizer.weightDecay;
      let factor = decayFactors.get(decay);
      if (factor === undefined && decay !== 0) {
        factor = g.sub(1, g.mul(lr, decay));
        decayFactors.set(decay, factor);
      }
      const scaledStep = p.learningRateScale === undefined ? stepSize : g.mul(stepSize, p.learningRateScale);
      return [factor === undefined ? param : g.mul(param, factor), g.mul(g.div(mNext, denom), scaledStep)];
    });
    const pNext = g.sub(decayed, update, { name: stepNames.next(pName) });
    g.output(pNext, stepNames.next(pName));
    g.output(mNext, stepNames.next(mName));
    g.output(vNext, stepNames.next(vName));
  });

  g.output(losses, stepNames.losses);
  g.output(total, stepNames.loss);
  g.output(gradientNorm, stepNames.gradientNorm);
  const outputs = Object.entries(result.outputs ?? {});
  for (const [name, value] of outputs) g.output(value, stepNames.output(name));

  const model = g.toModel({
    name: spec.name ?? 'training-step',
    metadata: { kind: 'training-step', tasks: JSON.stringify(tasks), optimizer: JSON.stringify(optimizer) },
  });
  return { model, parameters: parameterSpecs, batch: spec.batch, tasks, optimizer, outputs: outputs.map(([n]) => n) };
}

function validateOptimizer(o: AdamWOptions): void {
  const bad = (field: string, value: number, rule: string) => stepError(`optimizer.${field} = ${value} ${rule}`, { field, value });
  if (!(o.beta1 >= 0 && o.beta1 < 1)) throw bad('beta1', o.beta1, 'must be in [0, 1)');
  if (!(o.beta2 >= 0 && o.beta2 < 1)) throw bad('beta2', o.beta2, 'must be in [0, 1)');
  if (!(o.eps > 0)) throw bad('eps', o.eps, 'must be > 0');
  if (!(o.weightDecay >= 0)) throw bad('weightDecay', o.weightDecay, 'must be ≥ 0');
}

function stepError(detail: string, context: Record<string, unknown>): GraphError {
  return new GraphError(`buildTrainingStep: ${detail}`, { code: 'GRAPH_TRAINING', context });
}
