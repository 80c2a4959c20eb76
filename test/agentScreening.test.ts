import { describe, expect, it } from 'vitest';
import {
  advanceScreening,
  candidateKey,
  halve,
  roundEpochs,
  screeningCandidates,
  screeningDecision,
  screeningProposals,
  screeningRoundCount,
  type Candidate,
  type CandidateResult,
  type ScreeningState,
} from '#lib/pipeline/plan/screening.ts';
import { AgentError } from '#lib/pipeline/plan/errors.ts';
import { parseSpec } from '#lib/domain/spec/index.ts';
import { Proposal } from '#lib/pipeline/contracts.ts';

const c = (encoderId: string, architecture: Candidate['architecture'] = 'shared-bottom'): Candidate => ({ encoderId, architecture });
const result = (candidate: Candidate, reward: number | null): CandidateResult => ({
  candidate,
  trialId: `t-${candidateKey(candidate).replace('/', '-')}`,
  reward,
});

describe('screening candidates', () => {
  it('pairs every encoder with every architecture, encoders in the spec order', () => {
    const spec = parseSpec({
      project: 'screen',
      baseModel: [
        { kind: 'features', dimension: 4 },
        { kind: 'features', dimension: 4 },
      ],
      datasets: { train: 's3://agentflow-artifacts/datasets/x/train.jsonl' },
      tasks: [{ name: 'spam', type: 'binary' }],
      model: { architecture: ['mmoe', 'shared-bottom'] },
    });

    const candidates = screeningCandidates(spec, [{ id: 'e0' }, { id: 'e1' }]);

    expect(candidates.map(candidateKey)).toEqual(['e0/mmoe', 'e0/shared-bottom', 'e1/mmoe', 'e1/shared-bottom']);
  });

  it.each([
    { enabled: 'auto' as const, count: 1, screen: false, reason: /nothing to screen/ },
    { enabled: true, count: 1, screen: false, reason: /nothing to screen/ },
    { enabled: 'auto' as const, count: 4, screen: true, reason: /4 candidates .*2 rounds of successive halving/ },
    { enabled: true, count: 2, screen: true, reason: /1 round of successive halving/ },
    { enabled: false, count: 4, screen: false, reason: /enabled is false: 4 candidates, tuning the first \(e0 with shared-bottom\)/ },
  ])('screens $count candidate(s) with enabled=$enabled: $screen', ({ enabled, count, screen, reason }) => {
    const candidates = Array.from({ length: count }, (_, i) => c(`e${i}`));

    const decision = screeningDecision(enabled, candidates);

    expect(decision.screen).toBe(screen);
    expect(decision.reason).toMatch(reason);
  });
});

describe('successive halving', () => {
  it.each([
    [1, 0],
    [2, 1],
    [3, 2],
    [4, 2],
    [5, 3],
    [8, 3],
  ])('leaves one of %i candidates after %i rounds', (candidates, rounds) => {
    expect(screeningRoundCount(candidates)).toBe(rounds);
  });

  it.each([
    { round: 1, trialEpochs: 2, maxEpochs: 20, epochs: 2 },
    { round: 2, trialEpochs: 2, maxEpochs: 20, epochs: 4 },
    { round: 3, trialEpochs: 2, maxEpochs: 20, epochs: 8 },
    { round: 4, trialEpochs: 2, maxEpochs: 5, epochs: 5 },
  ])('trains round $round for $epochs epochs (trialEpochs $trialEpochs, training.epochs $maxEpochs)', ({ round, trialEpochs, maxEpochs, epochs }) => {
    expect(roundEpochs(round, trialEpochs, maxEpochs)).toBe(epochs);
  });

  it('keeps the better half by reward, best first', () => {
    const kept = halve([result(c('e0'), 0.61), result(c('e1'), 0.72), result(c('e2'), 0.55), result(c('e3'), 0.7)]);

    expect(kept.map(candidateKey)).toEqual(['e1/shared-bottom', 'e3/shared-bottom']);
  });

  it('keeps the larger half of an odd number, and the earlier candidate on a tie', () => {
    const kept = halve([result(c('e0'), 0.5), result(c('e1'), 0.6), result(c('e2'), 0.6)]);

    expect(kept.map(candidateKey)).toEqual(['e1/shared-bottom', 'e2/shared-bottom']);
    expect(halve([result(c('e0'), 0.6), result(c('e1'), 0.6)]).map(candidateKey)).toEqual(['e0/shared-bottom']);
  });

  it('never lets a failed candidate go on, even when fewer than half succeeded', () => {
    const kept = halve([result(c('e0'), null), result(c('e1'), 0.4), result(c('e2'), null), result(c('e3'), null)]);

    expect(kept.map(candidateKey)).toEqual(['e1/shared-bottom']);
  });

  it('refuses to choose when every candidate failed', () => {
    const error = (() => {
      try {
        halve([result(c('e0'), null), result(c('e1'), null)]);
      } catch (caught) {
        return caught;
      }
    })();

    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).code).toBe('GENERATION_FAILED');
    expect((error as AgentError).message).toContain('t-e0-shared-bottom');
  });
});

describe('screening rounds', () => {
  const start: ScreeningState = {
    round: 1,
    candidates: [c('e0', 'shared-bottom'), c('e0', 'mmoe'), c('e1', 'shared-bottom'), c('e1', 'mmoe')],
    trialEpochs: 2,
    maxEpochs: 10,
    history: [],
  };

  it('proposes one short uniform-λ trial per candidate, valid as trial contracts', () => {
    const proposals = screeningProposals(start, { spam: 1, stars: 1 });

    expect(proposals.map((p) => p.trialId)).toEqual(['screen-r1-e0-shared-bottom', 'screen-r1-e0-mmoe', 'screen-r1-e1-shared-bottom', 'screen-r1-e1-mmoe']);
    for (const proposal of proposals) {
      expect(Proposal.parse(proposal)).toEqual(proposal);
      expect(proposal).toMatchObject({ lambda: { spam: 1, stars: 1 }, maxEpochs: 2 });
    }
    expect(screeningProposals({ ...start, round: 2 }, { spam: 1 })[0].maxEpochs).toBe(4);
  });

  it('halves round by round, doubling the epochs, and records every candidate’s reward per round', () => {
    const first = advanceScreening(start, [
      result(c('e0', 'shared-bottom'), 0.5),
      result(c('e0', 'mmoe'), 0.52),
      result(c('e1', 'shared-bottom'), 0.61),
      result(c('e1', 'mmoe'), 0.58),
    ]);

    expect(first.outcome).toBeUndefined();
    expect(first.next).toMatchObject({ round: 2, candidates: [c('e1', 'shared-bottom'), c('e1', 'mmoe')] });
    // The longer second round overturns the first round's order.
    const second = advanceScreening(first.next!, [result(c('e1', 'shared-bottom'), 0.63), result(c('e1', 'mmoe'), 0.67)]);

    expect(second.next).toBeUndefined();
    expect(second.outcome?.winner).toEqual(c('e1', 'mmoe'));
    expect(
      second.outcome?.rounds.map((r) => ({ round: r.round, maxEpochs: r.maxEpochs, rewards: r.results.map((x) => x.reward), kept: r.kept.map(candidateKey) })),
    ).toEqual([
      { round: 1, maxEpochs: 2, rewards: [0.5, 0.52, 0.61, 0.58], kept: ['e1/shared-bottom', 'e1/mmoe'] },
      { round: 2, maxEpochs: 4, rewards: [0.63, 0.67], kept: ['e1/mmoe'] },
    ]);
    expect(second.outcome?.reason).toMatch(
      /^e1\/mmoe won 2 rounds of halving over 4 candidates: reward 0\.6700 after 4 epochs in the last round, against e1\/shared-bottom 0\.6300$/,
    );
  });

  it('rejects results that do not match the round’s candidates', () => {
    expect(() => advanceScreening(start, [result(c('e0'), 0.5)])).toThrow(/expects one result for each of e0\/shared-bottom, e0\/mmoe/);
  });
});
