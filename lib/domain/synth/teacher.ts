import { Random } from '#lib/domain/random/index.ts';

export type SynthTaskType = 'binary' | 'multiclass' | 'regression';

/** A task as the rest of agentflow describes it (the shape `lib/domain/shards` stores in its metadata). */
export interface GeneratedTask {
  name: string;
  type: SynthTaskType;
  /** Class names, multiclass only; labels are indices into this list. */
  classes?: string[];
}

export interface TeacherHead {
  /** 1 for binary and regression, the class count for multiclass. */
  outputs: number;
  /** outputs × hidden, row-major, already scaled by the calibration. */
  weights: Float64Array;
  bias: Float64Array;
}

/** Spread of the teacher's outputs on standard-normal inputs, set by calibration. */
export const TEACHER_OUTPUT_STD: Readonly<Record<SynthTaskType, number>> = {
  // Logit std 4 gives a Bayes-optimal AUC around 0.92 with labels drawn as Bernoulli(sigmoid).
  binary: 4,
  multiclass: 3,
  regression: 1,
};

/**
 * The network that generated the labels: x → h = tanh(W x + b) (shared by every task) → one
 * linear head per task. Heads are mixtures of a shared direction and a task's own direction in
 * hidden space, cos φ · shared + sin φ · own with φ = conflict · π/2, so at conflict 0 all tasks
 * want the same thing and at conflict 1 their heads are orthogonal while still reading the same
 * hidden features — which is what makes training them together pay off.
 */
export class Teacher {
  constructor(
    readonly dim: number,
    readonly hidden: number,
    /** hidden × dim, row-major. */
    readonly inputWeights: Float64Array,
    readonly inputBias: Float64Array,
    readonly heads: Readonly<Record<string, TeacherHead>>,
  ) {}

  /** Hidden activations for rows × dim features, as rows × hidden. */
  hiddenOf(features: Float32Array | Float64Array): Float64Array {
    const { dim, hidden, inputWeights, inputBias } = this;
    const rows = features.length / dim;
    const out = new Float64Array(rows * hidden);
    for (let r = 0; r < rows; r++) {
      const x = r * dim;
      for (let j = 0; j < hidden; j++) {
        let sum = inputBias[j];
        const w = j * dim;
        for (let d = 0; d < dim; d++) sum += inputWeights[w + d] * features[x + d];
        out[r * hidden + j] = Math.tanh(sum);
      }
    }
    return out;
  }

  /**
   * The teacher's outputs per task: logits for binary (rows) and multiclass (rows × classes,
   * row-major), the noise-free target for regression (rows).
   */
  score(features: Float32Array | Float64Array): Record<string, Float32Array> {
    return this.scoreHidden(this.hiddenOf(features));
  }

  scoreHidden(h: Float64Array): Record<string, Float32Array> {
    const rows = h.length / this.hidden;
    const result: Record<string, Float32Array> = {};
    for (const [name, head] of Object.entries(this.heads)) {
      const out = new Float32Array(rows * head.outputs);
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < head.outputs; k++) {
          let sum = head.bias[k];
          for (let j = 0; j < this.hidden; j++) sum += head.weights[k * this.hidden + j] * h[r * this.hidden + j];
          out[r * head.outputs + k] = sum;
        }
      }
      result[name] = out;
    }
    return result;
  }
}

function randomUnitVectors(rng: Random, count: number, size: number): Float64Array[] {
  const vectors: Float64Array[] = [];
  for (let i = 0; i < count; i++) {
    const v = Float64Array.from({ length: size }, () => rng.normal());
    // Gram–Schmidt while there is room, so that heads are exactly orthogonal at conflict 1; past
    // `size` vectors, random directions in many dimensions are nearly orthogonal anyway.
    if (i < size) {
      for (const u of vectors) {
        let dot = 0;
        for (let j = 0; j < size; j++) dot += u[j] * v[j];
        for (let j = 0; j < size; j++) v[j] -= dot * u[j];
      }
    }
    let norm = 0;
    for (let j = 0; j < size; j++) norm += v[j] * v[j];
    norm = Math.sqrt(norm);
    for (let j = 0; j < size; j++) v[j] /= norm;
    vectors.push(v);
  }
  return vectors;
}

export function outputsOf(task: GeneratedTask): number {
  return task.type === 'multiclass' ? task.classes!.length : 1;
}

/**
 * Draws the teacher's weights, then calibrates each head's scale and offset on a fixed sample of
 * standard-normal inputs (not on the generated rows), so the teacher for a seed does not depend
 * on how many rows are asked for.
 */
export function buildTeacher(options: {
  dim: number;
  hidden: number;
  tasks: readonly GeneratedTask[];
  conflict: number;
  structureRng: Random;
  calibrationRng: Random;
  calibrationRows?: number;
}): Teacher {
  const { dim, hidden, tasks, conflict, structureRng: rng, calibrationRng } = options;
  const inputWeights = Float64Array.from({ length: hidden * dim }, () => rng.normal() / Math.sqrt(dim));
  const inputBias = Float64Array.from({ length: hidden }, () => 0.5 * rng.normal());

  const sharedCount = Math.max(...tasks.map(outputsOf));
  const ownCount = tasks.reduce((n, t) => n + outputsOf(t), 0);
  const directions = randomUnitVectors(rng, sharedCount + ownCount, hidden);
  const shared = directions.slice(0, sharedCount);
  let nextOwn = sharedCount;
  const phi = (conflict * Math.PI) / 2;

  const rawHeads: Record<string, TeacherHead> = {};
  for (const task of tasks) {
    const outputs = outputsOf(task);
    const weights = new Float64Array(outputs * hidden);
    for (let k = 0; k < outputs; k++) {
      const own = directions[nextOwn++];
      for (let j = 0; j < hidden; j++) weights[k * hidden + j] = Math.cos(phi) * shared[k][j] + Math.sin(phi) * own[j];
    }
    rawHeads[task.name] = { outputs, weights, bias: new Float64Array(outputs) };
  }
  const uncalibrated = new Teacher(dim, hidden, inputWeights, inputBias, rawHeads);

  const calibrationRows = options.calibrationRows ?? 4096;
  const sample = Float64Array.from({ length: calibrationRows * dim }, () => calibrationRng.normal());
  const raw = uncalibrated.score(sample);
  const heads: Record<string, TeacherHead> = {};
  for (const task of tasks) {
    const head = rawHeads[task.name];
    const values = raw[task.name];
    const mean = new Float64Array(head.outputs);
    for (let i = 0; i < values.length; i++) mean[i % head.outputs] += values[i] / calibrationRows;
    let variance = 0;
    for (let i = 0; i < values.length; i++) variance += (values[i] - mean[i % head.outputs]) ** 2;
    variance /= values.length;
    // One scale per head keeps the classes of a multiclass task comparable to each other.
    const scale = TEACHER_OUTPUT_STD[task.type] / Math.sqrt(variance);
    heads[task.name] = {
      outputs: head.outputs,
      weights: head.weights.map((w) => w * scale),
      bias: mean.map((m) => -m * scale),
    };
  }
  return new Teacher(dim, hidden, inputWeights, inputBias, heads);
}
