import { configFromEnv, makeClients } from '#lib/adapters/config/index.ts';
import { stageDependencies } from './dependencies.ts';
import type { StageFactory, StageHandler } from './stage.ts';

/**
 * A Lambda entry point for one stage. The config and clients are built on the first invocation
 * (not at import), once per container, and reused by later invocations. Entry points pass their
 * stage's own module (`lambdaStageHandler(planStage, { principal: 'plan' })`), so the bundle holds
 * that stage alone; the principal (the handler's name) tags recorded SDK calls.
 */
export function lambdaStageHandler(stage: StageFactory, options: { principal: string }): (event: unknown) => Promise<unknown> {
  let handler: StageHandler | undefined;
  return async (event) => {
    if (!handler) {
      const config = configFromEnv();
      handler = stage(stageDependencies(config, makeClients(config, { principal: options.principal })), { trigger: process.env.AGENTFLOW_TRIGGER ?? 'aws' });
    }
    return handler(event);
  };
}
