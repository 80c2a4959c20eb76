import { TuneError } from './errors.ts';
import { createPgpeTuner, type PgpeHyperparameters, type PgpeState } from './pgpe.ts';
import { createRandomSearchTuner, createUniformTuner, type RandomSearchOptions, type RandomSearchState, type UniformState } from './search.ts';
import type { Tuner } from './types.ts';

export type AnyTunerState = PgpeState | RandomSearchState | UniformState;

export type TunerOptions =
  { kind: 'pgpe'; hyperparameters?: Partial<PgpeHyperparameters> } | { kind: 'random'; search?: Partial<RandomSearchOptions> } | { kind: 'uniform' };

/** The tuner for a kind named in a spec or a stored state. */
export function createTuner(options: { kind: 'pgpe'; hyperparameters?: Partial<PgpeHyperparameters> }): Tuner<PgpeState>;
export function createTuner(options: { kind: 'random'; search?: Partial<RandomSearchOptions> }): Tuner<RandomSearchState>;
export function createTuner(options: { kind: 'uniform' }): Tuner<UniformState>;
export function createTuner(options: TunerOptions): Tuner<PgpeState> | Tuner<RandomSearchState> | Tuner<UniformState>;
export function createTuner(options: TunerOptions): Tuner<PgpeState> | Tuner<RandomSearchState> | Tuner<UniformState> {
  switch (options.kind) {
    case 'pgpe':
      return createPgpeTuner(options.hyperparameters);
    case 'random':
      return createRandomSearchTuner(options.search);
    case 'uniform':
      return createUniformTuner();
    default:
      throw new TuneError(`tuner kind "${String((options as { kind: unknown }).kind)}" is not one of pgpe, random, uniform`, {
        code: 'TUNE_CONFIG_INVALID',
        context: { kind: (options as { kind: unknown }).kind },
      });
  }
}
