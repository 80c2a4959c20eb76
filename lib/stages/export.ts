/** The Export stage: the merged ONNX model of the best trial, parity-checked in ONNX Runtime. */
import { exportBestTrial } from '#lib/deploy/index.ts';
import { ExportInput, ExportOutput } from '#lib/workflow/contracts.ts';
import type { StageFactory } from './stage.ts';

export const exportStage: StageFactory =
  ({ store, registry }) =>
  async (event) =>
    ExportOutput.parse(await exportBestTrial(ExportInput.parse(event), { store, registry }));
