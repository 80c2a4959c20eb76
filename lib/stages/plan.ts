/** The Plan stage: the first generation of proposals from the tuner's stored policy. */
import { planRun } from '#lib/agent/index.ts';
import { PlanInput, PlanOutput } from '#lib/workflow/contracts.ts';
import type { StageFactory } from './stage.ts';

export const planStage: StageFactory =
  ({ store, registry, rewards }) =>
  async (event) =>
    PlanOutput.parse(await planRun(PlanInput.parse(event), { store, registry, rewards }));
