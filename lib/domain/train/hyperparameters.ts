import type { Spec } from '#lib/domain/spec/index.ts';
import { TrainError } from '#lib/domain/train/errors.ts';
import type { HeadsModel } from '#lib/domain/train/heads.ts';

/** What a tuner proposes beside λ and the lr, by the names of `tuning.search` (see lib/domain/tune/space.ts). */
export type TrialHyperparameters = Readonly<Record<string, number>>;

const APPLIES: Readonly<Record<string, string>> = {
  weightDecay: 'training.weightDecay',
  patience: 'training.earlyStoppingPatience',
  width: 'the width of every model.hidden layer and model.expertHidden',
  depth: 'the number of model.hidden layers',
  dropout: 'model.dropout, the dropout on each task tower’s input while training',
};

function invalid(message: string, name: string, value: unknown): TrainError {
  return new TrainError(message, { code: 'INVALID_INPUT', context: { hyperparameter: name, value } });
}

/**
 * The spec a trial trains with: the spec's own settings with the proposal's hyperparameters in
 * their place. Width and depth reshape the shared layers (depth repeats the width, or the first
 * layer's when width is not searched), so the trial's weights need this model section to be rebuilt
 * (`trainTrial` stores it with the weights). No hyperparameters gives the spec itself.
 */
export function specWithHyperparameters<S extends Pick<Spec, 'model' | 'training'>>(spec: S, hyperparameters: TrialHyperparameters | undefined): S {
  if (hyperparameters === undefined || Object.keys(hyperparameters).length === 0) return spec;
  for (const [name, value] of Object.entries(hyperparameters)) {
    if (APPLIES[name] === undefined)
      throw invalid(`hyperparameter "${name}" is not one a trial applies (${Object.keys(APPLIES).join(', ')}); fix tuning.search`, name, value);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(`hyperparameter ${name} = ${String(value)} is not a finite number`, name, value);
  }
  const { weightDecay, patience, width, depth, dropout } = hyperparameters;
  const count = (name: string, value: number, min: number): number => {
    if (!Number.isInteger(value) || value < min)
      throw invalid(`hyperparameter ${name} = ${value} must be an integer ≥ ${min} (it sets ${APPLIES[name]})`, name, value);
    return value;
  };
  if (weightDecay !== undefined && !(weightDecay >= 0)) throw invalid(`hyperparameter weightDecay = ${weightDecay} must be ≥ 0`, 'weightDecay', weightDecay);
  if (dropout !== undefined && !(dropout >= 0 && dropout < 1)) throw invalid(`hyperparameter dropout = ${dropout} must lie in [0, 1)`, 'dropout', dropout);
  const layerWidth = width === undefined ? undefined : count('width', width, 1);
  const layers = depth === undefined ? undefined : count('depth', depth, 1);
  const hidden =
    layers !== undefined
      ? Array.from({ length: layers }, () => layerWidth ?? spec.model.hidden[0] ?? spec.model.expertHidden)
      : layerWidth !== undefined
        ? spec.model.hidden.map(() => layerWidth)
        : spec.model.hidden;
  return {
    ...spec,
    model: {
      ...spec.model,
      hidden,
      ...(layerWidth === undefined ? {} : { expertHidden: layerWidth }),
      ...(dropout === undefined ? {} : { dropout }),
    },
    training: {
      ...spec.training,
      ...(weightDecay === undefined ? {} : { weightDecay }),
      ...(patience === undefined ? {} : { earlyStoppingPatience: count('patience', patience, 0) }),
    },
  };
}

/** The part of the model section a trial's weights depend on (stored with them when a trial reshaped it). */
export function headsModelOf(model: HeadsModel): HeadsModel {
  return {
    hidden: [...model.hidden],
    experts: model.experts,
    expertHidden: model.expertHidden,
    towerHidden: [...model.towerHidden],
    ...(model.dropout === undefined ? {} : { dropout: model.dropout }),
  };
}
