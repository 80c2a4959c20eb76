import type { LambdaStageName } from '#lib/pipeline/index.ts';
import type { StageDependencies } from './dependencies.ts';
import { exportStage } from '#lib/pipeline/export/stage.ts';
import { planStage } from '#lib/pipeline/plan/stage.ts';
import { prepareStage } from '#lib/pipeline/prepare/stage.ts';
import { promoteStage } from '#lib/pipeline/promote/stage.ts';
import { recordFailureStage } from '#lib/pipeline/recordFailure/stage.ts';
import { rewardStage } from '#lib/pipeline/reward/stage.ts';
import type { StageFactory, StageHandler, StageOptions } from './stage.ts';

export type { StageFactory, StageHandler, StageOptions } from './stage.ts';

/** Every Lambda stage by workflow state; keyed by LambdaStageName, so a new stage must be added here. */
export const STAGE_FACTORIES: Record<LambdaStageName, StageFactory> = {
  Prepare: prepareStage,
  Plan: planStage,
  Reward: rewardStage,
  Export: exportStage,
  Promote: promoteStage,
  RecordFailure: recordFailureStage,
};

/**
 * Every Lambda stage wired to one set of dependencies, for the local runner, which runs them all
 * in one process. A Lambda entry point imports its own stage module instead (see stage.ts).
 */
export function createStageHandlers(deps: StageDependencies, options: StageOptions = {}): Record<LambdaStageName, StageHandler> {
  const entries = Object.entries(STAGE_FACTORIES).map(([state, factory]) => [state, factory(deps, options)] as const);
  return Object.fromEntries(entries) as Record<LambdaStageName, StageHandler>;
}
