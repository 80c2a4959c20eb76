export { readRecords, type ByteSource, type ReadRecordsOptions, type SourceRecord } from '#lib/datasets/read.ts';
export {
  assertValidDataset,
  checkLabel,
  isMissingNumber,
  trimsCsv,
  validateDataset,
  validateInputs,
  validateRecord,
  type DatasetReport,
  type LabelRule,
  type RecordLocation,
  type ValidateDatasetOptions,
  type ValidatedRow,
} from '#lib/datasets/validate.ts';
export { splitOf, type SplitName, type SplitOptions } from '#lib/datasets/split.ts';
export { DatasetError, formatProblem, formatProblems, type DatasetErrorCode, type DatasetProblem } from '#lib/datasets/errors.ts';
export { ProblemSummary, type ProblemGroup, type ProblemKind, type ProblemSummaryOptions } from '#lib/datasets/problems.ts';
