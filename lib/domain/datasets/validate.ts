import { createHash } from 'node:crypto';
import { DatasetError, formatProblems, type DatasetProblem } from '#lib/domain/datasets/errors.ts';
import { readRecords, type ByteSource } from '#lib/domain/datasets/read.ts';
import { renderValue, type BaseModelSpec, type DatasetFormat, type Spec, type TaskSpec } from '#lib/domain/spec/index.ts';

/** A record checked against the spec, coerced to what the base models and losses consume. */
export interface ValidatedRow {
  /** Base-model inputs by field: text as strings, numeric columns as numbers (null = impute), categorical as strings, feature vectors as number[] (Float32Array when sent packed as `{"b64": …}`). */
  input: Record<string, unknown>;
  /** Per task: binary 0/1, multiclass class index, regression value; null = unlabelled (masked). */
  labels: Record<string, number | null>;
}

export interface RecordLocation {
  file: string;
  line: number;
}

/**
 * Checks one record. Returns the coerced row only when there are no problems. JSONL values and CSV
 * strings coerce the same way: `"1"`, `1` and `true` are the same binary label, `"3.5"` and 3.5 the
 * same number, and an empty string is a missing value.
 */
export function validateRecord(record: Record<string, unknown>, spec: Spec, location: RecordLocation): { row?: ValidatedRow; problems: DatasetProblem[] } {
  return validatorFor(spec)(record, location);
}

export interface ValidateDatasetOptions {
  file: string;
  format: DatasetFormat;
  /** Row-level problems kept in the report; the rest are only counted. Default 50. */
  maxProblems?: number;
  /** Also receives every problem (row and whole-file), e.g. a `ProblemSummary` shared across files. */
  onProblem?: (problem: DatasetProblem) => void;
  /**
   * The file adds rows to another (labelled feedback joining the train file): each row is
   * checked, but a task it labels no row of, or one class of, is no problem of its own.
   */
  addsRows?: boolean;
}

export interface DatasetReport {
  file: string;
  format: DatasetFormat;
  /** Records read (header, blank lines and lines that are not a record, such as bad JSON, excluded). */
  rows: number;
  /** Records that passed every check. */
  validRows: number;
  /** Valid rows that carry a label, per task. */
  labelledPerTask: Record<string, number>;
  /** Per binary or multiclass task, labelled rows per class (`"0"`/`"1"` for binary). */
  classCounts: Record<string, Record<string, number>>;
  /** Whole-file problems first, then row problems in file order up to `maxProblems`. */
  problems: DatasetProblem[];
  /** All problems found, including those left out of `problems`. */
  problemCount: number;
  truncatedProblems: boolean;
  /** sha256 (hex) of the bytes read: the content address of this dataset. */
  digest: string;
  sizeBytes: number;
}

/**
 * Reads a dataset once, checking every record and computing its digest on the way; keeps counts,
 * never rows, so it runs in constant memory on files of any size.
 */
export async function validateDataset(source: ByteSource, spec: Spec, options: ValidateDatasetOptions): Promise<DatasetReport> {
  const { file, format } = options;
  const maxProblems = options.maxProblems ?? 50;
  const hash = createHash('sha256');
  let sizeBytes = 0;
  async function* hashed(): AsyncGenerator<Uint8Array | string> {
    for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      hash.update(bytes);
      sizeBytes += bytes.byteLength;
      yield bytes;
    }
  }

  const problems: DatasetProblem[] = [];
  let problemCount = 0;
  const addProblem = (problem: DatasetProblem) => {
    problemCount += 1;
    if (problems.length < maxProblems) problems.push(problem);
    options.onProblem?.(problem);
  };
  const labelledPerTask: Record<string, number> = Object.fromEntries(spec.tasks.map((task) => [task.name, 0]));
  const classCounts: Record<string, Record<string, number>> = {};
  for (const task of spec.tasks) {
    if (task.type === 'binary') classCounts[task.name] = { '0': 0, '1': 0 };
    if (task.type === 'multiclass') classCounts[task.name] = Object.fromEntries(task.classes.map((name) => [name, 0]));
  }

  const validate = validatorFor(spec);
  let rows = 0;
  let validRows = 0;
  for await (const { line, record } of readRecords(hashed(), {
    file,
    format,
    trim: trimsCsv(spec),
    onProblem: addProblem,
  })) {
    rows += 1;
    const result = validate(record, { file, line });
    result.problems.forEach(addProblem);
    if (!result.row) continue;
    validRows += 1;
    for (const task of spec.tasks) {
      const label = result.row.labels[task.name];
      if (label === null) continue;
      labelledPerTask[task.name] += 1;
      if (task.type === 'binary') classCounts[task.name][String(label)] += 1;
      if (task.type === 'multiclass') classCounts[task.name][task.classes[label]] += 1;
    }
  }

  const fileProblems = wholeFileProblems({ file, spec, rows, validRows, labelledPerTask, classCounts, addsRows: options.addsRows === true });
  if (options.onProblem) fileProblems.forEach(options.onProblem);
  return {
    file,
    format,
    rows,
    validRows,
    labelledPerTask,
    classCounts,
    problems: [...fileProblems, ...problems],
    problemCount: problemCount + fileProblems.length,
    truncatedProblems: problemCount > problems.length,
    digest: hash.digest('hex'),
    sizeBytes,
  };
}

/** Throws a `DatasetError` listing the report's problems, if it has any. */
export function assertValidDataset(report: DatasetReport): void {
  if (report.problemCount === 0) return;
  const count = report.problemCount === 1 ? '1 problem' : `${report.problemCount} problems`;
  throw new DatasetError(`${report.file}: ${count}:\n${formatProblems(report.problems, { total: report.problemCount })}`, {
    code: 'DATASET_INVALID',
    file: report.file,
    problems: report.problems,
    context: { problemCount: report.problemCount, digest: report.digest },
  });
}

function wholeFileProblems(counts: {
  file: string;
  spec: Spec;
  rows: number;
  validRows: number;
  labelledPerTask: Record<string, number>;
  classCounts: Record<string, Record<string, number>>;
  addsRows: boolean;
}): DatasetProblem[] {
  const { file, spec } = counts;
  if (counts.rows === 0) {
    return [{ file, value: undefined, message: 'has no data rows; check that the file is not empty and has the right format' }];
  }
  // With no valid rows the per-row problems already say why; per-task counts would only repeat them.
  if (counts.validRows === 0 || counts.addsRows) return [];
  const problems: DatasetProblem[] = [];
  for (const task of spec.tasks) {
    if (counts.labelledPerTask[task.name] === 0) {
      problems.push({
        file,
        task: task.name,
        field: task.label,
        value: undefined,
        message: `no valid row has a label in column "${task.label}"; check the label column name or remove the task`,
      });
    } else if (task.type === 'binary') {
      const present = Object.entries(counts.classCounts[task.name]).filter(([, count]) => count > 0);
      if (present.length === 1) {
        problems.push({
          file,
          task: task.name,
          field: task.label,
          value: Number(present[0][0]),
          message:
            task.positive === undefined
              ? `every labelled row is ${present[0][0]}; a binary task needs examples of both 0 and 1`
              : `every labelled row is ${present[0][0]} under "positive": ${JSON.stringify(task.positive)}; a binary task needs examples of both, so check the positive values against the labels`,
        });
      }
    }
  }
  return problems;
}

type RecordValidator = (record: Record<string, unknown>, location: RecordLocation) => { row?: ValidatedRow; problems: DatasetProblem[] };
type InputValidator = (record: Record<string, unknown>, location: RecordLocation) => { input?: Record<string, unknown>; problems: DatasetProblem[] };
type FieldCheck = (record: Record<string, unknown>, input: Record<string, unknown>, report: (field: string, value: unknown, message: string) => void) => void;
type LabelParser = (value: unknown) => { label: number } | { message: string };

const validators = new WeakMap<Spec, RecordValidator>();

/* The checks depend only on the spec, so they are built once per spec rather than once per row. */
function validatorFor(spec: Spec): RecordValidator {
  let validator = validators.get(spec);
  if (!validator) {
    validator = buildValidator(spec);
    validators.set(spec, validator);
  }
  return validator;
}

const inputValidators = new WeakMap<readonly BaseModelSpec[], InputValidator>();

/**
 * Checks only a record's base-model inputs, with the same coercions as `validateRecord`: what a
 * served request is (it carries no labels). Returns the coerced inputs when there are no problems.
 */
export function validateInputs(
  record: Record<string, unknown>,
  baseModels: readonly BaseModelSpec[],
  location: RecordLocation,
): { input?: Record<string, unknown>; problems: DatasetProblem[] } {
  let validator = inputValidators.get(baseModels);
  if (!validator) {
    const fieldChecks = inputChecks({ baseModels } as Pick<Spec, 'baseModels'>);
    validator = (fields, { file, line }) => {
      const problems: DatasetProblem[] = [];
      const input: Record<string, unknown> = {};
      for (const check of fieldChecks) check(fields, input, (field, value, message) => problems.push({ file, line, field, value, message }));
      return problems.length > 0 ? { problems } : { input, problems };
    };
    inputValidators.set(baseModels, validator);
  }
  return validator(record, location);
}

function buildValidator(spec: Spec): RecordValidator {
  const fieldChecks = inputChecks(spec);
  const labelParsers = spec.tasks.map((task) => ({ task, parse: labelParser(task), missing: missingLabel(task) }));
  const taskList = spec.tasks.map((task) => (task.label === task.name ? task.name : `${task.name} (column "${task.label}")`)).join(', ');
  return (record, { file, line }) => {
    const problems: DatasetProblem[] = [];
    const input: Record<string, unknown> = {};
    for (const check of fieldChecks) {
      check(record, input, (field, value, message) => problems.push({ file, line, field, value, message }));
    }
    const labels: Record<string, number | null> = {};
    let anyLabel = false;
    for (const { task, parse, missing } of labelParsers) {
      const value = record[task.label];
      if (missing(value)) {
        labels[task.name] = null;
        continue;
      }
      anyLabel = true;
      const parsed = parse(value);
      if ('message' in parsed) {
        problems.push({ file, line, task: task.name, field: task.label, value, message: parsed.message });
        labels[task.name] = null;
      } else {
        labels[task.name] = parsed.label;
      }
    }
    if (!anyLabel) {
      problems.push({
        file,
        line,
        value: undefined,
        message: `has no label for any task (${taskList}); every row needs at least one label`,
      });
    }
    return problems.length > 0 ? { problems } : { row: { input, labels }, problems };
  };
}

const isMissing = (value: unknown): boolean => value === undefined || value === null || value === '';

/* How public tables write an unknown number; a numeric column reads them as missing. */
const MISSING_NUMBER_WORDS = new Set(['?', 'NA', 'N/A', 'NaN', 'nan', 'null', 'NULL']);

/** Whether a numeric column's value is missing: absent, null, empty or one of `?`, `NA`, `N/A`, `NaN`, `null`. */
export function isMissingNumber(value: unknown): boolean {
  return isMissing(value) || (typeof value === 'string' && (value.trim() === '' || MISSING_NUMBER_WORDS.has(value.trim())));
}

/**
 * Whether a task's label is missing (the row stays unlabelled for it): absent, null, empty, or a
 * word such as `?` or `NA` that is not one of the task's own values — so `"positive": "churned"`
 * does not turn a `?` into a 0, while a class named "NA" stays a class.
 */
function missingLabel(task: TaskSpec): (value: unknown) => boolean {
  const own = new Set(task.type === 'multiclass' ? task.classes : task.type === 'binary' ? (task.positive ?? []) : []);
  return (value) => isMissing(value) || (typeof value === 'string' && !own.has(value.trim()) && isMissingNumber(value));
}

/** Whether CSV values are trimmed for this spec (`datasets.csv.trim`, default true). */
export function trimsCsv(spec: Pick<Spec, 'datasets'>): boolean {
  // A manifest written before the option existed has no `csv`: it was read untrimmed.
  return (spec.datasets as Partial<Spec['datasets']>).csv?.trim ?? false;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A finite number from a number or a decimal string (`"3.5"`, `" 1e-3 "`); no hex, no `Infinity`. */
function toFiniteNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && DECIMAL.test(value.trim())) {
    const number = Number(value.trim());
    return Number.isFinite(number) ? number : undefined;
  }
  return undefined;
}

/**
 * Inputs and labels become float32 tensors: a number beyond float32's range is ±Infinity there,
 * and the model answers null probabilities and a made-up label for it. Math.fround rounds as the
 * tensor does, so a number that only loses precision still passes.
 */
function isFloat32(value: number): boolean {
  return Number.isFinite(Math.fround(value));
}

const FLOAT32_RANGE = `float32's range (±${3.4028234663852886e38})`;

function describe(value: unknown): string {
  return `${renderValue(value)}${typeof value === 'object' && value !== null ? (Array.isArray(value) ? ' (an array)' : ' (an object)') : ''}`;
}

function inputChecks(spec: Pick<Spec, 'baseModels'>): FieldCheck[] {
  const checks = new Map<string, FieldCheck>();
  const textCheck =
    (field: string): FieldCheck =>
    (record, input, report) => {
      const value = record[field];
      if (value === undefined || value === null) report(field, value, `field "${field}" is missing; every row needs the text the base model reads`);
      else if (typeof value !== 'string') report(field, value, `field "${field}" is ${describe(value)}, expected text`);
      else if (value.trim() === '') report(field, value, `field "${field}" is empty; every row needs the text the base model reads`);
      else input[field] = value;
    };
  for (const model of spec.baseModels) {
    switch (model.kind) {
      case 'text':
        checks.set(model.field, textCheck(model.field));
        break;
      case 'onnx':
        checks.set(model.textField, textCheck(model.textField));
        break;
      case 'features':
        checks.set(model.field, featuresCheck(model.field, model.dimension));
        break;
      case 'tabular':
        for (const column of model.numeric) {
          checks.set(column, (record, input, report) => {
            const value = record[column];
            if (isMissingNumber(value)) {
              input[column] = null;
              return;
            }
            const number = toFiniteNumber(value);
            if (number === undefined) report(column, value, `column "${column}" is ${describe(value)}, not a number; leave it empty (or ?, NA) if unknown`);
            else if (!isFloat32(number))
              report(
                column,
                value,
                `column "${column}" is ${describe(value)}, beyond ${FLOAT32_RANGE}, which the model computes in; scale the column down (e.g. another unit)`,
              );
            else input[column] = number;
          });
        }
        for (const column of model.categorical) {
          checks.set(column, (record, input, report) => {
            const value = record[column];
            if (isMissing(value)) input[column] = null;
            else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') input[column] = String(value);
            else report(column, value, `column "${column}" is ${describe(value)}, expected a category name`);
          });
        }
        break;
    }
  }
  return [...checks.values()];
}

function featuresCheck(field: string, dimension: number): FieldCheck {
  return (record, input, report) => {
    let value = record[field];
    if (isMissing(value)) {
      report(field, value, `field "${field}" is missing; every row needs a vector of ${dimension} numbers`);
      return;
    }
    // A packed vector, `{"b64": …}`: little-endian float32, base64; the cheap form for requests.
    if (typeof value === 'object' && !Array.isArray(value) && value !== null && 'b64' in value) {
      const decoded = decodePackedVector(field, dimension, value as Record<string, unknown>);
      if (typeof decoded === 'string') report(field, record[field], decoded);
      else input[field] = decoded;
      return;
    }
    // CSV carries a vector as one JSON-array cell: "[0.1, 0.2, …]".
    if (typeof value === 'string' && value.trim().startsWith('[')) {
      try {
        value = JSON.parse(value);
      } catch {
        report(field, record[field], `field "${field}" is not a JSON array of numbers; write it as [0.1, 0.2, …]`);
        return;
      }
    }
    if (!Array.isArray(value)) {
      report(field, record[field], `field "${field}" is ${describe(value)}, expected an array of ${dimension} numbers`);
      return;
    }
    if (value.length !== dimension) {
      report(field, value.length, `field "${field}" has ${value.length} values, expected ${dimension} (baseModel.dimension)`);
      return;
    }
    const bad = value.findIndex((item) => typeof item !== 'number' || !isFloat32(item));
    if (bad >= 0) {
      const item: unknown = value[bad];
      const why =
        typeof item === 'number' && Number.isFinite(item)
          ? `beyond ${FLOAT32_RANGE}, which the model computes in; scale the vector down`
          : 'not a finite number';
      report(field, item, `field "${field}" item ${bad} is ${describe(item)}, ${why}`);
      return;
    }
    input[field] = value;
  };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * `{"b64": "<base64 of the vector as little-endian float32>"}`, decoded to a Float32Array: fewer
 * bytes than the JSON numbers and no number parsing, which for a long vector can cost more than
 * the model run it feeds. Returns the problem's message when it is not one.
 */
function decodePackedVector(field: string, dimension: number, value: Record<string, unknown>): Float32Array | string {
  const packed = value.b64;
  const extra = Object.keys(value).filter((key) => key !== 'b64');
  if (extra.length > 0) return `field "${field}" has keys ${extra.map((k) => `"${k}"`).join(', ')} next to "b64"; a packed vector is {"b64": "…"} alone`;
  const fix = `pack the ${dimension} values as little-endian float32 and base64 them (Python: base64.b64encode(np.asarray(v, "<f4").tobytes()))`;
  if (typeof packed !== 'string' || !BASE64.test(packed)) return `field "${field}".b64 is ${describe(packed)}, not base64 text; ${fix}`;
  // Counted from the text, as Node's decoder would silently stop at a misplaced `=`.
  const byteLength = base64ByteLength(packed);
  if (byteLength !== dimension * 4) {
    return `field "${field}".b64 holds ${byteLength} bytes (${byteLength / 4} float32 values), expected ${dimension * 4} bytes for ${dimension} values (baseModel.dimension); ${fix}`;
  }
  const bytes = Buffer.from(packed, 'base64');
  const vector = new Float32Array(dimension);
  for (let i = 0; i < dimension; i += 1) vector[i] = bytes.readFloatLE(i * 4);
  const bad = firstNonFinite(vector);
  if (bad >= 0) {
    return `field "${field}".b64 item ${bad} is ${vector[bad]}, not a finite number`;
  }
  return vector;
}

/** The index of the first value that is NaN or infinite; -1 when every value is finite. */
function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i += 1) if (!Number.isFinite(values[i])) return i;
  return -1;
}

/** The `=` a base64 text ends with (two at most count). */
function base64Padding(text: string): number {
  return text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
}

/** The bytes a base64 text stands for, counting its padding. */
function base64ByteLength(text: string): number {
  return Math.floor((text.length * 3) / 4) - base64Padding(text);
}

const TRUE_WORDS = new Set(['1', 'true']);
const FALSE_WORDS = new Set(['0', 'false']);

/** What checking one task's label takes: its type, and its classes or `positive` values (a task spec is one). */
export type LabelRule = { type: 'binary'; positive?: string[] } | { type: 'multiclass'; classes: string[] } | { type: 'regression' };

/**
 * One label checked as a dataset row's label is: the value training uses (0/1, the class index, the
 * number) or the problem, so a label that `/feedback` accepts is one Prepare accepts.
 */
export function checkLabel(rule: LabelRule, value: unknown): { label: number } | { message: string } {
  return labelParser(rule)(value);
}

function labelParser(task: LabelRule): LabelParser {
  switch (task.type) {
    case 'binary': {
      if (task.positive !== undefined) return positiveLabelParser(task.positive);
      return (value) => {
        if (value === true || value === 1) return { label: 1 };
        if (value === false || value === 0) return { label: 0 };
        if (typeof value === 'string') {
          const word = value.trim().toLowerCase();
          if (TRUE_WORDS.has(word)) return { label: 1 };
          if (FALSE_WORDS.has(word)) return { label: 0 };
        }
        return { message: `label ${describe(value)} is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"` };
      };
    }
    case 'multiclass': {
      const index = new Map(task.classes.map((name, position) => [name, position]));
      const listed = task.classes.join(' | ');
      return (value) => {
        const name = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : undefined;
        const position = name === undefined ? undefined : index.get(name);
        if (position !== undefined) return { label: position };
        const near = name === undefined ? undefined : task.classes.find((candidate) => candidate.toLowerCase() === name.trim().toLowerCase());
        return { message: `label ${describe(value)} is not one of ${listed}${near ? `; did you mean "${near}"?` : ''}` };
      };
    }
    case 'regression':
      return (value) => {
        const number = toFiniteNumber(value);
        if (number === undefined) return { message: `label ${describe(value)} is not a finite number` };
        return isFloat32(number)
          ? { label: number }
          : { message: `label ${describe(value)} is beyond ${FLOAT32_RANGE}, which training computes in; scale the labels down (e.g. another unit)` };
      };
  }
}

/**
 * `positive` names the value(s) that mean 1, compared as given after trimming spaces: any other
 * present value is 0, so `" churned"` and `"churned"` agree but `"Churned"` is a 0. A missing or
 * empty label stays unlabelled (masked), never 0.
 */
function positiveLabelParser(positive: readonly string[]): LabelParser {
  const ones = new Set(positive);
  return (value) => {
    if (typeof value === 'string') return { label: ones.has(value.trim()) ? 1 : 0 };
    if (typeof value === 'number' || typeof value === 'boolean') return { label: ones.has(String(value)) ? 1 : 0 };
    return {
      message: `label ${describe(value)} is not a value to compare with "positive" (${positive.map((p) => JSON.stringify(p)).join(', ')}); give a string, number or boolean`,
    };
  };
}
