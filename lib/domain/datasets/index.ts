export { readRecords, type ByteSource, type ReadRecordsOptions, type SourceRecord } from '#lib/domain/datasets/read.ts';
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
} from '#lib/domain/datasets/validate.ts';
export { splitOf, type SplitName, type SplitOptions } from '#lib/domain/datasets/split.ts';
export { DatasetError, formatProblem, formatProblems, type DatasetErrorCode, type DatasetProblem } from '#lib/domain/datasets/errors.ts';
export { ProblemSummary, type ProblemGroup, type ProblemKind, type ProblemSummaryOptions } from '#lib/domain/datasets/problems.ts';
