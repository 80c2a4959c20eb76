import { SFNClient, StartExecutionCommand, ExecutionAlreadyExists } from '@aws-sdk/client-sfn';
import * as z from 'zod';
import { ConfigError, configFromEnv, makeClients, recordIfConfigured } from '#lib/config/index.ts';
// lib/serve/monitor.ts directly, not lib/serve/index.ts: the monitor reads shards and counters and
// runs no model, so its bundle should neither ship nor load ONNX Runtime.
import { runMonitor, type MonitorReport, type StartRun } from '#lib/serve/monitor.ts';
import { stageDependencies } from '#lib/stages/dependencies.ts';

/** An EventBridge scheduled event; `detail.projects` narrows the pass (a manual invoke may send just that). */
const scheduledEvent = z.object({
  time: z.iso.datetime().optional(),
  detail: z.object({ projects: z.array(z.string()).optional() }).partial().optional(),
});

export const STATE_MACHINE_ENV = 'AGENTFLOW_STATE_MACHINE_ARN';

/** Starts the training state machine; the execution is named after the run, so a retried start cannot start a second one. */
export function startExecution(stateMachineArn: string, sfn: SFNClient): StartRun {
  return async ({ project, runId, specUri, trigger, reason }) => {
    if (!specUri) throw new ConfigError(`cannot retrain ${project}: production names no spec to retrain from (its models/<project>/<version>/live.json, written by Export, has one)`, { project });
    try {
      const result = await sfn.send(
        new StartExecutionCommand({ stateMachineArn, name: `${project}-${runId}`.slice(0, 80), input: JSON.stringify({ runId, project, specUri, trigger, reason }) }),
      );
      return { runId, executionArn: result.executionArn };
    } catch (error) {
      if (error instanceof ExecutionAlreadyExists) return { runId };
      throw error;
    }
  };
}

export async function handler(event: unknown): Promise<MonitorReport> {
  const parsed = scheduledEvent.parse(event ?? {});
  const config = configFromEnv();
  const stateMachineArn = process.env[STATE_MACHINE_ENV];
  if (!stateMachineArn) throw new ConfigError(`environment variable ${STATE_MACHINE_ENV} is not set; set it (the CDK stack does)`, { variable: STATE_MACHINE_ENV });
  const deps = stageDependencies(config, makeClients(config, { principal: 'monitor' }));
  return runMonitor(
    { ...deps, dynamodb: deps.clients.dynamodb, registryTable: config.registryTable, rewardTable: config.rewardTable },
    {
      startRun: startExecution(stateMachineArn, recordIfConfigured(new SFNClient({ region: config.region }), config, 'monitor')),
      ...(parsed.time ? { now: new Date(parsed.time) } : {}),
      ...(parsed.detail?.projects ? { projects: parsed.detail.projects } : {}),
    },
  );
}
