/** The RecordFailure stage: marks the run failed with the failing state and a readable error (see recordFailure.ts). */
import { RecordFailureInput, RecordFailureOutput } from '#lib/pipeline/contracts.ts';
import { recordFailure } from './recordFailure.ts';
import type { StageFactory } from '#lib/pipeline/stage.ts';

export const recordFailureStage: StageFactory =
  ({ runLog }) =>
  async (event) =>
    RecordFailureOutput.parse(await recordFailure(RecordFailureInput.parse(event), { runLog }));
