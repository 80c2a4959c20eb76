import { configFromEnv, makeClients } from '#lib/config/index.ts';
import { LAMBDA_STAGES, type LambdaStageName } from '#lib/workflow/index.ts';
import { stageDependencies } from './dependencies.ts';
import { createStageHandlers, type StageHandler } from './handlers.ts';

let handlers: Record<LambdaStageName, StageHandler> | undefined;

/**
 * A Lambda entry point for one stage. The config and clients are built on the first invocation
 * (not at import), once per container, and reused by later invocations.
 */
export function lambdaStageHandler(stage: LambdaStageName): (event: unknown) => Promise<unknown> {
  return async (event) => {
    if (!handlers) {
      const config = configFromEnv();
      const principal = LAMBDA_STAGES.find((s) => s.state === stage)?.handler;
      handlers = createStageHandlers(stageDependencies(config, makeClients(config, { principal })), { trigger: process.env.AGENTFLOW_TRIGGER ?? 'aws' });
    }
    return handlers[stage](event);
  };
}
