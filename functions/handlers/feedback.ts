import { configFromEnv, makeClients } from '#lib/adapters/config/index.ts';
// Direct module imports, not lib/serve/index.ts: feedback runs no model, and its bundle should
// neither ship nor load ONNX Runtime (cdk/functions.ts marks which functions run one).
import { createServeBase, type ServeBase } from '#lib/serve/base.ts';
import { handleFeedbackEvent } from '#lib/serve/feedback.ts';
import type { FunctionUrlResult } from '#lib/serve/http.ts';
import { stageDependencies } from '#lib/pipeline/dependencies.ts';

let context: ServeBase | undefined;

function serveContext(): ServeBase {
  if (!context) {
    const config = configFromEnv();
    const deps = stageDependencies(config, makeClients(config, { principal: 'feedback' }));
    context = createServeBase(deps);
  }
  return context;
}

/** Function URL: POST { project, predictionId, reward } → { project, predictionId, version, reward }; 404 unknown id, 409 duplicate. */
export function handler(event: unknown): Promise<FunctionUrlResult> {
  return handleFeedbackEvent(event, serveContext());
}
