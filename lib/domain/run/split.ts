import { splitOf, type SplitName } from '#lib/domain/datasets/index.ts';
import type { DatasetRole, RunManifest } from './manifest.ts';

/** Which split a row of a dataset goes to, by the dataset's role and the row's key: its 0-based record index, or a feedback row's prediction id. */
export type SplitRouter = (role: DatasetRole, rowKey: number | string) => SplitName;

/**
 * The one split rule Prepare (which fits encoders on train rows only), Embed and Export share: a
 * validation or holdout dataset given on its own is wholly that split, and the train dataset's
 * rows are hashed by record index (`splitOf`; a feedback row by its prediction id) into only the roles not given on their own, so with
 * a validation dataset and no holdout one, train rows go to train or holdout.
 */
export function splitRouter(manifest: Pick<RunManifest, 'datasets' | 'split'>): SplitRouter {
  const given = new Set(manifest.datasets.map((d) => d.role));
  const options = {
    seed: manifest.split.seed,
    validationFraction: given.has('validation') ? 0 : manifest.split.validationFraction,
    holdoutFraction: given.has('holdout') ? 0 : manifest.split.holdoutFraction,
  };
  return (role, rowKey) => (role === 'train' ? splitOf(rowKey, options) : role);
}
