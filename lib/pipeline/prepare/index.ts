/** The Prepare stage: spec and dataset checks, base-model fitting, the run manifest. */
export { fitEncodersInStore } from './fit.ts';
export { prepareRun, effectiveSplit, feedbackRecord, writeFeedbackDataset, PROBLEMS_FILE, type PrepareDependencies, type PrepareOptions } from './prepare.ts';
export { PrepareError, type PrepareErrorCode } from './errors.ts';
export type { DatasetEntry, DatasetRole, EncoderEntry, RunManifest } from '#lib/domain/run/index.ts';
