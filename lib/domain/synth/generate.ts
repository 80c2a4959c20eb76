import { SynthError } from '#lib/domain/synth/errors.ts';
import { deriveSeed, Random } from '#lib/domain/random/index.ts';
import { buildTeacher, type GeneratedTask, type SynthTaskType, type Teacher } from '#lib/domain/synth/teacher.ts';

export interface SynthTaskOptions {
  name: string;
  type: SynthTaskType;
  /** Multiclass only: a class count (names become "0", "1", …) or the class names. */
  classes?: number | readonly string[];
}

export interface MultiTaskOptions {
  rows: number;
  dim: number;
  tasks: readonly SynthTaskOptions[];
  seed: number;
  /** 0: every task's head points the same way in hidden space; 1: heads are orthogonal. Default 0.3. */
  conflict?: number;
  /**
   * Fraction of labels replaced by a random draw after sampling: a uniformly random class for
   * binary and multiclass, a standard-normal value (an outlier) for regression. Default 0.
   */
  labelNoise?: number;
  /** Probability that a (row, task) label is missing (mask 0); one rate for all or one per task. Default 0. */
  missingLabelRate?: number | Readonly<Record<string, number>>;
  /** Width of the teacher's hidden layer. Default 32. */
  hidden?: number;
}

export interface MultiTaskDataset {
  rows: number;
  dim: number;
  tasks: GeneratedTask[];
  /** rows × dim, row-major, standard normal. */
  features: Float32Array;
  /** Per task: 0/1, class index or value; 0 where the mask is 0. */
  labels: Record<string, Float32Array>;
  /** Per task: 1 = labelled. */
  masks: Record<string, Uint8Array>;
  teacher: Teacher;
}

/** Noise on regression targets, in units of the target's standard deviation (1). */
export const REGRESSION_NOISE_STD = 0.1;

function checkRate(name: string, value: number, upper: 'inclusive' | 'exclusive'): void {
  const ok = Number.isFinite(value) && value >= 0 && (upper === 'inclusive' ? value <= 1 : value < 1);
  if (!ok) {
    throw new SynthError(`${name} ${value} is outside [0, 1${upper === 'inclusive' ? ']' : ')'}; pass a fraction`, { option: name, value });
  }
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new SynthError(`${name} ${value} is not a positive integer`, { option: name, value });
  }
}

function normalizeTasks(tasks: readonly SynthTaskOptions[]): GeneratedTask[] {
  if (tasks.length === 0) throw new SynthError('tasks is empty; pass at least one { name, type }', { option: 'tasks' });
  const seen = new Set<string>();
  return tasks.map((task, index) => {
    if (!task.name || seen.has(task.name)) {
      throw new SynthError(`tasks[${index}].name ${JSON.stringify(task.name)} is empty or repeated; give every task its own name`, {
        option: `tasks[${index}].name`,
        value: task.name,
      });
    }
    seen.add(task.name);
    if (task.type === 'binary' || task.type === 'regression') return { name: task.name, type: task.type };
    if (task.type !== 'multiclass') {
      throw new SynthError(`tasks[${index}].type ${JSON.stringify(task.type)} is not binary, multiclass or regression`, {
        option: `tasks[${index}].type`,
        value: task.type,
      });
    }
    const classes = typeof task.classes === 'number' ? Array.from({ length: task.classes }, (_, k) => String(k)) : [...(task.classes ?? [])];
    if (classes.length < 2 || !classes.every((c) => typeof c === 'string')) {
      throw new SynthError(
        `tasks[${index}] ("${task.name}") is multiclass with classes ${JSON.stringify(task.classes)}; pass a count ≥ 2 or at least two names`,
        {
          option: `tasks[${index}].classes`,
          value: task.classes,
        },
      );
    }
    return { name: task.name, type: 'multiclass', classes };
  });
}

/**
 * A seeded multi-task dataset labelled by a known teacher network. Each concern draws from its
 * own stream (teacher, features, each task's labels, label noise and mask), so changing one option —
 * say the missing-label rate — leaves everything else identical.
 *
 * Labels: binary 1 with probability sigmoid(logit); multiclass argmax(logits + Gumbel noise),
 * i.e. a draw from softmax(logits); regression the teacher's value plus N(0, 0.1²).
 */
export function generateMultiTask(options: MultiTaskOptions): MultiTaskDataset {
  const { rows, dim, seed } = options;
  const conflict = options.conflict ?? 0.3;
  const labelNoise = options.labelNoise ?? 0;
  const hidden = options.hidden ?? 32;
  checkCount('rows', rows);
  checkCount('dim', dim);
  checkCount('hidden', hidden);
  if (!Number.isInteger(seed)) throw new SynthError(`seed ${seed} is not an integer`, { option: 'seed', value: seed });
  checkRate('conflict', conflict, 'inclusive');
  checkRate('labelNoise', labelNoise, 'inclusive');
  const tasks = normalizeTasks(options.tasks);
  const missingRate = (task: string): number => {
    const rate = options.missingLabelRate;
    const value = typeof rate === 'number' ? rate : (rate?.[task] ?? 0);
    checkRate(`missingLabelRate for task "${task}"`, value, 'exclusive');
    return value;
  };
  if (typeof options.missingLabelRate === 'object') {
    for (const name of Object.keys(options.missingLabelRate)) {
      if (!tasks.some((t) => t.name === name)) {
        throw new SynthError(`missingLabelRate names task "${name}", which is not in tasks`, { option: 'missingLabelRate', value: name });
      }
    }
  }

  const teacher = buildTeacher({
    dim,
    hidden,
    tasks,
    conflict,
    structureRng: new Random(deriveSeed(seed, 'teacher')),
    calibrationRng: new Random(deriveSeed(seed, 'calibration')),
  });

  const featureRng = new Random(deriveSeed(seed, 'features'));
  const features = new Float32Array(rows * dim);
  for (let i = 0; i < features.length; i++) features[i] = featureRng.normal();
  const scores = teacher.score(features);

  const labels: Record<string, Float32Array> = {};
  const masks: Record<string, Uint8Array> = {};
  for (const task of tasks) {
    const rng = new Random(deriveSeed(seed, `labels.${task.name}`));
    const noiseRng = new Random(deriveSeed(seed, `noise.${task.name}`));
    const score = scores[task.name];
    const label = new Float32Array(rows);
    const classCount = task.classes?.length ?? 2;
    for (let r = 0; r < rows; r++) {
      if (task.type === 'binary') {
        label[r] = rng.uniform() < 1 / (1 + Math.exp(-score[r])) ? 1 : 0;
      } else if (task.type === 'multiclass') {
        let best = 0;
        let bestValue = -Infinity;
        for (let k = 0; k < classCount; k++) {
          const v = score[r * classCount + k] + rng.gumbel();
          if (v > bestValue) {
            bestValue = v;
            best = k;
          }
        }
        label[r] = best;
      } else {
        label[r] = score[r] + REGRESSION_NOISE_STD * rng.normal();
      }
      if (labelNoise > 0 && noiseRng.uniform() < labelNoise) {
        label[r] = task.type === 'regression' ? noiseRng.normal() : noiseRng.int(classCount);
      }
    }

    const rate = missingRate(task.name);
    const maskRng = new Random(deriveSeed(seed, `mask.${task.name}`));
    const mask = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      mask[r] = maskRng.uniform() < rate ? 0 : 1;
      // Missing labels are 0, not NaN: a trainer multiplying a loss by a 0 mask must not see NaN.
      if (mask[r] === 0) label[r] = 0;
    }
    labels[task.name] = label;
    masks[task.name] = mask;
  }
  return { rows, dim, tasks, features, labels, masks, teacher };
}
