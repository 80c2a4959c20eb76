/** The agent: plans a run from the project's history, screens candidate encoders and architectures, and tunes task weights across generations of trials. */
export { planRun, type AgentDependencies, type PlanDecision } from './plan.ts';
export { rewardGeneration, type TrialRow } from './reward.ts';
export {
  advanceScreening,
  candidateKey,
  halve,
  roundEpochs,
  screeningCandidates,
  screeningDecision,
  screeningProposals,
  screeningRoundCount,
  screeningTrialId,
  uniformLambda,
  type Candidate,
  type CandidateResult,
  type ScreeningOutcome,
  type ScreeningRound,
  type ScreeningState,
} from './screening.ts';
export { AgentError, type AgentErrorCode } from './errors.ts';
export { GenerationStateDocument, TuningOutcomeDocument, agentKeys, type GenerationState, type StoredPolicy, type TuningOutcome } from './state.ts';
