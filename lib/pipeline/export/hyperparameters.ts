import type { CardHyperparameters, EncoderEntry } from '#lib/domain/run/index.ts';
import type { Spec } from '#lib/domain/spec/index.ts';
import { specWithHyperparameters } from '#lib/domain/train/index.ts';
import type { Proposal } from '#lib/pipeline/contracts.ts';

/**
 * The winning trial's settings for its model card: the trial's spec as the trainer built it
 * (`specWithHyperparameters` over the spec), its learning rate and epoch cap, and the encoder it
 * trained on. `searched` lists what the proposal carried, so the card tells a chosen value from a
 * spec default.
 */
export function cardHyperparametersOf(options: {
  spec: Pick<Spec, 'model' | 'training'>;
  proposal: Pick<Proposal, 'learningRate' | 'hyperparameters' | 'maxEpochs' | 'encoderId' | 'architecture'>;
  encoder: Pick<EncoderEntry, 'id' | 'kind' | 'summary' | 'categoryEmbeddings'>;
  architecture: string;
}): CardHyperparameters {
  const { proposal, encoder } = options;
  const trained = specWithHyperparameters(options.spec, proposal.hyperparameters);
  const { model, training } = trained;
  const searched = [
    ...(proposal.learningRate === undefined ? [] : ['learningRate']),
    ...Object.keys(proposal.hyperparameters ?? {}),
    ...(proposal.encoderId === undefined ? [] : ['encoder']),
    ...(proposal.architecture === undefined ? [] : ['architecture']),
  ];
  const mmoe = options.architecture === 'mmoe';
  return {
    learningRate: proposal.learningRate ?? training.learningRate,
    weightDecay: training.weightDecay,
    dropout: model.dropout ?? 0,
    // An MMoE's experts are one layer of expertHidden units; `hidden` shapes only shared-bottom heads.
    hidden: mmoe ? [model.expertHidden] : [...model.hidden],
    towerHidden: [...model.towerHidden],
    ...(mmoe ? { experts: model.experts } : {}),
    patience: training.earlyStoppingPatience,
    epochs: Math.min(training.epochs, proposal.maxEpochs ?? Infinity),
    batchSize: training.batchSize,
    encoderId: encoder.id,
    ...numericEncodingOf(encoder),
    ...(encoder.categoryEmbeddings?.length
      ? { categoryEmbeddings: Object.fromEntries(encoder.categoryEmbeddings.map((e) => [e.column, { levels: e.levels, dimension: e.dimension }])) }
      : {}),
    searched,
  };
}

/** A tabular encoder's numeric encoding from its fitted summary: one name, or `mixed` with each column's. */
function numericEncodingOf(encoder: Pick<EncoderEntry, 'kind' | 'summary'>): Pick<CardHyperparameters, 'numericEncoding' | 'columnEncodings'> {
  const numeric =
    encoder.kind === 'tabular' && Array.isArray(encoder.summary.numeric) ? (encoder.summary.numeric as { column?: unknown; encoding?: unknown }[]) : [];
  const columns = numeric.flatMap(({ column, encoding }) => (typeof column === 'string' && typeof encoding === 'string' ? [[column, encoding] as const] : []));
  if (columns.length === 0) return {};
  const distinct = new Set(columns.map(([, encoding]) => encoding));
  return distinct.size === 1 ? { numericEncoding: columns[0][1] } : { numericEncoding: 'mixed', columnEncodings: Object.fromEntries(columns) };
}
