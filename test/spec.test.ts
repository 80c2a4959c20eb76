import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  SpecError,
  canonicalJson,
  datasetFormatOf,
  loopBudgetOf,
  parseSpec,
  parseSpecJson,
  primaryBaseModel,
  specDigest,
  type SpecProblem,
} from '#lib/domain/spec/index.ts';

const minimal = () => ({
  project: 'demo',
  baseModel: { kind: 'text' },
  datasets: { train: 'data/train.jsonl' },
  tasks: [{ name: 'urgent', type: 'binary' }],
});

function problemsOf(input: unknown): SpecProblem[] {
  try {
    parseSpec(input, { source: 'spec.json' });
  } catch (error) {
    if (error instanceof SpecError) return [...error.problems];
    throw error;
  }
  throw new Error('expected parseSpec to throw a SpecError');
}

/** A copy of `base` with `value` set at a dotted path (`tasks.0.type`); `undefined` deletes. */
function withValue(base: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(base);
  const keys = path.split('.');
  let target: Record<string, unknown> = copy;
  for (const key of keys.slice(0, -1)) {
    target[key] ??= /^\d+$/.test(keys[keys.indexOf(key) + 1] ?? '') ? [] : {};
    target = target[key] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete target[last];
  else target[last] = value;
  return copy;
}

const pick = ({ hidden, expertHidden, towerHidden }: { hidden: number[]; expertHidden: number; towerHidden: number[] }) => ({
  hidden,
  expertHidden,
  towerHidden,
});

describe('parseSpec defaults', () => {
  const spec = parseSpec(minimal());

  it('fills the split, training, tuning, deploy and monitor sections', () => {
    expect(spec.split).toEqual({ validationFraction: 0.15, holdoutFraction: 0.15, seed: 1 });
    expect(spec.training).toEqual({
      epochs: 20,
      batchSize: 256,
      learningRate: 1e-2,
      weightDecay: 1e-4,
      warmupSteps: 50,
      schedule: 'cosine',
      earlyStoppingPatience: 3,
      earlyStoppingMinDelta: 1e-4,
      weighting: 'fixed',
      seed: 7,
    });
    expect(spec.tuning).toEqual({
      strategy: 'pgpe',
      generations: 3,
      population: 6,
      maxConcurrency: 2,
      tuneLearningRate: false,
      search: [],
      lambdaScale: 1,
      screening: { enabled: 'auto', trialEpochs: 2 },
    });
    expect(spec.deploy).toEqual({ policy: 'if-better', margin: 0.005, canaryShare: 0.1, quantize: false, maxQuantizationLoss: 0.01 });
    expect(spec.monitor).toEqual({ windowHours: 24, minRewardDrop: 0.05, psiThreshold: 0.2 });
    expect(spec.schedule).toBeUndefined();
  });

  it('fills the model section and lists the architecture as the only candidate', () => {
    expect(spec.model).toEqual({ architectures: ['shared-bottom'], hidden: [32], experts: 4, expertHidden: 32, towerHidden: [16] });
  });

  it.each([
    ['text', { kind: 'text' }, { hidden: [32], expertHidden: 32, towerHidden: [16], learningRate: 1e-2 }],
    ['features', { kind: 'features', dimension: 8 }, { hidden: [256], expertHidden: 128, towerHidden: [64], learningRate: 1e-3 }],
    ['tabular', { kind: 'tabular', numeric: ['age'] }, { hidden: [256], expertHidden: 128, towerHidden: [64], learningRate: 1e-3 }],
    [
      'text beside features',
      [{ kind: 'text' }, { kind: 'features', dimension: 8 }],
      { hidden: [256], expertHidden: 128, towerHidden: [64], learningRate: 1e-3 },
    ],
  ])('gives a %s base model its widths and learning rate when the spec leaves them out', (_kind, baseModel, expected) => {
    const parsed = parseSpec({ ...minimal(), baseModel });

    expect({ ...pick(parsed.model), learningRate: parsed.training.learningRate }).toEqual(expected);
  });

  it('keeps the widths and learning rate a text spec gives', () => {
    const parsed = parseSpec({ ...minimal(), model: { hidden: [256], expertHidden: 128, towerHidden: [64] }, training: { learningRate: 1e-3 } });

    expect({ ...pick(parsed.model), learningRate: parsed.training.learningRate }).toEqual({
      hidden: [256],
      expertHidden: 128,
      towerHidden: [64],
      learningRate: 1e-3,
    });
  });

  it('fills a text base model and normalizes it to a list of one', () => {
    expect(spec.baseModels).toEqual([{ kind: 'text', field: 'text', ngramRange: [1, 2], vocabularySize: 20000, minDocumentFrequency: 2, lowercase: true }]);
    expect(primaryBaseModel(spec)).toBe(spec.baseModels[0]);
  });

  it('reads the dataset format from the file extension', () => {
    expect(spec.datasets).toEqual({ train: 'data/train.jsonl', csv: { trim: true }, format: 'jsonl' });
  });

  it("keeps a binary task's positive values as a list, trimmed and without repeats, and leaves them out when not given", () => {
    const parsed = (positive: unknown) =>
      parseSpec({ ...minimal(), tasks: [{ name: 'churn', type: 'binary', ...(positive === undefined ? {} : { positive }) }] }).tasks[0];
    expect(parsed('churned')).toMatchObject({ positive: ['churned'] });
    expect(parsed([' churned', 'left', 'churned '])).toMatchObject({ positive: ['churned', 'left'] });
    expect(parsed(undefined)).not.toHaveProperty('positive');
  });

  it('defaults a binary task label to its name, metric auc and weight 1', () => {
    expect(spec.tasks).toEqual([{ name: 'urgent', type: 'binary', label: 'urgent', metric: 'auc', weight: 1 }]);
  });

  it('defaults multiclass to macroF1 and regression to rmse with mse loss and huberDelta 1', () => {
    const parsed = parseSpec({
      ...minimal(),
      tasks: [
        { name: 'team', type: 'multiclass', classes: ['a', 'b'] },
        { name: 'hours', type: 'regression', label: 'hours_to_close' },
      ],
    });
    expect(parsed.tasks).toEqual([
      { name: 'team', type: 'multiclass', label: 'team', classes: ['a', 'b'], metric: 'macroF1', weight: 1 },
      { name: 'hours', type: 'regression', label: 'hours_to_close', metric: 'rmse', loss: 'mse', huberDelta: 1, weight: 1 },
    ]);
    expect(parsed.tuning.lambdaScale).toBe(2);
  });

  it.each([
    ['tabular', { kind: 'tabular', numeric: ['age'] }, { kind: 'tabular', numeric: ['age'], categorical: [], maxCategories: 50 }],
    ['features', { kind: 'features', dimension: 8 }, { kind: 'features', field: 'features', dimension: 8 }],
    [
      'onnx',
      { kind: 'onnx', model: 's3://models/encoder/model.onnx', tokenizer: 'encoder/tokenizer.json' },
      {
        kind: 'onnx',
        model: 's3://models/encoder/model.onnx',
        tokenizer: 'encoder/tokenizer.json',
        textField: 'text',
        pooling: 'mean',
        maxLength: 128,
        normalize: true,
      },
    ],
  ])('fills the defaults of a %s base model', (_kind, baseModel, expected) => {
    expect(parseSpec({ ...minimal(), baseModel }).baseModels).toEqual([expected]);
  });

  it('keeps a list of base model candidates in order', () => {
    const parsed = parseSpec({ ...minimal(), baseModel: [{ kind: 'text' }, { kind: 'features', field: 'embedding', dimension: 4 }] });
    expect(parsed.baseModels.map((model) => model.kind)).toEqual(['text', 'features']);
  });

  it('takes a serving policy for inputs the model has no value for, impute by default, and refuses another word naming both', () => {
    expect(parseSpec(minimal()).serving).toBeUndefined();
    expect(parseSpec({ ...minimal(), serving: {} }).serving).toEqual({ unknownInputs: 'impute' });
    expect(parseSpec({ ...minimal(), serving: { unknownInputs: 'reject' } }).serving).toEqual({ unknownInputs: 'reject' });
    const [problem] = problemsOf({ ...minimal(), serving: { unknownInputs: 'drop' } });
    expect(problem.path).toBe('serving.unknownInputs');
    expect(problem.message).toMatch(/"drop" is not a policy; use "impute" .* or "reject"/);
  });

  it('keeps architecture candidates, without repeats', () => {
    const parsed = parseSpec({ ...minimal(), model: { architecture: ['mmoe', 'shared-bottom', 'mmoe'] } });
    expect(parsed.model.architectures).toEqual(['mmoe', 'shared-bottom']);
  });

  it('fills schedule.enabled and keeps an explicit format over the extension', () => {
    const parsed = parseSpec({ ...minimal(), datasets: { train: 's3://bucket/datasets/train.data', format: 'csv' }, schedule: { rate: '7 days' } });
    expect(parsed.schedule).toEqual({ rate: '7 days', enabled: true });
    expect(parsed.datasets.format).toBe('csv');
  });
});

describe('parseSpec problems', () => {
  it('reports every problem at once, in a message that names the source, path, value and fix', () => {
    const input = {
      ...minimal(),
      tasks: [
        { name: 'urgent', type: 'binary' },
        { name: 'team', type: 'multi' },
      ],
      training: { epochs: 0 },
      tuning: { population: 5 },
    };
    let caught: unknown;
    try {
      parseSpec(input, { source: 'spec.json' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SpecError);
    const error = caught as SpecError;
    expect(error.name).toBe('SpecError');
    expect(error.code).toBe('SPEC_INVALID');
    expect(error.message).toBe(
      [
        'spec.json: 3 problems:',
        '  - tasks[1].type: "multi" is not one of binary | multiclass | regression',
        '  - training.epochs: 0 is below the minimum 1',
        '  - tuning.population: 5 is odd; PGPE samples in symmetric pairs, so use an even population such as 6',
      ].join('\n'),
    );
    expect(error.problems[0]).toEqual({ path: 'tasks[1].type', value: 'multi', message: '"multi" is not one of binary | multiclass | regression' });
    expect(error.context).toMatchObject({ source: 'spec.json', problems: error.problems });
  });

  it.each([
    ['project', 'Demo_1', 'project', 'Demo_1', /not a valid project name/],
    ['project', undefined, 'project', undefined, /^missing; expected a string$/],
    ['baseModel', { kind: 'txt' }, 'baseModel.kind', 'txt', /^"txt" is not one of text \| tabular \| features \| onnx$/],
    ['baseModel', [{ kind: 'text' }, { kind: 'features' }], 'baseModel[1].dimension', undefined, /^missing; expected a number$/],
    ['baseModel', 'text', 'baseModel', 'text', /^"text" is a string; expected an array or an object$/],
    ['baseModel', { kind: 'text', ngramRange: [3, 1] }, 'baseModel.ngramRange', [3, 1], /starts above where it ends/],
    ['baseModel', { kind: 'tabular' }, 'baseModel', { kind: 'tabular' }, /needs at least one column/],
    ['baseModel', { kind: 'tabular', numeric: ['a'], categorical: ['a'] }, 'baseModel.categorical[0]', 'a', /listed twice/],
    ['baseModel', { kind: 'onnx', model: 's3://x', tokenizer: 't.json' }, 'baseModel.model', 's3://x', /not an S3 URI/],
    ['baseModel', { kind: 'onnx', model: 'm.onnx', tokenizer: 't.json', pooling: 'max' }, 'baseModel.pooling', 'max', /^"max" is not one of mean \| cls$/],
    ['datasets.train', '', 'datasets.train', '', /is empty; give a local path or an s3:\/\/bucket\/key URI/],
    ['datasets.train', 'data/train.parquet', 'datasets.format', undefined, /"data\/train.parquet" does not end in .jsonl or .csv/],
    ['datasets.validation', 'data/valid.csv', 'datasets.format', undefined, /mix formats \(jsonl, csv\)/],
    ['datasets.format', 'parquet', 'datasets.format', 'parquet', /^"parquet" is not one of jsonl \| csv$/],
    ['split.validationFraction', 1, 'split.validationFraction', 1, /^1 must be less than 1$/],
    ['split.validationFraction', 0.9, 'split.holdoutFraction', undefined, /leaves no training rows/],
    ['split.holdoutFraction', 0, 'split.holdoutFraction', 0, /^0 leaves no holdout rows; set a fraction above 0 or give datasets.holdout$/],
    ['tasks', [], 'tasks', [], /^is empty; list at least one task$/],
    ['tasks.0.type', 'multi', 'tasks[0].type', 'multi', /^"multi" is not one of binary \| multiclass \| regression$/],
    ['tasks.0.name', 'urgent task', 'tasks[0].name', 'urgent task', /not a usable task name/],
    ['tasks.0.classes', ['a', 'b'], 'tasks[0].classes', ['a', 'b'], /^only multiclass tasks take classes; remove it or set type to "multiclass"$/],
    ['tasks.0.metric', 'rmse', 'tasks[0].metric', 'rmse', /^"rmse" is not one of auc \| accuracy \| logLoss$/],
    ['tasks.0.weight', -1, 'tasks[0].weight', -1, /^-1 is below the minimum 0$/],
    ['tasks.0.floor', 1.5, 'tasks[0].floor', 1.5, /outside \[0, 1\], the range of auc/],
    ['tasks.0.loss', 'huber', 'tasks[0].loss', 'huber', /unknown field/],
    ['tasks.0.positive', '  ', 'tasks[0].positive', '  ', /^is empty; give the label value that means positive, e.g. "churned"$/],
    ['tasks.0.positive', [], 'tasks[0].positive', [], /^is an empty list; give at least one label value, e.g. \["churned"\]$/],
    ['tasks.0.positive', 1, 'tasks[0].positive', 1, /expected/],
    ['datasets.csv', { trim: 'yes' }, 'datasets.csv.trim', 'yes', /"yes" is a string, expected true or false/],
    [
      'baseModel',
      { kind: 'tabular', numeric: ['age'], numericEncoding: 'log' },
      'baseModel.numericEncoding',
      'log',
      /^"log" is not one of standard \| quantile \| ple \| auto$/,
    ],
    [
      'baseModel',
      { kind: 'tabular', numeric: ['age'], columnEncodings: { income: 'ple' } },
      'baseModel.columnEncodings.income',
      'ple',
      /^"income" is not one of the numeric columns \(age\); list it in numeric or remove it from columnEncodings$/,
    ],
    [
      'baseModel',
      { kind: 'tabular', numeric: ['age'], columnEncodings: { age: 'auto' } },
      'baseModel.columnEncodings.age',
      'auto',
      /^"auto" is not one of standard \| quantile \| ple$/,
    ],
    ['baseModel', { kind: 'tabular', numeric: ['age'], bins: 1 }, 'baseModel.bins', 1, /^1 is below the minimum 2$/],
    ['tasks.0.label', 'text', 'tasks[0].label', 'text', /is a base model input column/],
    ['training.epoch', 5, 'training.epoch', 5, /^unknown field; did you mean "epochs"\?/],
    ['training.batchSize', 2.5, 'training.batchSize', 2.5, /^2.5 is not a whole number$/],
    ['training.learningRate', 0, 'training.learningRate', 0, /^0 must be greater than 0$/],
    ['training.schedule', 'linear', 'training.schedule', 'linear', /^"linear" is not one of cosine \| constant$/],
    ['training.weighting', 'gradnorm', 'training.weighting', 'gradnorm', /^"gradnorm" is not one of fixed \| uncertainty \| dwa$/],
    ['tuning.strategy', 'grid', 'tuning.strategy', 'grid', /^"grid" is not one of pgpe \| random \| uniform$/],
    ['tuning.population', 7, 'tuning.population', 7, /is odd; PGPE samples in symmetric pairs/],
    ['tuning.screening.enabled', 'yes', 'tuning.screening.enabled', 'yes', /"yes"/],
    ['model.architecture', ['mmoe', 'moe'], 'model.architecture[1]', 'moe', /^"moe" is not one of shared-bottom \| mmoe$/],
    ['model.hidden', [256, 0], 'model.hidden[1]', 0, /^0 is below the minimum 1$/],
    ['model.hidden', [], 'model.hidden', [], /^is empty, but shared-bottom needs at least one shared layer; give one, e\.g\. "hidden": \[64\]$/],
    ['deploy.policy', 'sometimes', 'deploy.policy', 'sometimes', /^"sometimes" is not one of if-better \| always \| never \| canary$/],
    ['deploy.canaryShare', 1, 'deploy.canaryShare', 1, /^1 must be less than 1$/],
    ['schedule', { enabled: true }, 'schedule', { enabled: true }, /has neither cron nor rate/],
    ['schedule', { rate: '7 days', cron: '0 3 ? * MON *' }, 'schedule', { rate: '7 days', cron: '0 3 ? * MON *' }, /has both cron and rate/],
    ['schedule', { rate: 'weekly' }, 'schedule.rate', 'weekly', /is not a rate; write "<n> <minutes\|hours\|days>"/],
    ['schedule', { cron: '0 3 * * *' }, 'schedule.cron', '0 3 * * *', /give 6 fields/],
    ['monitor.psiThreshold', 'high', 'monitor.psiThreshold', 'high', /^"high" is a string, expected a number$/],
    ['extra', true, 'extra', true, /^unknown field \(known: project, /],
  ])('setting %s to %j reports %s', (field, value, path, reported, message) => {
    const problems = problemsOf(withValue(minimal(), field, value));
    const problem = problems.find((candidate) => candidate.path === path);
    expect(problem, JSON.stringify(problems)).toBeDefined();
    expect(problem?.value).toEqual(reported);
    expect(problem?.message).toMatch(message);
  });

  it('asks for classes on a multiclass task and at least two distinct ones', () => {
    expect(problemsOf({ ...minimal(), tasks: [{ name: 'team', type: 'multiclass' }] })).toEqual([
      { path: 'tasks[0].classes', value: undefined, message: 'missing; expected an array' },
    ]);
    expect(problemsOf({ ...minimal(), tasks: [{ name: 'team', type: 'multiclass', classes: ['a'] }] })).toEqual([
      { path: 'tasks[0].classes', value: ['a'], message: '["a"] has fewer than 2 classes; a multiclass task needs at least 2' },
    ]);
    expect(problemsOf({ ...minimal(), tasks: [{ name: 'team', type: 'multiclass', classes: ['a', 'b', 'a'] }] })).toEqual([
      { path: 'tasks[0].classes[2]', value: 'a', message: '"a" is listed twice; class names must be unique' },
    ]);
  });

  it('reports a duplicate task name even when another task has a type error', () => {
    const problems = problemsOf({
      ...minimal(),
      tasks: [
        { name: 'urgent', type: 'binary' },
        { name: 'urgent', type: 'regression', loss: 'l1' },
      ],
    });
    expect(problems.map((problem) => problem.path)).toEqual(['tasks[1].loss', 'tasks[1].name']);
    expect(problems[1].message).toBe('"urgent" is already the name of tasks[0]; task names must be unique');
  });

  it('accepts a split fraction of 0 when that dataset is given explicitly', () => {
    const parsed = parseSpec({ ...minimal(), datasets: { train: 'a.jsonl', holdout: 'b.jsonl' }, split: { holdoutFraction: 0 } });
    expect(parsed.split.holdoutFraction).toBe(0);
  });

  it('reports a spec that is not an object at the top level', () => {
    expect(() => parseSpec([1], { source: 'spec.json' })).toThrow('spec.json: 1 problem:\n  - (top level): [1] is an array, expected an object');
  });

  it('reports JSON syntax errors with the cause kept', () => {
    let caught: unknown;
    try {
      parseSpecJson('{"project": "demo",}', { source: 'spec.json' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SpecError);
    expect((caught as SpecError).message).toMatch(/^spec.json: 1 problem:\n {2}- \(top level\): is not valid JSON \(/);
    expect((caught as SpecError).cause).toBeInstanceOf(SyntaxError);
  });

  it('uses "spec" as the source when none is given', () => {
    expect(() => parseSpec({})).toThrow(/^spec: 4 problems:/);
  });
});

describe('tuning.search', () => {
  const searching = (search: unknown[]) => ({ ...minimal(), tuning: { search } });

  it('fills each named dimension with its default range, and keeps the ranges given', () => {
    const spec = parseSpec(
      searching([{ name: 'width' }, { name: 'weightDecay', max: 1e-3 }, { name: 'depth', choices: [1, 2] }, { name: 'patience' }, { name: 'dropout' }]),
    );
    expect(spec.tuning.search).toEqual([
      { name: 'width', choices: [64, 128, 256, 512] },
      { name: 'weightDecay', scale: 'log', min: 1e-6, max: 1e-3 },
      { name: 'depth', choices: [1, 2] },
      { name: 'patience', choices: [1, 2, 3, 5, 8] },
      { name: 'dropout', scale: 'linear', min: 0, max: 0.5 },
    ]);
  });

  it('refuses unknown, repeated and malformed dimensions, naming the fix', () => {
    expect(problemsOf(searching([{ name: 'momentum' }]))[0].path).toBe('tuning.search[0].name');
    expect(problemsOf(searching([{ name: 'width' }, { name: 'width', choices: [8] }]))[0].message).toBe('width is listed twice; list each dimension once');
    expect(problemsOf(searching([{ name: 'depth', choices: [3, 2] }]))[0].message).toMatch(/in increasing order/);
    expect(problemsOf(searching([{ name: 'weightDecay', min: 1e-2, max: 1e-4 }]))[0].message).toBe('min 0.01 is above max 0.0001; give min ≤ max');
  });
});

describe('the Step Functions execution history budget', () => {
  const tuned = (tuning: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ ...minimal(), tuning: { strategy: 'pgpe', ...tuning }, ...extra });

  it('refuses generations × population beyond 25,000 history events, naming the largest budget that fits', () => {
    const problems = problemsOf(tuned({ generations: 60, population: 100 }));

    expect(problems).toEqual([
      {
        path: 'tuning',
        value: { generations: 60, population: 100 },
        message:
          'generations × population = 60 × 100 needs ~60,690 Step Functions history events; at most 22 generations of 100, or 60 generations of at most 36, fit in the 25,000-event execution history (2,500 kept for retries): lower tuning.generations or tuning.population, or run fewer, longer trials (more training.epochs)',
      },
    ]);
  });

  it('accepts the largest number of generations it names, and refuses one more', () => {
    expect(parseSpec(tuned({ generations: 22, population: 100 })).tuning.generations).toBe(22);
    expect(problemsOf(tuned({ generations: 23, population: 100 }))[0].message).toMatch(
      /^generations × population = 23 × 100 needs ~23,283 .*at most 22 generations of 100/,
    );
    // PGPE's population must stay even, so the population it names is.
    expect(parseSpec(tuned({ generations: 60, population: 36 })).tuning.population).toBe(36);
    expect(problemsOf(tuned({ generations: 60, population: 38 }))[0].message).toMatch(/60 generations of at most 36,/);
  });

  it('counts the screening rounds of several candidates as generations of their own', () => {
    // 2 × 1120 fits alone (22,452 events); screening 2 encoders × 2 architectures adds 2 rounds of 4 + 2 trials (82 events).
    expect(parseSpec(tuned({ generations: 2, population: 1120 })).tuning.population).toBe(1120);
    const screened = { baseModel: [{ kind: 'text' }, { kind: 'text', ngramRange: [1, 2] }], model: { architecture: ['shared-bottom', 'mmoe'] } };
    expect(problemsOf(tuned({ generations: 2, population: 1120 }, screened))[0].message).toMatch(
      /needs ~22,534 Step Functions history events after 2 screening rounds of 6 trials/,
    );
    expect(parseSpec(tuned({ generations: 2, population: 1120, screening: { enabled: false } }, screened)).tuning.population).toBe(1120);
  });

  it('counts a tabular model with numericEncoding auto as three candidates to screen', () => {
    const auto = (numericEncoding: string) => ({ baseModel: { kind: 'tabular', numeric: ['age'], numericEncoding }, model: { architecture: 'shared-bottom' } });
    expect(loopBudgetOf(parseSpec(tuned({ generations: 2, population: 4 }, auto('auto'))))).toMatchObject({ screeningRounds: 2, screeningTrials: 5 });
    expect(loopBudgetOf(parseSpec(tuned({ generations: 2, population: 4 }, auto('ple'))))).not.toHaveProperty('screeningRounds');
  });

  it('counts uniform λ as one trial a generation, whatever the population says', () => {
    expect(parseSpec(tuned({ strategy: 'uniform', generations: 1000, population: 100 })).tuning.generations).toBe(1000);
    expect(problemsOf(tuned({ strategy: 'random', generations: 1000, population: 100 }))[0].message).toMatch(
      /^generations × population = 1000 × 100 needs ~1,011,030 /,
    );
  });
});

describe('specDigest', () => {
  it('is the same whatever order the keys were written in, and includes defaults', () => {
    const a = parseSpec(minimal());
    const b = parseSpec({
      tasks: [{ type: 'binary', name: 'urgent', metric: 'auc' }],
      datasets: { train: 'data/train.jsonl' },
      baseModel: { lowercase: true, kind: 'text' },
      project: 'demo',
    });
    expect(specDigest(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(specDigest(b)).toBe(specDigest(a));
  });

  it('changes when any setting changes', () => {
    const a = parseSpec(minimal());
    const b = parseSpec({ ...minimal(), training: { epochs: 21 } });
    expect(specDigest(b)).not.toBe(specDigest(a));
  });

  it('serializes with sorted keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[{"y":2,"z":1}]},"b":1}');
  });
});

describe('datasetFormatOf', () => {
  it.each([
    ['train.jsonl', 'jsonl'],
    ['s3://bucket/datasets/train.NDJSON', 'jsonl'],
    ['rows.json', 'jsonl'],
    ['train.csv', 'csv'],
    ['train.parquet', undefined],
  ])('%s is %s', (location, format) => {
    expect(datasetFormatOf(location)).toBe(format);
  });
});

describe('example specs', () => {
  it.each(['support-triage', 'tabular'])('examples/%s/spec.json parses', (name) => {
    const path = `examples/${name}/spec.json`;
    const spec = parseSpecJson(readFileSync(path, 'utf8'), { source: path });
    expect(spec.tasks.length).toBeGreaterThanOrEqual(2);
  });

  it('support-triage has a text base model and one task of each type', () => {
    const spec = parseSpecJson(readFileSync('examples/support-triage/spec.json', 'utf8'));
    expect(primaryBaseModel(spec).kind).toBe('text');
    expect(spec.tasks.map((task) => task.type)).toEqual(['binary', 'multiclass', 'regression']);
  });
});
