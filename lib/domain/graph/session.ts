import * as ort from 'onnxruntime-node';

import { GraphError } from './errors.ts';
import { formatShape } from './shape.ts';
import { stepNames, type TrainingStep } from './train.ts';

type NumericArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** A batch input: an ORT tensor or a typed array with its dims. */
export type BatchFeed = ort.Tensor | { readonly data: NumericArray; readonly dims: readonly number[] };

export interface TrainingState {
  /** Steps taken so far; the next step uses step + 1 for bias correction. */
  readonly step: number;
  readonly parameters: Readonly<Record<string, Float32Array>>;
  readonly firstMoments: Readonly<Record<string, Float32Array>>;
  readonly secondMoments: Readonly<Record<string, Float32Array>>;
}

export interface TrainingSessionOptions {
  readonly intraOpNumThreads?: number;
  readonly interOpNumThreads?: number;
  /** Chosen explicitly: ORT does not fall back from CUDA to CPU. Default `['cpu']`. */
  readonly executionProviders?: ort.InferenceSession.SessionOptions['executionProviders'];
  readonly graphOptimizationLevel?: ort.InferenceSession.SessionOptions['graphOptimizationLevel'];
  /**
   * Whether idle intra-op threads spin (ORT's default). Turn it off when the CPUs are shared:
   * spinning threads then steal time from the ones doing work.
   */
  readonly allowSpinning?: boolean;
  /** Resume from a checkpoint instead of the parameters' init values and zero moments. */
  readonly initialState?: TrainingState;
  /** Refuse a step whose loss is NaN or infinite, keeping the last good state. Default true. */
  readonly nanGuard?: boolean;
}

export interface StepResult {
  readonly losses: Float32Array;
  readonly loss: number;
  readonly gradientNorm: number;
  /** The step graph's extra forward outputs, by name without the `out.` prefix. */
  readonly outputs: Readonly<Record<string, ort.Tensor>>;
}

/**
 * Owns an ORT session for a training-step graph and the optimizer state as ORT tensors. Each
 * step feeds the state tensors and adopts the `.next` outputs as the new state without copying;
 * a refused (NaN) step simply does not adopt them, so the last good state stays.
 *
 * Why not preallocated output tensors: onnxruntime-node 1.30 writes into a preallocated fetch
 * and then copies it again into a fresh JS tensor, which is slower than letting ORT allocate the
 * outputs. Scalars and λ are reused in place.
 */
export class TrainingSession {
  private stepCount: number;
  private readonly current: Record<string, ort.Tensor> = {};
  private readonly feeds: Record<string, ort.Tensor> = {};
  private readonly stateInputs: readonly string[];
  private readonly lambda: Float32Array;
  private readonly learningRate = new Float32Array(1);
  private readonly stepValue = new Float32Array(1);

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly definition: TrainingStep,
    private readonly nanGuard: boolean,
    initial: TrainingState | undefined,
  ) {
    const names: string[] = [];
    for (const p of definition.parameters) {
      const init = {
        [stepNames.parameter(p.name)]: initialValues(initial?.parameters, p.name, p.init, 'parameters'),
        [stepNames.firstMoment(p.name)]: initialValues(initial?.firstMoments, p.name, new Float32Array(p.init.length), 'firstMoments'),
        [stepNames.secondMoment(p.name)]: initialValues(initial?.secondMoments, p.name, new Float32Array(p.init.length), 'secondMoments'),
      };
      for (const [name, values] of Object.entries(init)) {
        if (values.length !== p.init.length) {
          throw new GraphError(
            `TrainingSession: state "${name}" has ${values.length} values but parameter "${p.name}" ${formatShape(p.shape)} needs ${p.init.length}`,
            {
              code: 'GRAPH_TRAINING',
              context: { name },
            },
          );
        }
        names.push(name);
        this.current[name] = new ort.Tensor('float32', Float32Array.from(values), p.shape);
      }
    }
    this.stateInputs = names;
    this.stepCount = initial?.step ?? 0;
    const taskCount = definition.tasks.length;
    this.lambda = new Float32Array(taskCount);
    this.feeds[stepNames.lambda] = new ort.Tensor('float32', this.lambda, [taskCount]);
    this.feeds[stepNames.learningRate] = new ort.Tensor('float32', this.learningRate, []);
    this.feeds[stepNames.step] = new ort.Tensor('float32', this.stepValue, []);
  }

  static async create(definition: TrainingStep, options: TrainingSessionOptions = {}): Promise<TrainingSession> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(definition.model, {
        graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
        executionProviders: options.executionProviders ?? ['cpu'],
        ...(options.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: options.intraOpNumThreads }),
        ...(options.interOpNumThreads === undefined ? {} : { interOpNumThreads: options.interOpNumThreads }),
        ...(options.allowSpinning === undefined ? {} : { extra: { session: { intra_op: { allow_spinning: options.allowSpinning ? '1' : '0' } } } }),
      });
    } catch (cause) {
      throw new GraphError(`TrainingSession: ONNX Runtime refused the training-step graph (${String(cause)}); check the execution providers and the ops used`, {
        code: 'GRAPH_TRAINING',
        cause,
      });
    }
    return new TrainingSession(session, definition, options.nanGuard ?? true, options.initialState);
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.stepCount;
  }

  /** One optimizer step on a batch: one `session.run`. */
  async step(batch: Readonly<Record<string, BatchFeed>>, options: { lambda: ArrayLike<number>; learningRate: number }): Promise<StepResult> {
    const { lambda, learningRate } = options;
    if (lambda.length !== this.lambda.length) {
      throw new GraphError(
        `TrainingSession.step: lambda has ${lambda.length} weights for ${this.lambda.length} tasks (${this.definition.tasks.join(', ')}); pass one weight per task`,
        {
          code: 'GRAPH_TRAINING',
          context: { lambda: Array.from(lambda) },
        },
      );
    }
    if (!Number.isFinite(learningRate) || learningRate < 0) {
      throw new GraphError(`TrainingSession.step: learningRate ${learningRate} must be a finite number ≥ 0`, { code: 'GRAPH_TRAINING' });
    }
    this.lambda.set(lambda);
    this.learningRate[0] = learningRate;
    this.stepValue[0] = this.stepCount + 1;
    this.bindBatch(batch);
    for (const name of this.stateInputs) this.feeds[name] = this.current[name];

    const results = await this.session.run(this.feeds);

    const losses = results[stepNames.losses].data as Float32Array;
    const loss = (results[stepNames.loss].data as Float32Array)[0];
    if (this.nanGuard && !Number.isFinite(loss)) {
      throw new GraphError(
        `TrainingSession.step: step ${this.stepCount + 1} produced loss ${loss} (task losses ${Array.from(losses).join(', ')}); the state was kept at step ${this.stepCount}. Lower the learning rate or check the batch for NaN features`,
        { code: 'GRAPH_TRAINING', context: { step: this.stepCount + 1, losses: Array.from(losses) } },
      );
    }
    for (const name of this.stateInputs) this.current[name] = results[stepNames.next(name)] as ort.Tensor;
    this.stepCount += 1;
    const outputs: Record<string, ort.Tensor> = {};
    for (const name of this.definition.outputs) outputs[name] = results[stepNames.output(name)] as ort.Tensor;
    const gradientNorm = (results[stepNames.gradientNorm].data as Float32Array)[0];
    return { losses, loss, gradientNorm, outputs };
  }

  /** Copies of the current parameters. */
  parameters(): Record<string, Float32Array> {
    return Object.fromEntries(this.definition.parameters.map((p) => [p.name, this.copy(stepNames.parameter(p.name))]));
  }

  /**
   * The live parameter tensors, without copying, to feed an evaluation session between steps.
   * They stay valid after later steps (each step adopts new tensors); do not write into them.
   */
  parameterTensors(): Record<string, ort.Tensor> {
    return Object.fromEntries(this.definition.parameters.map((p) => [p.name, this.current[stepNames.parameter(p.name)]]));
  }

  /** A checkpoint: parameters, moments and the step count (copies). */
  state(): TrainingState {
    const pick = (key: (name: string) => string) => Object.fromEntries(this.definition.parameters.map((p) => [p.name, this.copy(key(p.name))]));
    return {
      step: this.stepCount,
      parameters: pick(stepNames.parameter),
      firstMoments: pick(stepNames.firstMoment),
      secondMoments: pick(stepNames.secondMoment),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private copy(name: string): Float32Array {
    return Float32Array.from(this.current[name].data as Float32Array);
  }

  private bindBatch(batch: Readonly<Record<string, BatchFeed>>): void {
    for (const [name, spec] of Object.entries(this.definition.batch)) {
      const feed = batch[name];
      if (feed === undefined) {
        throw new GraphError(
          `TrainingSession.step: batch input "${name}" ${spec.dtype}${formatShape(spec.shape)} is missing; batch has ${Object.keys(batch).join(', ') || 'nothing'}`,
          {
            code: 'GRAPH_TRAINING',
            context: { input: name },
          },
        );
      }
      const tensor = feed instanceof ort.Tensor ? feed : new ort.Tensor(feed.data, [...feed.dims]);
      const dims = tensor.dims;
      const mismatch = tensor.type !== spec.dtype || dims.length !== spec.shape.length || spec.shape.some((d, i) => typeof d === 'number' && d !== dims[i]);
      if (mismatch) {
        throw new GraphError(
          `TrainingSession.step: batch input "${name}" is ${tensor.type}${formatShape(dims)} but the step graph expects ${spec.dtype}${formatShape(spec.shape)}`,
          {
            code: 'GRAPH_TRAINING',
            context: { input: name, dims, expected: spec.shape },
          },
        );
      }
      this.feeds[stepNames.batch(name)] = tensor;
    }
    for (const name of Object.keys(batch)) {
      if (!(name in this.definition.batch)) {
        throw new GraphError(`TrainingSession.step: batch has unknown input "${name}"; the step graph takes ${Object.keys(this.definition.batch).join(', ')}`, {
          code: 'GRAPH_TRAINING',
          context: { input: name },
        });
      }
    }
  }
}

function initialValues(source: Readonly<Record<string, Float32Array>> | undefined, name: string, fallback: Float32Array, field: string): Float32Array {
  if (source === undefined) return fallback;
  const values = source[name];
  if (values === undefined) {
    throw new GraphError(`TrainingSession: initialState.${field} has no "${name}"; pass a state from TrainingSession.state()`, {
      code: 'GRAPH_TRAINING',
      context: { field, name },
    });
  }
  return values;
}
