import { configFromEnv } from '#lib/config/index.ts';
import type { LambdaStageName } from '#lib/workflow/index.ts';
import { stageDependencies } from './dependencies.ts';
import { createStageHandlers, type StageHandler } from './handlers.ts';

let handlers: Record<LambdaStageName, StageHandler> | undefined;

/**
 * A Lambda entry point for one stage. The config and clients are built on the first invocation
 * (not at import), once per container, and reused by later invocations.
 */
export function lambdaStageHandler(stage: LambdaStageName): (event: unknown) => Promise<unknown> {
  return async (event) => {
    handlers ??= createStageHandlers(stageDependencies(configFromEnv()), { trigger: process.env.AGENTFLOW_TRIGGER ?? 'aws' });
    return handlers[stage](event);
  };
}
