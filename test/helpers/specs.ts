/**
 * Spec fixtures: most tests train a features model (vectors in, no base model to fetch), so their
 * specs share a skeleton and differ in what the test is about (tasks, model, training, tuning).
 */
import { parseSpec, type Spec, type SpecInput } from '#lib/domain/spec/index.ts';

export type FeaturesSpecOptions = { dimension: number; tasks: SpecInput['tasks'] } & Partial<Omit<SpecInput, 'baseModel' | 'tasks'>>;

/** A features model's spec input: project `demo` trained from `train.jsonl` unless the options say otherwise. */
export function featuresSpecInput(options: FeaturesSpecOptions): SpecInput {
  const { dimension, project = 'demo', datasets = { train: 'train.jsonl' }, ...rest } = options;
  return { project, baseModel: { kind: 'features', dimension }, datasets, ...rest };
}

/** `featuresSpecInput`, parsed and defaulted as a run reads it. */
export function featuresSpec(options: FeaturesSpecOptions): Spec {
  return parseSpec(featuresSpecInput(options));
}
