import { configFromEnv, makeClients } from '#lib/config/index.ts';
import { createServeContext, handleFeedbackEvent, type FunctionUrlResult, type ServeContext } from '#lib/serve/index.ts';
import { stageDependencies } from '#lib/stages/dependencies.ts';

let context: ServeContext | undefined;

function serveContext(): ServeContext {
  if (!context) {
    const config = configFromEnv();
    const deps = stageDependencies(config, makeClients(config, { principal: 'feedback' }));
    context = createServeContext({ ...deps, dynamodb: deps.clients.dynamodb, rewardTable: deps.config.rewardTable }, { drift: false });
  }
  return context;
}

/** Function URL: POST { project, predictionId, reward } → { project, predictionId, version, reward }; 404 unknown id, 409 duplicate. */
export function handler(event: unknown): Promise<FunctionUrlResult> {
  return handleFeedbackEvent(event, serveContext());
}
