/**
 * Learning-rate schedule and dynamic task weights: small pure functions the trainer calls once per
 * step or epoch, kept apart so they are tested as plain arithmetic.
 */

export interface LearningRateOptions {
  readonly baseRate: number;
  readonly warmupSteps: number;
  readonly schedule: 'cosine' | 'constant';
}

/**
 * Linear warm-up over the first `warmupSteps` steps (step 0 gets base/warmupSteps), then constant
 * or a half cosine from the base rate to 0 over the training. `progress` is the fraction of the
 * planned training done (epochs, fractional within an epoch), since a streamed epoch's step
 * count is only known once the first epoch has been read.
 */
export function learningRateAt(options: LearningRateOptions, at: { step: number; progress: number }): number {
  const { baseRate, warmupSteps, schedule } = options;
  const warm = warmupSteps > 0 ? Math.min(1, (at.step + 1) / warmupSteps) : 1;
  const decay = schedule === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, at.progress)))) : 1;
  return baseRate * warm * decay;
}

/** DWA's temperature (Liu et al. 2019). */
export const DWA_TEMPERATURE = 2;

/**
 * Dynamic weight average (Liu et al. 2019, "End-to-End Multi-Task Learning with Attention"):
 * w_k(t) = K·softmax_k(r_k / T) with r_k = L_k(t−1) / L_k(t−2), the ratio of each task's mean
 * training loss over the last two epochs; a task whose loss falls slowly gets more weight. The
 * first two epochs (no two past losses yet) use w = 1. A task with a zero loss two epochs back
 * (no labelled rows) keeps ratio 1. The weights sum to K.
 */
export function dwaWeights(history: readonly (readonly number[])[], options: { taskCount: number; temperature?: number }): number[] {
  const k = options.taskCount;
  const temperature = options.temperature ?? DWA_TEMPERATURE;
  if (history.length < 2) return Array.from({ length: k }, () => 1);
  const last = history[history.length - 1];
  const before = history[history.length - 2];
  const ratios = last.map((l, i) => (before[i] > 0 && Number.isFinite(l / before[i]) ? l / before[i] : 1));
  const top = Math.max(...ratios.map((r) => r / temperature));
  const exps = ratios.map((r) => Math.exp(r / temperature - top));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => (k * e) / total);
}
