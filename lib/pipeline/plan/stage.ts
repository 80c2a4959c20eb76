/** The Plan stage: the first generation of proposals from the tuner's stored policy. */
import { planRun } from '#lib/pipeline/plan/plan.ts';
import { PlanInput, PlanOutput } from '#lib/pipeline/contracts.ts';
import type { StageFactory } from '#lib/pipeline/stage.ts';

export const planStage: StageFactory =
  ({ store, registry, runLog, rewards }) =>
  async (event) =>
    PlanOutput.parse(await planRun(PlanInput.parse(event), { store, registry, runLog, rewards }));
