export { readRecords, type ByteSource, type ReadRecordsOptions, type SourceRecord } from '#lib/datasets/read.ts';
export {
  assertValidDataset,
  validateDataset,
  validateInputs,
  validateRecord,
  type DatasetReport,
  type RecordLocation,
  type ValidateDatasetOptions,
  type ValidatedRow,
} from '#lib/datasets/validate.ts';
export { splitOf, type SplitName, type SplitOptions } from '#lib/datasets/split.ts';
export {
  DatasetError,
  formatProblem,
  formatProblems,
  type DatasetErrorCode,
  type DatasetProblem,
} from '#lib/datasets/errors.ts';
