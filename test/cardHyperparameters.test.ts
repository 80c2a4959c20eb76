import { describe, expect, it } from 'vitest';
import { hyperparametersText } from '#lib/adapters/cli/summary.ts';
import { cardHyperparametersOf } from '#lib/pipeline/export/hyperparameters.ts';
import { CardHyperparameters, ModelCard } from '#lib/domain/run/index.ts';
import { parseSpec } from '#lib/domain/spec/index.ts';

const spec = parseSpec({
  project: 'cards',
  baseModel: { kind: 'tabular', numeric: ['age', 'gain'], categorical: ['job'] },
  datasets: { train: 's3://bucket/train.csv' },
  tasks: [{ name: 'income', type: 'binary' }],
  model: { architecture: ['shared-bottom', 'mmoe'], hidden: [64], towerHidden: [16], experts: 3, expertHidden: 32 },
  training: { epochs: 30, batchSize: 128, learningRate: 0.002, weightDecay: 1e-4, earlyStoppingPatience: 4 },
});

const tabular = (encodings: Record<string, string>) => ({
  id: 'e1',
  kind: 'tabular' as const,
  summary: { numeric: Object.entries(encodings).map(([column, encoding]) => ({ column, encoding, mean: 0, std: 1 })) },
});

describe("the model card's hyperparameters", () => {
  it('records the searched values in place of the spec and names what the agent chose', () => {
    const recorded = cardHyperparametersOf({
      spec,
      proposal: {
        learningRate: 0.005,
        hyperparameters: { weightDecay: 0.003, width: 256, depth: 2, dropout: 0.25, patience: 8 },
        encoderId: 'e1',
        maxEpochs: 10,
      },
      encoder: tabular({ age: 'ple', gain: 'ple' }),
      architecture: 'shared-bottom',
    });

    expect(recorded).toEqual({
      learningRate: 0.005,
      weightDecay: 0.003,
      dropout: 0.25,
      hidden: [256, 256],
      towerHidden: [16],
      patience: 8,
      epochs: 10,
      batchSize: 128,
      encoderId: 'e1',
      numericEncoding: 'ple',
      searched: ['learningRate', 'weightDecay', 'width', 'depth', 'dropout', 'patience', 'encoder'],
    });
    expect(CardHyperparameters.parse(recorded)).toEqual(recorded);
  });

  it("records the spec's own settings when the proposal carried only λ, and each column's encoding when they differ", () => {
    const recorded = cardHyperparametersOf({ spec, proposal: {}, encoder: tabular({ age: 'standard', gain: 'quantile' }), architecture: 'shared-bottom' });

    expect(recorded).toMatchObject({
      learningRate: 0.002,
      weightDecay: 1e-4,
      dropout: 0,
      hidden: [64],
      patience: 4,
      epochs: 30,
      numericEncoding: 'mixed',
      columnEncodings: { age: 'standard', gain: 'quantile' },
      searched: [],
    });
    expect(hyperparametersText(recorded)).toBe(
      'learningRate 0.002, weightDecay 0.0001, dropout 0, hidden [64], towerHidden [16], patience 4, epochs 30, batchSize 128, encoder e1, numericEncoding age=standard gain=quantile',
    );
  });

  it('records the tables of embedded categorical columns', () => {
    const recorded = cardHyperparametersOf({
      spec,
      proposal: {},
      encoder: { ...tabular({ age: 'standard', gain: 'standard' }), categoryEmbeddings: [{ column: 'job', feature: 2, levels: 301, dimension: 16 }] },
      architecture: 'shared-bottom',
    });

    expect(recorded.categoryEmbeddings).toEqual({ job: { levels: 301, dimension: 16 } });
    expect(CardHyperparameters.parse(recorded)).toEqual(recorded);
    expect(hyperparametersText(recorded)).toMatch(/, numericEncoding standard, categoryEmbeddings job=301×16$/);
  });

  it("records an MMoE's experts and their width, and stars the searched entries in the CLI's line", () => {
    const recorded = cardHyperparametersOf({
      spec,
      proposal: { hyperparameters: { width: 48 }, architecture: 'mmoe' },
      encoder: { id: 'e0', kind: 'text', summary: {} },
      architecture: 'mmoe',
    });

    expect(recorded).toMatchObject({ hidden: [48], experts: 3, searched: ['width', 'architecture'] });
    expect(recorded.numericEncoding).toBeUndefined();
    expect(hyperparametersText(recorded)).toMatch(
      /^learningRate 0\.002, .*expertHidden \[48\]\*, towerHidden \[16\], experts 3\*, .*encoder e0 \(\* searched\)$/,
    );
  });

  it('keeps reading cards written before the hyperparameters were recorded', () => {
    const card = ModelCard.shape.hyperparameters;

    expect(card.safeParse(undefined).success).toBe(true);
    expect(CardHyperparameters.safeParse({ learningRate: 0.01 }).success).toBe(false);
  });
});
