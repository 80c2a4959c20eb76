/** The Promote stage: scores candidate and champion on the holdout in ONNX Runtime, registers, moves the alias. */
import { promoteCandidate } from '#lib/deploy/index.ts';
import { PromoteInput, PromoteOutput } from '#lib/workflow/contracts.ts';
import type { StageFactory } from './stage.ts';

export const promoteStage: StageFactory =
  ({ store, registry }) =>
  async (event) =>
    PromoteOutput.parse(await promoteCandidate(PromoteInput.parse(event), { store, registry }));
