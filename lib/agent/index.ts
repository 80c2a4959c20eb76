/** The agent: plans a run from the project's history and tunes task weights across generations of trials. */
export { planRun, type AgentDependencies, type PlanDecision } from './plan.ts';
export { rewardGeneration, type TrialRow } from './reward.ts';
export { AgentError, type AgentErrorCode } from './errors.ts';
export { agentKeys, objectiveTasks, type GenerationState, type StoredPolicy, type TuningOutcome } from './state.ts';
