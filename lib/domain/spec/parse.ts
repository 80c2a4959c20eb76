import type * as z from 'zod';
import { executionHistoryProblems } from '#lib/domain/spec/budget.ts';
import { SpecError, type SpecProblem } from '#lib/domain/spec/errors.ts';
import { closestName, kindOf, pathToString, renderValue, valueAt } from '#lib/domain/spec/render.ts';
import { DEFAULT_METRIC, datasetFormatOf, normalizeSpec, specInputSchema, type DatasetFormat, type Spec } from '#lib/domain/spec/schema.ts';

export interface ParseSpecOptions {
  /** Names the spec in messages, e.g. `examples/support-triage/spec.json`. Defaults to `spec`. */
  source?: string;
}

/**
 * Validates a run spec and fills every default. Throws one `SpecError` that lists all problems
 * (type errors, unknown fields and cross-field rules alike) so a user fixes them in one pass.
 */
export function parseSpec(input: unknown, options: ParseSpecOptions = {}): Spec {
  const source = options.source ?? 'spec';
  const result = specInputSchema.safeParse(input, { error: describeIssue, reportInput: true });
  const problems = result.success ? [] : issuesToProblems(result.error.issues, input, []);
  problems.push(...crossFieldProblems(input));
  const unique = dedupe(problems);
  if (!result.success || unique.length > 0) throw new SpecError({ source, problems: unique });
  const spec = normalizeSpec(result.data, { format: resolveFormat(result.data.datasets) as DatasetFormat });
  // Checked on the spec with its defaults: an unset population counts as the default one.
  const budget = executionHistoryProblems(spec);
  if (budget.length > 0) throw new SpecError({ source, problems: budget });
  return spec;
}

/** `parseSpec` for the text of a JSON file; a JSON syntax error is reported as a spec problem. */
export function parseSpecJson(text: string, options: ParseSpecOptions = {}): Spec {
  let input: unknown;
  try {
    input = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new SpecError({
      source: options.source ?? 'spec',
      problems: [{ path: '', value: undefined, message: `is not valid JSON (${reason}); fix the syntax and retry` }],
      cause,
    });
  }
  return parseSpec(input, options);
}

type Issue = z.core.$ZodIssue;
type RawIssue = z.core.$ZodRawIssue;

const NOUNS: Record<string, string> = {
  int: 'a whole number',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'an object',
  array: 'an array',
  tuple: 'an array',
  undefined: 'nothing',
};

/*
 * Zod's per-parse error map: writes every message as "<value> <what is wrong>; <fix>". Messages
 * given on a schema itself take precedence over this map.
 */
function describeIssue(issue: RawIssue): string {
  const value = issue.input;
  const shown = renderValue(value);
  switch (issue.code) {
    case 'invalid_type': {
      const expected = NOUNS[issue.expected] ?? issue.expected;
      if (value === undefined) return `missing; expected ${expected}`;
      if (issue.expected === 'int' && typeof value === 'number') return `${shown} is not a whole number`;
      return `${shown} is ${kindOf(value)}, expected ${expected}`;
    }
    case 'too_small': {
      const minimum = Number(issue.minimum);
      if (issue.origin === 'array') {
        const length = Array.isArray(value) ? value.length : 0;
        return `has ${length} item${length === 1 ? '' : 's'}; needs at least ${minimum}`;
      }
      if (issue.origin === 'string') return `${shown} is shorter than ${minimum} characters`;
      return issue.inclusive ? `${shown} is below the minimum ${minimum}` : `${shown} must be greater than ${minimum}`;
    }
    case 'too_big': {
      const maximum = Number(issue.maximum);
      if (issue.origin === 'array') return `has more than ${maximum} items`;
      if (issue.origin === 'string') return `${shown} is longer than ${maximum} characters`;
      return issue.inclusive ? `${shown} is above the maximum ${maximum}` : `${shown} must be less than ${maximum}`;
    }
    case 'invalid_value':
      return issue.values.length === 1 ? `${shown} must be ${renderValue(issue.values[0])}` : `${shown} is not one of ${issue.values.map(String).join(' | ')}`;
    case 'invalid_format':
      return `${shown} does not match ${issue.pattern ?? issue.format}`;
    case 'unrecognized_keys': {
      // The converter splits this into one problem per key; it reads the known fields from here.
      const shape = (issue.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
      return `${KNOWN_FIELDS}${Object.keys(shape ?? {}).join(', ')}`;
    }
    case 'invalid_union': {
      const discriminated = issue as RawIssue & { discriminator?: string; options?: unknown[] };
      if (discriminated.discriminator !== undefined) {
        const options = (discriminated.options ?? []).map(String).join(' | ');
        const tag = valueAt(value, [discriminated.discriminator]);
        return tag === undefined ? `missing; set ${discriminated.discriminator} to one of ${options}` : `${renderValue(tag)} is not one of ${options}`;
      }
      return `${shown} does not fit any of the accepted forms`;
    }
    default:
      return issue.message ?? `${shown} is not valid here`;
  }
}

const KNOWN_FIELDS = 'known fields: ';

function issuesToProblems(issues: readonly Issue[], root: unknown, prefix: readonly PropertyKey[]): SpecProblem[] {
  const problems: SpecProblem[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      problems.push(...unionProblems(issue.errors, root, path));
    } else if (issue.code === 'unrecognized_keys') {
      const known = issue.message.startsWith(KNOWN_FIELDS) ? issue.message.slice(KNOWN_FIELDS.length).split(', ') : [];
      for (const key of issue.keys) {
        const guess = closestName(key, known);
        problems.push({
          path: pathToString([...path, key]),
          value: valueAt(root, [...path, key]),
          message: `unknown field${guess ? `; did you mean "${guess}"?` : ''} (known: ${known.join(', ')})`,
        });
      }
    } else {
      problems.push({ path: pathToString(path), value: valueAt(root, path), message: issue.message });
    }
  }
  return problems;
}

/*
 * A field such as `baseModel` accepts one object or an array of them. Report the problems of the
 * form the user evidently chose (the branch that got past the top-level checks) instead of
 * both branches' complaints.
 */
function unionProblems(branches: readonly (readonly Issue[])[], root: unknown, path: readonly PropertyKey[]): SpecProblem[] {
  const failsAtTop = (branch: readonly Issue[]) => branch.some((issue) => issue.path.length === 0 && issue.code === 'invalid_type');
  const chosen = branches.find((branch) => branch.every((issue) => issue.path.length > 0)) ?? branches.find((branch) => !failsAtTop(branch));
  if (chosen) return issuesToProblems(chosen, root, path);
  const value = valueAt(root, path);
  const expected = branches
    .flatMap((branch) => branch.filter((issue) => issue.path.length === 0 && issue.code === 'invalid_type'))
    .map((issue) => (issue.code === 'invalid_type' ? (NOUNS[issue.expected] ?? issue.expected) : ''));
  return [
    {
      path: pathToString(path),
      value,
      message: `${value === undefined ? 'missing' : `${renderValue(value)} is ${kindOf(value)}`}; expected ${[...new Set(expected)].join(' or ')}`,
    },
  ];
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

const HIGHER_IS_BETTER = new Set(['auc', 'accuracy', 'macroF1']);

/*
 * Rules that span fields. They read the raw input defensively and stay silent where a field has
 * the wrong type (the schema reports that), so they can run even when the schema failed.
 */
function crossFieldProblems(input: unknown): SpecProblem[] {
  if (!isRecord(input)) return [];
  const problems: SpecProblem[] = [];
  const tasks = Array.isArray(input.tasks) ? input.tasks : [];
  const inputFields = new Set(baseModelInputFields(input.baseModel));

  const firstIndexByName = new Map<string, number>();
  tasks.forEach((task, index) => {
    if (!isRecord(task)) return;
    if (typeof task.name === 'string') {
      const first = firstIndexByName.get(task.name);
      if (first === undefined) firstIndexByName.set(task.name, index);
      else {
        problems.push({
          path: `tasks[${index}].name`,
          value: task.name,
          message: `"${task.name}" is already the name of tasks[${first}]; task names must be unique`,
        });
      }
    }
    const label = typeof task.label === 'string' ? task.label : typeof task.name === 'string' ? task.name : undefined;
    if (label !== undefined && inputFields.has(label)) {
      problems.push({
        path: `tasks[${index}].${typeof task.label === 'string' ? 'label' : 'name'}`,
        value: label,
        message: `"${label}" is a base model input column, so it cannot also be this task's label; set label to the label column`,
      });
    }
    if (typeof task.floor === 'number' && typeof task.type === 'string' && task.type in DEFAULT_METRIC) {
      const metric = typeof task.metric === 'string' ? task.metric : DEFAULT_METRIC[task.type as keyof typeof DEFAULT_METRIC];
      if (HIGHER_IS_BETTER.has(metric) && (task.floor < 0 || task.floor > 1)) {
        problems.push({
          path: `tasks[${index}].floor`,
          value: task.floor,
          message: `${task.floor} is outside [0, 1], the range of ${metric}; give the lowest acceptable ${metric}`,
        });
      } else if (!HIGHER_IS_BETTER.has(metric) && task.floor < 0) {
        problems.push({
          path: `tasks[${index}].floor`,
          value: task.floor,
          message: `${task.floor} is negative; for ${metric} (lower is better) the floor is the highest acceptable value`,
        });
      }
    }
  });

  const datasets = isRecord(input.datasets) ? input.datasets : undefined;
  if (datasets && datasets.format === undefined && typeof datasets.train === 'string') {
    const locations = (['train', 'validation', 'holdout'] as const).filter((key) => typeof datasets[key] === 'string');
    const formats = locations.map((key) => datasetFormatOf(datasets[key] as string));
    const unknownAt = formats.indexOf(undefined);
    if (unknownAt >= 0) {
      const location = datasets[locations[unknownAt]];
      problems.push({
        path: 'datasets.format',
        value: undefined,
        message: `missing, and ${renderValue(location)} does not end in .jsonl or .csv; set datasets.format to "jsonl" or "csv"`,
      });
    } else if (new Set(formats).size > 1) {
      problems.push({
        path: 'datasets.format',
        value: undefined,
        message: `missing, and the files mix formats (${formats.join(', ')}); use one format for all files and set datasets.format`,
      });
    }
  }

  const serving = isRecord(input.serving) ? input.serving : {};
  if (typeof serving.rewardIsLabel === 'string') {
    const named = tasks.find((task) => isRecord(task) && task.name === serving.rewardIsLabel) as Record<string, unknown> | undefined;
    const binary = tasks.filter((task) => isRecord(task) && task.type === 'binary').map((task) => `"${(task as Record<string, unknown>).name}"`);
    const fix = binary.length > 0 ? `name one of the binary tasks (${binary.join(', ')})` : 'leave it out (no task is binary)';
    if (named === undefined || named.type !== 'binary') {
      problems.push({
        path: 'serving.rewardIsLabel',
        value: serving.rewardIsLabel,
        message: `${renderValue(serving.rewardIsLabel)} is ${named === undefined ? 'not a task of the spec' : `a ${String(named.type)} task, and only a 0/1 reward can be a label`}; ${fix}`,
      });
    } else if (datasets?.feedback !== true) {
      problems.push({
        path: 'serving.rewardIsLabel',
        value: serving.rewardIsLabel,
        message: `${renderValue(serving.rewardIsLabel)} names the task rewards label, but feedback is not kept as data; set datasets.feedback to true`,
      });
    }
  }

  const split = isRecord(input.split) ? input.split : {};
  for (const [dataset, fraction] of [
    ['validation', 'validationFraction'],
    ['holdout', 'holdoutFraction'],
  ] as const) {
    if (datasets && datasets[dataset] === undefined && split[fraction] === 0) {
      problems.push({
        path: `split.${fraction}`,
        value: 0,
        message: `0 leaves no ${dataset} rows; set a fraction above 0 or give datasets.${dataset}`,
      });
    }
  }
  return problems;
}

function baseModelInputFields(baseModel: unknown): string[] {
  const models = Array.isArray(baseModel) ? baseModel : [baseModel];
  return models
    .filter(isRecord)
    .flatMap((model): unknown[] => {
      switch (model.kind) {
        case 'text':
          return [model.field ?? 'text'];
        case 'features':
          return [model.field ?? 'features'];
        case 'onnx':
          return [model.textField ?? 'text'];
        case 'tabular':
          return [...(Array.isArray(model.numeric) ? model.numeric : []), ...(Array.isArray(model.categorical) ? model.categorical : [])];
        default:
          return [];
      }
    })
    .filter((field): field is string => typeof field === 'string');
}

function resolveFormat(datasets: { train: string; format?: DatasetFormat }): DatasetFormat | undefined {
  return datasets.format ?? datasetFormatOf(datasets.train);
}

function dedupe(problems: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${problem.path}\u0000${problem.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
