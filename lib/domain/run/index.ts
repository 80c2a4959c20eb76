/**
 * The run's shared model: the documents every stage reads and writes about one run and the
 * model it produces, as zod schemas (so what comes back from S3 is parsed, never cast), and the
 * rules they share (split routing, the objective's tasks). It imports nothing above the spec and
 * the domain libraries, so every stage can use it without import cycles.
 */
export { CategoryEmbedding, DatasetEntry, DatasetRole, EncoderEntry, ResolvedSpec, RunManifest } from './manifest.ts';
export {
  CardEncoder,
  CardHyperparameters,
  CardServing,
  CardTask,
  ModelCard,
  ModelQuantization,
  cardServingOf,
  hyperparameterEntries,
  modelOutputName,
} from './card.ts';
export { LIVE_MODEL_FILES, LiveModel } from './liveModel.ts';
export { splitRouter, type SplitRouter } from './split.ts';
export { objectiveTasks } from './objective.ts';
