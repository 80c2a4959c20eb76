import { planRun, rewardGeneration } from '#lib/agent/index.ts';
import { exportBestTrial, promoteCandidate } from '#lib/deploy/index.ts';
import { fitEncodersInStore, prepareRun } from '#lib/prepare/index.ts';
import {
  ExportInput,
  ExportOutput,
  PlanInput,
  PlanOutput,
  PrepareInput,
  PrepareOutput,
  PromoteInput,
  PromoteOutput,
  RecordFailureInput,
  RecordFailureOutput,
  RewardInput,
  RewardOutput,
} from '#lib/workflow/contracts.ts';
import type { LambdaStageName } from '#lib/workflow/index.ts';
import type { StageDependencies } from './dependencies.ts';
import { recordFailure } from './recordFailure.ts';

export type StageHandler = (event: unknown) => Promise<unknown>;

/**
 * Every Lambda stage as a function of its event: input parsed with the stage's contract, one call
 * into lib/, output checked against the contract (a wrong shape fails here, by name, rather than
 * as an uncatchable `States.Runtime` in the state machine). The same map serves the Lambda entry
 * points in AWS and the local runner.
 */
export function createStageHandlers(deps: StageDependencies, options: { trigger?: string } = {}): Record<LambdaStageName, StageHandler> {
  const { store, registry, rewards } = deps;
  return {
    Prepare: async (event) =>
      PrepareOutput.parse(await prepareRun(PrepareInput.parse(event), { store, registry, fitEncoders: fitEncodersInStore(store) }, { ...(options.trigger ? { trigger: options.trigger } : {}) })),
    Plan: async (event) => PlanOutput.parse(await planRun(PlanInput.parse(event), { store, registry, rewards })),
    Reward: async (event) => RewardOutput.parse(await rewardGeneration(RewardInput.parse(event), { store, registry, rewards })),
    Export: async (event) => ExportOutput.parse(await exportBestTrial(ExportInput.parse(event), { store, registry })),
    Promote: async (event) => PromoteOutput.parse(await promoteCandidate(PromoteInput.parse(event), { store, registry })),
    RecordFailure: async (event) => RecordFailureOutput.parse(await recordFailure(RecordFailureInput.parse(event), { registry })),
  };
}
