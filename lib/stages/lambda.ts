import { configFromEnv } from '#lib/config/index.ts';
import { stageDependencies } from './dependencies.ts';
import type { StageFactory, StageHandler } from './stage.ts';

/**
 * A Lambda entry point for one stage. The config and clients are built on the first invocation
 * (not at import), once per container, and reused by later invocations. Entry points pass their
 * stage's own module (`lambdaStageHandler(planStage)`), so the bundle holds that stage alone.
 */
export function lambdaStageHandler(stage: StageFactory): (event: unknown) => Promise<unknown> {
  let handler: StageHandler | undefined;
  return async (event) => {
    handler ??= stage(stageDependencies(configFromEnv()), { trigger: process.env.AGENTFLOW_TRIGGER ?? 'aws' });
    return handler(event);
  };
}
