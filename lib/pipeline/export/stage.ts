/** The Export stage: the merged ONNX model of the best trial, parity-checked in ONNX Runtime. */
import { exportBestTrial } from '#lib/pipeline/export/export.ts';
import { ExportInput, ExportOutput } from '#lib/pipeline/contracts.ts';
import type { StageFactory } from '#lib/pipeline/stage.ts';

export const exportStage: StageFactory =
  ({ store, registry, runLog }) =>
  async (event) =>
    ExportOutput.parse(await exportBestTrial(ExportInput.parse(event), { store, registry, runLog }));
