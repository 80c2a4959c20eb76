/**
 * Seeded synthetic multi-task data with a known teacher, for tests, benchmarks and the demo:
 * the true labelling function is available, so learnability and task conflict are controlled.
 */
export { SynthError } from '#lib/synth/errors.ts';
export { deriveSeed, mulberry32, Random } from '#lib/synth/random.ts';
export { Teacher, TEACHER_OUTPUT_STD, type GeneratedTask, type SynthTaskType, type TeacherHead } from '#lib/synth/teacher.ts';
export { generateMultiTask, REGRESSION_NOISE_STD, type MultiTaskDataset, type MultiTaskOptions, type SynthTaskOptions } from '#lib/synth/generate.ts';
export { generateTextCorpus, wordOf, type TextCorpus, type TextCorpusOptions } from '#lib/synth/text.ts';
