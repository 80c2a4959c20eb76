import { validateInputs, type ValidatedRow } from '#lib/domain/datasets/index.ts';
import type { CardServing } from '#lib/domain/run/index.ts';
import type { EncoderDescriptor } from '#lib/domain/encoders/index.ts';
import { renderValue, type BaseModelSpec } from '#lib/domain/spec/index.ts';

/** One thing wrong with a request record, by its index in `records`. */
export interface RecordProblem {
  record: number;
  field?: string;
  value: unknown;
  /** Names the field, the bad value and the fix (`field "age" is "abc", not a number; …`). */
  message: string;
}

export interface CheckedRecords {
  rows: ValidatedRow[];
  problems: RecordProblem[];
  /** Values the model encodes as it would a missing one (missing numeric or categorical fields, unknown categories), under the `impute` policy. */
  imputed: number;
}

/** Checks request records against one model's encoder inputs. */
export type RecordChecker = (records: readonly unknown[]) => CheckedRecords;

/** A model card's descriptor and serving section are read once and never change, so a checker is built once per descriptor. */
const checkers = new WeakMap<EncoderDescriptor, RecordChecker>();

/**
 * The checks a model's inputs need, built once per encoder descriptor. Values are coerced exactly
 * as training data was (`validateInputs` of lib/domain/datasets: `"3.5"` and 3.5 are the same number, an
 * empty string is a missing tabular value, a CSV-style `"[0.1, …]"` is a vector), so a record that
 * would have been a valid training row is a valid request. Unlike a dataset, a request may not
 * carry fields the model does not read: a misspelt optional column would otherwise be imputed in
 * silence.
 */
export function recordChecker(descriptor: EncoderDescriptor, serving?: CardServing): RecordChecker {
  let checker = checkers.get(descriptor);
  if (!checker) {
    checker = buildChecker(descriptor, serving ?? { unknownInputs: 'impute', categories: {} });
    checkers.set(descriptor, checker);
  }
  return checker;
}

/** The model's input fields, in the order the descriptor lists them. */
export function inputFields(descriptor: EncoderDescriptor): string[] {
  return [...new Set(descriptor.inputs.flatMap((input) => input.fields))];
}

function buildChecker(descriptor: EncoderDescriptor, serving: CardServing): RecordChecker {
  const fields = inputFields(descriptor);
  const known = new Set(fields);
  const listed = fields.join(', ');
  const baseModels = baseModelsOf(descriptor);
  const imputable = imputableFields(descriptor, serving);
  const reject = serving.unknownInputs === 'reject';
  return (records) => {
    const rows: ValidatedRow[] = [];
    const problems: RecordProblem[] = [];
    let imputed = 0;
    records.forEach((record, index) => {
      if (typeof record !== 'object' || record === null || Array.isArray(record)) {
        problems.push({
          record: index,
          value: record,
          message: `is ${renderValue(record)}${Array.isArray(record) ? ' (an array)' : ''}; each record is an object of the model's input fields (${listed})`,
        });
        return;
      }
      const fieldsOfRecord = record as Record<string, unknown>;
      let bad = false;
      for (const field of Object.keys(fieldsOfRecord)) {
        if (!known.has(field)) {
          bad = true;
          problems.push({
            record: index,
            field,
            value: fieldsOfRecord[field],
            message: `field "${field}" is not an input of this model (inputs: ${listed}); remove it or fix its name`,
          });
        }
      }
      const result = validateInputs(fieldsOfRecord, baseModels, { file: 'request', line: index });
      for (const problem of result.problems) {
        bad = true;
        problems.push({ record: index, field: problem.field, value: problem.value, message: problem.message });
      }
      if (bad || !result.input) return;
      let unknown = 0;
      for (const { field, categories } of imputable) {
        const value = result.input[field];
        if (value !== null && (categories === undefined || categories.has(value as string))) continue;
        unknown += 1;
        if (!reject) continue;
        bad = true;
        problems.push({
          record: index,
          field,
          value: fieldsOfRecord[field],
          message:
            value === null
              ? `field "${field}" is missing, and this project refuses inputs the model has no value for (serving.unknownInputs "reject"); send a value`
              : `field "${field}" is ${renderValue(value)}, not a category the model knows (${knownList(categories!)}); send one of those, or set serving.unknownInputs to "impute"`,
        });
      }
      if (bad) return;
      imputed += unknown;
      rows.push({ input: result.input, labels: {} });
    });
    return { rows, problems, imputed };
  };
}

/*
 * An embedded categorical column may know thousands of levels (`maxEmbeddingLevels`); a 400 names
 * the first ones, most frequent first, and how many there are.
 */
const KNOWN_CATEGORIES_SHOWN = 20;
function knownList(categories: ReadonlySet<string>): string {
  const shown = [...categories].slice(0, KNOWN_CATEGORIES_SHOWN).join(', ');
  return categories.size > KNOWN_CATEGORIES_SHOWN ? `${shown}, … ${categories.size} in all` : shown;
}

/** The fields a value may be missing from and still be encoded (tabular ones), with the categories of the categorical ones when the card lists them. */
function imputableFields(descriptor: EncoderDescriptor, serving: CardServing): { field: string; categories?: Set<string> }[] {
  return descriptor.inputs.flatMap((input) => {
    if (input.role === 'numeric') return input.fields.map((field) => ({ field }));
    if (input.role !== 'categorical') return [];
    return input.fields.map((field) => {
      const categories = serving.categories[field];
      return categories === undefined ? { field } : { field, categories: new Set(categories) };
    });
  });
}

/** Base models whose input checks are the descriptor's inputs (the fitting options are irrelevant here). */
function baseModelsOf(descriptor: EncoderDescriptor): BaseModelSpec[] {
  const models: BaseModelSpec[] = [];
  const numeric: string[] = [];
  const categorical: string[] = [];
  for (const input of descriptor.inputs) {
    switch (input.role) {
      case 'text':
        models.push({ kind: 'text', field: input.fields[0], ngramRange: [1, 1], vocabularySize: 1, minDocumentFrequency: 1, lowercase: false });
        break;
      case 'token_ids':
      case 'attention_mask':
        models.push({ kind: 'onnx', model: '', tokenizer: '', textField: input.fields[0], pooling: 'mean', maxLength: 1, normalize: false });
        break;
      case 'features':
        models.push({ kind: 'features', field: input.fields[0], dimension: Number(input.shape[1] ?? descriptor.dimension) });
        break;
      case 'numeric':
        numeric.push(...input.fields);
        break;
      case 'categorical':
        categorical.push(...input.fields);
        break;
    }
  }
  if (numeric.length + categorical.length > 0) models.push({ kind: 'tabular', numeric, categorical, maxCategories: 1 });
  return models;
}
