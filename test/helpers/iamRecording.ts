/**
 * A local session that records every SDK call per principal (`AgentflowConfig.sdkCallLog`): the
 * stage handlers in-process each with their own tagged clients, the Batch jobs through the
 * environment variable, serving and monitor contexts by name, the CLI's own calls as `caller`.
 * Flows run on it; the IAM test reads the log once at the end and evaluates it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SFNClient, type SFNClientConfig } from '@aws-sdk/client-sfn';
import { appendSdkCall, recordIfConfigured, type RecordedSdkCall } from '#lib/adapters/config/index.ts';
import { openLocalSession, type LocalSession } from '#lib/adapters/local/index.ts';
import { BATCH_STAGES, JOB_QUEUE_PLACEHOLDER, LAMBDA_STAGES } from '#lib/pipeline/index.ts';
import { type WorkflowEvent } from '#lib/adapters/local/workflow.ts';
import { readSdkCallLog } from './sdkCallLog.ts';

export interface RecordingSession {
  session: LocalSession;
  /** Appends a call made without an SDK client (a state machine task, a Function URL request). */
  record(call: RecordedSdkCall): void;
  /** A scratch folder for specs and data. */
  folder: string;
  /** Every call recorded so far, in order. */
  calls(): RecordedSdkCall[];
  close(): Promise<void>;
}

export async function openRecordingSession(): Promise<RecordingSession> {
  const folder = await mkdtemp(join(tmpdir(), 'agentflow-iam-'));
  const log = join(folder, 'sdk-calls.jsonl');
  const session = await openLocalSession({ dir: join(folder, 'aws'), sdkCallLog: log });
  return {
    session,
    folder,
    record: (call) => appendSdkCall(log, call),
    calls: () => readSdkCallLog(log),
    async close() {
      await session.close();
      await rm(folder, { recursive: true, force: true });
    },
  };
}

/** A canned Step Functions answer: JSON body and status (400 + `__type` for an AWS error). */
export interface SfnAnswer {
  status?: number;
  body: unknown;
}

export const sfnError = (type: string, message: string): SfnAnswer => ({ status: 400, body: { __type: `com.amazonaws.states#${type}`, message } });

/**
 * The real SFN client, recorded as `principal`, whose transport answers each request with
 * `answer(operation, body)`: Step Functions has no local stand-in, and what IAM needs is the
 * request the client builds, which the recorder sees before the transport.
 */
export function recordedSfn(
  recording: RecordingSession,
  principal: string,
  answer: (operation: string, body: Record<string, unknown>) => SfnAnswer,
): SFNClient {
  const requestHandler = {
    async handle(request: { headers: Record<string, string>; body?: unknown }) {
      const operation = (request.headers['x-amz-target'] ?? '').replace('AWSStepFunctions.', '');
      const { status, body } = answer(operation, JSON.parse(String(request.body ?? '{}')) as Record<string, unknown>);
      return {
        response: {
          statusCode: status ?? 200,
          headers: { 'content-type': 'application/x-amz-json-1.0' },
          body: new TextEncoder().encode(JSON.stringify(body)),
        },
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  };
  const sfn = new SFNClient({
    region: recording.session.config.region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
    requestHandler: requestHandler as unknown as SFNClientConfig['requestHandler'],
  });
  return recordIfConfigured(sfn, recording.session.config, principal);
}

/**
 * What the state machine's role does for each Task state an execution enters: invoke the stage's
 * function (`lambda:invoke`) or submit the stage's job to the queue (`batch:submitJob.sync`), with
 * the ARNs the deployment substitutes. Pass as a local run's `onEvent`.
 */
export function recordStateMachineTasks(recording: RecordingSession, substitutions: Record<string, string>): (event: WorkflowEvent) => void {
  const arnOf = (placeholder: string): string => {
    const arn = substitutions[placeholder];
    if (!arn) throw new Error(`the synthesized state machine has no substitution for \${${placeholder}}`);
    return arn;
  };
  return (event) => {
    if (event.type !== 'StateEntered') return;
    const lambda = LAMBDA_STAGES.find((s) => s.state === event.state);
    if (lambda)
      recording.record({ principal: 'stateMachine', client: 'LambdaClient', operation: 'Invoke', input: { FunctionName: arnOf(lambda.placeholder) } });
    const batch = BATCH_STAGES.find((s) => s.state === event.state);
    if (batch) {
      recording.record({
        principal: 'stateMachine',
        client: 'BatchClient',
        operation: 'SubmitJob',
        input: { jobDefinition: arnOf(batch.placeholder), jobQueue: arnOf(JOB_QUEUE_PLACEHOLDER) },
      });
    }
  };
}
