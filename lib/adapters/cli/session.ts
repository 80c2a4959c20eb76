/**
 * What a command works against: the embedded local stand-ins under `--dir`, or with `--aws` the
 * deployed stack. Both give the same stage dependencies (artifact store, model registry, run log, reward log), so
 * the commands that read and write those — runs, trials, models, promote, rollback, report — have
 * no AWS-specific code; the few that differ (run, resume, predict, feedback, schedules) branch on
 * `where`.
 */
import { resolve } from 'node:path';
import {
  cloudFormationClient,
  describeStackWith,
  findStack,
  stackClients,
  withCallRecording,
  type AwsClientOptions,
  type DeployedStack,
  type StackClients,
} from '#lib/adapters/aws/index.ts';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import { openLocalSession, type LocalSession } from '#lib/adapters/local/index.ts';
import { stageDependencies, type StageDependencies } from '#lib/pipeline/dependencies.ts';

/** Options every command takes. */
export interface GlobalOptions {
  dir: string;
  json: boolean;
  aws: boolean;
  stackOutputs?: string;
  stackName?: string;
}

interface SessionBase {
  deps: StageDependencies;
  /** Where reports are written on this machine: `<dir>/reports`, for both runtimes. */
  reportsDir: string;
  close(): Promise<void>;
}

export interface LocalCliSession extends SessionBase {
  where: 'local';
  local: LocalSession;
}

export interface AwsCliSession extends SessionBase {
  where: 'aws';
  stack: DeployedStack;
  clients: StackClients;
}

export type CliSession = LocalCliSession | AwsCliSession;

export class SessionError extends AgentflowError {
  constructor(message: string, options: { code: 'LOCAL_ONLY' | 'AWS_ONLY'; context?: Record<string, unknown> }) {
    super(message, options);
    this.name = 'SessionError';
  }
}

/**
 * Opens the session the global options ask for; `options` points `--aws` clients elsewhere (tests)
 * or instruments them, and with `AGENTFLOW_SDK_CALL_LOG` set they also record into that log.
 */
export async function openCliSession(globals: GlobalOptions, options: AwsClientOptions = {}, localOptions: { attach?: boolean } = {}): Promise<CliSession> {
  const reportsDir = resolve(globals.dir, 'reports');
  if (!globals.aws) {
    // While `agentflow up` holds the folder, commands work through its stand-ins (lib/adapters/local/holder.ts).
    const local = await openLocalSession({ dir: globals.dir, attach: localOptions.attach ?? true });
    return { where: 'local', local, deps: local.deps, reportsDir, close: () => local.close() };
  }
  const aws = withCallRecording(options);
  const cloudFormation = cloudFormationClient(aws);
  let stack: DeployedStack;
  try {
    stack = await findStack({
      ...(globals.stackOutputs ? { outputsFile: globals.stackOutputs } : {}),
      ...(globals.stackName ? { stackName: globals.stackName } : {}),
      describeStack: describeStackWith(cloudFormation),
    });
  } finally {
    cloudFormation.destroy();
  }
  const clients = stackClients(stack, aws);
  const deps = stageDependencies({ region: stack.region, bucket: stack.bucket, registryTable: stack.registryTable, rewardTable: stack.rewardTable }, clients);
  return {
    where: 'aws',
    stack,
    clients,
    deps,
    reportsDir,
    close: async () => clients.destroy(),
  };
}

/** The local session of a command that only runs on this machine; with `--aws`, the fix. */
export function localOnly(session: CliSession, command: string, instead: string): LocalSession {
  if (session.where === 'local') return session.local;
  throw new SessionError(`\`${command}\` runs on this machine only; ${instead}`, { code: 'LOCAL_ONLY', context: { command } });
}

/** The AWS session of a command that manages the deployed stack; without `--aws`, the fix. */
export function awsOnly(session: CliSession, command: string, instead: string): AwsCliSession {
  if (session.where === 'aws') return session;
  throw new SessionError(`\`${command}\` manages the deployed stack: add --aws (with --stack-outputs <file> or --stack-name <name>); ${instead}`, {
    code: 'AWS_ONLY',
    context: { command },
  });
}
