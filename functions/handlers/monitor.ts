import * as z from 'zod';
import { ConfigError, configFromEnv, makeClients } from '#lib/adapters/config/index.ts';
import { retrainStarter, sfnClientFor } from '#lib/adapters/aws/executions.ts';
// lib/serve/monitor.ts directly, not lib/serve/index.ts: the monitor reads shards and counters and
// runs no model, so its bundle should neither ship nor load ONNX Runtime.
import { runMonitor, type MonitorReport, type StartRun } from '#lib/serve/monitor.ts';
import { stageDependencies, type StageDependencies } from '#lib/pipeline/dependencies.ts';

/** An EventBridge scheduled event; `detail.projects` narrows the pass (a manual invoke may send just that). */
const scheduledEvent = z.object({
  time: z.iso.datetime().optional(),
  detail: z
    .object({ projects: z.array(z.string()).optional() })
    .partial()
    .optional(),
});

export const STATE_MACHINE_ENV = 'AGENTFLOW_STATE_MACHINE_ARN';

/* Config and clients once per Lambda container, as lambdaStageHandler builds them for the stages. */
let monitorDeps: { deps: StageDependencies; startRun: StartRun } | undefined;

function monitorDependencies(): { deps: StageDependencies; startRun: StartRun } {
  if (!monitorDeps) {
    const config = configFromEnv();
    const stateMachineArn = process.env[STATE_MACHINE_ENV];
    if (!stateMachineArn)
      throw new ConfigError(`environment variable ${STATE_MACHINE_ENV} is not set; set it (the CDK stack does)`, { variable: STATE_MACHINE_ENV });
    monitorDeps = {
      deps: stageDependencies(config, makeClients(config, { principal: 'monitor' })),
      startRun: retrainStarter({ stateMachineArn, sfn: sfnClientFor(config, { principal: 'monitor' }) }),
    };
  }
  return monitorDeps;
}

export async function handler(event: unknown): Promise<MonitorReport> {
  const parsed = scheduledEvent.parse(event ?? {});
  const { deps, startRun } = monitorDependencies();
  return runMonitor(deps, {
    startRun,
    ...(parsed.time ? { now: new Date(parsed.time) } : {}),
    ...(parsed.detail?.projects ? { projects: parsed.detail.projects } : {}),
  });
}
