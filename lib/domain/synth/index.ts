/**
 * Seeded synthetic multi-task data with a known teacher, for tests, benchmarks and the demo:
 * the true labelling function is available, so learnability and task conflict are controlled.
 */
export { SynthError } from '#lib/domain/synth/errors.ts';
export { Teacher, TEACHER_OUTPUT_STD, type GeneratedTask, type SynthTaskType, type TeacherHead } from '#lib/domain/synth/teacher.ts';
export { generateMultiTask, REGRESSION_NOISE_STD, type MultiTaskDataset, type MultiTaskOptions, type SynthTaskOptions } from '#lib/domain/synth/generate.ts';
export {
  CENSUS_CATEGORICAL,
  CENSUS_COLUMNS,
  CENSUS_MISSING_SHARE,
  CENSUS_NUMERIC,
  censusCsv,
  censusTable,
  MISSING,
  type CensusColumn,
  type CensusOptions,
  type CensusRow,
} from '#lib/domain/synth/census.ts';
export { generateTextCorpus, wordOf, type TextCorpus, type TextCorpusOptions } from '#lib/domain/synth/text.ts';
