/** The Promote stage: scores candidate and champion on the holdout in ONNX Runtime, registers, moves the alias. */
import { promoteCandidate } from '#lib/pipeline/promote/promote.ts';
import { PromoteInput, PromoteOutput } from '#lib/pipeline/contracts.ts';
import type { StageFactory } from '#lib/pipeline/stage.ts';

export const promoteStage: StageFactory =
  ({ store, registry, runLog }) =>
  async (event) =>
    PromoteOutput.parse(await promoteCandidate(PromoteInput.parse(event), { store, registry, runLog }));
