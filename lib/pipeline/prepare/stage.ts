/** The Prepare stage: validates the spec and datasets, fits the base-model graph (a bring-your-own ONNX encoder is run once to read its signature). */
import { fitEncodersInStore, prepareRun } from '#lib/pipeline/prepare/index.ts';
import { PrepareInput, PrepareOutput } from '#lib/pipeline/contracts.ts';
import type { StageFactory } from '#lib/pipeline/stage.ts';

export const prepareStage: StageFactory =
  ({ store, runLog, rewards }, options) =>
  async (event) =>
    PrepareOutput.parse(
      await prepareRun(
        PrepareInput.parse(event),
        { store, runLog, rewards, fitEncoders: fitEncodersInStore(store) },
        { ...(options.trigger ? { trigger: options.trigger } : {}) },
      ),
    );
