import { configFromEnv, makeClients } from '#lib/adapters/config/index.ts';
import { createServeContext, handleInferEvent, type FunctionUrlResult, type ServeContext } from '#lib/serve/index.ts';
import { stageDependencies } from '#lib/pipeline/dependencies.ts';

/* One serving context per Lambda container: sessions and routing state outlive the invocation. */
let context: ServeContext | undefined;

function serveContext(): ServeContext {
  if (!context) {
    const config = configFromEnv();
    const deps = stageDependencies(config, makeClients(config, { principal: 'infer' }));
    context = createServeContext(deps);
  }
  return context;
}

/** Function URL: POST { project, records, version? } → { project, version, predictions }. */
export function handler(event: unknown): Promise<FunctionUrlResult> {
  return handleInferEvent(event, serveContext());
}
