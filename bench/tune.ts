/**
 * How many trials PGPE needs to find a good λ, against random search at the same budget and fixed
 * uniform λ, on a multi-task objective with an interior best λ. Run: `npx tsx bench/tune.ts`.
 *
 * The default objective is a surrogate of multi-task training (see `createMultiTaskSurrogate`); pass
 * `objective` (and `assess`) to measure real training instead.
 */
import { pathToFileURL } from 'node:url';
import {
  createPgpeTuner,
  createRandomSearchTuner,
  createRng,
  type PgpeHyperparameters,
  type RandomSearchOptions,
  type Tuner,
  type TunerStateBase,
} from '#lib/tune/index.ts';

export type LambdaObjective = (lambda: Record<string, number>, learningRate?: number) => Promise<number>;

export interface SurrogateOptions {
  seed: number;
  taskNames: readonly string[];
  /** The spec's objective weights per task (not λ). */
  objectiveWeights: readonly number[];
  /** Standard deviation of each task's validation-metric noise (trial-to-trial variation). */
  metricNoiseSd: number;
  /** Shared parameters, gradient steps and learning rate of the simulated training. */
  sharedDims: number;
  steps: number;
  learningRate: number;
}

export const SURROGATE_DEFAULTS: Readonly<SurrogateOptions> = {
  seed: 9,
  taskNames: ['churn', 'fraud', 'ltv', 'topic'],
  objectiveWeights: [0.35, 0.3, 0.2, 0.15],
  metricNoiseSd: 0.003,
  sharedDims: 8,
  steps: 60,
  learningRate: 0.1,
};

/**
 * A cheap stand-in for multi-task training: the tasks share one parameter vector w (the shared
 * bottom), each has its own optimum w_i and curvature H_i (diagonal; data size and difficulty differ
 * by task), and training runs `steps` of gradient descent on Σ λ_i L_i from w = 0. The tasks conflict
 * (their optima differ), and training is finite, so a task with flat loss needs a larger λ to be
 * learned at all; λ also sets the effective step size, so a λ piled on one task makes its steps
 * overshoot. Each task's metric is AUC-like, 0.5 + 0.45·exp(−L_i/τ_i), plus validation noise; the
 * reward is the weighted mean. `expected` is the same without noise.
 */
export function createMultiTaskSurrogate(overrides: Partial<SurrogateOptions> = {}): {
  objective: LambdaObjective;
  expected: (lambda: Record<string, number>, learningRate?: number) => number;
  options: SurrogateOptions;
} {
  const options: SurrogateOptions = { ...SURROGATE_DEFAULTS, ...overrides };
  const rng = createRng(options.seed);
  const n = options.taskNames.length;
  const d = options.sharedDims;
  const common = Array.from({ length: d }, () => rng.normal());
  const scales = options.taskNames.map((_, i) => [1, 0.5, 0.8, 1.3, 0.7, 1.1][i % 6]);
  const optima = options.taskNames.map(() => common.map((c) => c + 0.6 * rng.normal()));
  const curvature = scales.map((scale) => common.map(() => scale * Math.exp(0.5 * rng.normal())));
  const temperature = options.taskNames.map(() => 1.5 + rng.uniform());
  // Each task's own head: trained only through λ_i, so a task with λ_i → 0 stays unlearned.
  const headDims = 8;
  const headOptima = options.taskNames.map(() => Array.from({ length: headDims }, () => rng.normal()));
  const headCurvature = scales.map(() => headOptima[0].map(() => 0.3 * Math.exp(0.5 * rng.normal())));

  const taskLosses = (lambda: Record<string, number>, learningRate = options.learningRate): number[] => {
    const w = new Array<number>(d).fill(0);
    for (let j = 0; j < d; j += 1) {
      let h = 0;
      let target = 0;
      options.taskNames.forEach((name, i) => {
        h += (lambda[name] ?? 0) * curvature[i][j];
        target += (lambda[name] ?? 0) * curvature[i][j] * optima[i][j];
      });
      if (h <= 0) continue;
      const contraction = 1 - learningRate * h;
      // Gradient descent on a quadratic: the gap to the λ-weighted optimum shrinks by (1 − ηh) per step.
      w[j] = (target / h) * (1 - contraction ** options.steps);
    }
    return options.taskNames.map((name, i) => {
      const shared = w.reduce((sum, wj, j) => sum + curvature[i][j] * (wj - optima[i][j]) ** 2, 0);
      const head = headOptima[i].reduce((sum, v, j) => {
        const g = headCurvature[i][j];
        return sum + g * (v * (1 - learningRate * (lambda[name] ?? 0) * g) ** options.steps) ** 2;
      }, 0);
      return 0.5 * (shared + head);
    });
  };
  const weightSum = options.objectiveWeights.reduce((a, b) => a + b, 0);
  const score = (losses: number[], noise: () => number): number =>
    losses.reduce((sum, loss, i) => {
      const metric = Number.isFinite(loss) ? 0.5 + 0.45 * Math.exp(-loss / temperature[i]) + noise() : 0.5;
      return sum + (options.objectiveWeights[i] * metric) / weightSum;
    }, 0);
  const noiseRng = createRng(options.seed + 1);
  return {
    options,
    expected: (lambda, learningRate) => score(taskLosses(lambda, learningRate), () => 0),
    objective: async (lambda, learningRate) => score(taskLosses(lambda, learningRate), () => options.metricNoiseSd * noiseRng.normal()),
  };
}

/** Every λ = K·(k_1, …, k_n)/resolution with non-negative integers k summing to resolution. */
export function simplexGrid(taskNames: readonly string[], resolution: number, lambdaScale: number): Record<string, number>[] {
  const points: Record<string, number>[] = [];
  const walk = (prefix: number[], left: number): void => {
    if (prefix.length === taskNames.length - 1) {
      const counts = [...prefix, left];
      points.push(Object.fromEntries(taskNames.map((name, i) => [name, (lambdaScale * counts[i]) / resolution])));
      return;
    }
    for (let k = 0; k <= left; k += 1) walk([...prefix, k], left - k);
  };
  walk([], resolution);
  return points;
}

export interface BenchTuneOptions {
  /** What a trial returns: the reward of training with λ (and lr). Default: the surrogate, with noise. */
  objective: LambdaObjective;
  /** The value of a recommended λ, used for the grid and the target (default: `objective`). */
  assess: LambdaObjective;
  taskNames: readonly string[];
  /** Tuner seeds; at least 5. */
  seeds: readonly number[];
  /** Trials each tuner may spend per seed. */
  budget: number;
  population: number;
  /** Grid divisions per task for the reference optimum (resolution 30 on 4 tasks = 5456 points). */
  gridResolution: number;
  /**
   * The target closes this fraction of the gap between uniform λ and the grid's best. Measured from
   * uniform λ because "95% of the best value" taken literally is met by a large share of all λ on
   * AUC-like objectives (reported as `literalTargetShare`), which would measure nothing.
   */
  targetFraction: number;
  pgpe: Partial<PgpeHyperparameters>;
  random: Partial<RandomSearchOptions>;
  log: (line: string) => void;
}

export interface TunerRun {
  seed: number;
  /** Trials until the best trial so far (by observed reward) was worth the target; null if never. */
  trialsToTarget: number | null;
  /** The assessed value of the best trial after the whole budget. */
  finalValue: number;
}

export interface BenchTuneReport {
  bench: 'tune';
  taskNames: string[];
  budget: number;
  population: number;
  seeds: number[];
  gridPoints: number;
  gridBest: { lambda: Record<string, number>; value: number };
  uniformValue: number;
  target: number;
  targetFraction: number;
  /** Share of grid points at or above the target, and at or above targetFraction × the grid best. */
  targetShare: number;
  literalTargetShare: number;
  pgpe: { runs: TunerRun[]; medianTrialsToTarget: number | null; reachedRuns: number; meanFinalValue: number };
  random: { runs: TunerRun[]; medianTrialsToTarget: number | null; reachedRuns: number; meanFinalValue: number };
  /** PGPE's median trials to target over random search's (runs that never reach it count as budget + 1). */
  trialsRatio: number;
}

async function runTuner<S extends TunerStateBase>(
  tuner: Tuner<S>,
  options: BenchTuneOptions,
  seed: number,
  target: number,
  cache: Map<string, number>,
): Promise<TunerRun> {
  const assessed = async (lambda: Record<string, number>, learningRate?: number): Promise<number> => {
    const key = JSON.stringify([lambda, learningRate]);
    let value = cache.get(key);
    if (value === undefined) {
      value = await options.assess(lambda, learningRate);
      cache.set(key, value);
    }
    return value;
  };
  let state = tuner.init({ taskNames: options.taskNames, population: options.population, seed });
  let trials = 0;
  let trialsToTarget: number | null = null;
  let best: { reward: number; lambda: Record<string, number>; learningRate?: number } | null = null;
  while (trials < options.budget) {
    const generation = tuner.propose(state);
    const results = [];
    for (const proposal of generation.proposals) {
      if (trials >= options.budget) break;
      const reward = await options.objective(proposal.lambda, proposal.learningRate);
      results.push({ trialId: proposal.trialId, reward });
      trials += 1;
      if (best === null || reward > best.reward) {
        best = { reward, lambda: proposal.lambda, learningRate: proposal.learningRate };
        if (trialsToTarget === null && (await assessed(best.lambda, best.learningRate)) >= target) trialsToTarget = trials;
      }
    }
    state = tuner.update(generation.state, results);
  }
  return { seed, trialsToTarget, finalValue: best === null ? Number.NaN : await assessed(best.lambda, best.learningRate) };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function summarize(runs: TunerRun[], budget: number): BenchTuneReport['pgpe'] {
  const censored = runs.map((run) => run.trialsToTarget ?? budget + 1);
  const middle = median(censored);
  return {
    runs,
    medianTrialsToTarget: middle > budget ? null : middle,
    reachedRuns: runs.filter((run) => run.trialsToTarget !== null).length,
    meanFinalValue: runs.reduce((sum, run) => sum + run.finalValue, 0) / runs.length,
  };
}

export async function benchTune(overrides: Partial<BenchTuneOptions> = {}): Promise<BenchTuneReport> {
  const surrogate = overrides.objective === undefined ? createMultiTaskSurrogate() : undefined;
  const objective = overrides.objective ?? surrogate!.objective;
  const options: BenchTuneOptions = {
    objective,
    assess: overrides.assess ?? (surrogate ? async (lambda, lr) => surrogate.expected(lambda, lr) : objective),
    taskNames: overrides.taskNames ?? surrogate?.options.taskNames ?? SURROGATE_DEFAULTS.taskNames,
    seeds: [1, 2, 3, 4, 5, 6, 7, 8],
    budget: 200,
    population: 8,
    gridResolution: 30,
    targetFraction: 0.95,
    pgpe: {},
    random: {},
    log: (line) => console.log(line),
    ...overrides,
  };
  if (options.seeds.length < 5) throw new RangeError(`benchTune needs at least 5 seeds, got ${options.seeds.length}`);
  const K = options.taskNames.length;
  const grid = simplexGrid(options.taskNames, options.gridResolution, K);
  let gridBest = { lambda: grid[0], value: -Infinity };
  const gridValues: number[] = [];
  for (const lambda of grid) {
    const value = await options.assess(lambda);
    gridValues.push(value);
    if (value > gridBest.value) gridBest = { lambda, value };
  }
  const uniformValue = await options.assess(Object.fromEntries(options.taskNames.map((name) => [name, 1])));
  const target = uniformValue + options.targetFraction * (gridBest.value - uniformValue);

  const cache = new Map<string, number>();
  const pgpeRuns: TunerRun[] = [];
  const randomRuns: TunerRun[] = [];
  for (const seed of options.seeds) {
    pgpeRuns.push(await runTuner(createPgpeTuner(options.pgpe), options, seed, target, cache));
    randomRuns.push(await runTuner(createRandomSearchTuner(options.random), options, seed, target, cache));
  }
  const pgpe = summarize(pgpeRuns, options.budget);
  const random = summarize(randomRuns, options.budget);
  const censoredMedian = (runs: TunerRun[]): number => median(runs.map((run) => run.trialsToTarget ?? options.budget + 1));
  const report: BenchTuneReport = {
    bench: 'tune',
    taskNames: [...options.taskNames],
    budget: options.budget,
    population: options.population,
    seeds: [...options.seeds],
    gridPoints: grid.length,
    gridBest,
    uniformValue,
    target,
    targetFraction: options.targetFraction,
    targetShare: gridValues.filter((value) => value >= target).length / grid.length,
    literalTargetShare: gridValues.filter((value) => value >= options.targetFraction * gridBest.value).length / grid.length,
    pgpe,
    random,
    trialsRatio: censoredMedian(pgpeRuns) / censoredMedian(randomRuns),
  };

  const fmt = (value: number): string => value.toFixed(4);
  const show = (run: TunerRun): string => (run.trialsToTarget === null ? `>${options.budget}` : String(run.trialsToTarget));
  options.log(`tune bench: ${K} tasks, budget ${options.budget} trials (population ${options.population}), ${options.seeds.length} seeds`);
  options.log(`grid best ${fmt(gridBest.value)} at λ = ${options.taskNames.map((name) => gridBest.lambda[name].toFixed(2)).join(' / ')} (${grid.length} points)`);
  options.log(`uniform λ ${fmt(uniformValue)}; target ${fmt(target)} = uniform + ${options.targetFraction} × (grid best − uniform)`);
  options.log(
    `grid share at the target: ${(100 * report.targetShare).toFixed(2)}% (at ${options.targetFraction} × grid best, taken literally: ${(100 * report.literalTargetShare).toFixed(1)}%)`,
  );
  options.log('');
  options.log('seed | PGPE trials to target | random trials to target | PGPE final | random final');
  options.log('-----|-----------------------|-------------------------|------------|-------------');
  options.seeds.forEach((seed, i) => {
    options.log(
      `${String(seed).padStart(4)} | ${show(pgpeRuns[i]).padStart(21)} | ${show(randomRuns[i]).padStart(23)} | ${fmt(pgpeRuns[i].finalValue).padStart(10)} | ${fmt(randomRuns[i].finalValue).padStart(12)}`,
    );
  });
  const showMedian = (s: BenchTuneReport['pgpe']): string => (s.medianTrialsToTarget === null ? `>${options.budget}` : String(s.medianTrialsToTarget));
  options.log(
    `median | ${showMedian(pgpe).padStart(19)} | ${showMedian(random).padStart(23)} | ${fmt(pgpe.meanFinalValue).padStart(10)} | ${fmt(random.meanFinalValue).padStart(12)}  (final: mean)`,
  );
  options.log(`reached target: PGPE ${pgpe.reachedRuns}/${options.seeds.length}, random ${random.reachedRuns}/${options.seeds.length}`);
  options.log(`PGPE / random trials to target: ${report.trialsRatio.toFixed(2)}`);
  options.log(JSON.stringify({ ...report, pgpe: { ...pgpe, runs: undefined }, random: { ...random, runs: undefined }, pgpeRuns, randomRuns }));
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchTune();
}
