/**
 * Every AWS client the CLI's `--aws` mode uses, made in this one place: S3 and DynamoDB (through
 * the same `makeClients` the stages use), Step Functions, EventBridge Scheduler, CloudFormation,
 * and the SigV4-signing Function URL client. One factory means one place to point them at
 * stand-ins (tests) and one place to attach a middleware to all of them (the IAM conformance test
 * records each call and evaluates it against docs/caller-policy.json).
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SFNClient } from '@aws-sdk/client-sfn';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, MiddlewareStack } from '@smithy/types';
import { appendSdkCall, CALLER_PRINCIPAL, CONFIG_ENV, makeClients, recordSdkCalls, type AwsClients } from '#lib/adapters/config/index.ts';
import { FunctionUrlClient, type FunctionUrlRequest } from '#lib/adapters/aws/functionUrl.ts';
import type { DeployedStack } from '#lib/adapters/aws/outputs.ts';

export type AwsServiceName = 's3' | 'dynamodb' | 'sfn' | 'scheduler' | 'cloudformation';

/** What a recording or tracing middleware needs of a client. */
export interface InstrumentableClient {
  // The stacks of the five clients differ only in their input/output types.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one hook for every client's stack, whatever its input and output types.
  readonly middlewareStack: MiddlewareStack<any, any>;
}

export interface AwsClientOptions {
  /**
   * Credentials for Step Functions, Scheduler, CloudFormation and the Function URL signatures.
   * Default: the SDK's default chain (environment, profile, SSO, instance role…).
   */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /**
   * Endpoints of stand-ins, for tests: S3 and DynamoDB go to the local stand-ins (with their fixed
   * local credentials) when both are given; Step Functions, Scheduler and CloudFormation each to
   * its own. Absent: the real regional endpoints.
   */
  endpoints?: Partial<Record<AwsServiceName, string>>;
  /** Where CloudFormation looks the stack up before its region is known; default the SDK's (AWS_REGION, the profile's). */
  region?: string;
  /** Sees every SDK client made here before its first call, with the service it talks to. */
  instrument?: (client: InstrumentableClient, service: AwsServiceName) => void;
  /** Sees every Function URL request before it is sent (SigV4, service `lambda`). */
  onFunctionUrlRequest?: (request: FunctionUrlRequest) => void;
  /** The HTTP client for Function URLs; default the global `fetch`. */
  fetch?: typeof fetch;
}

/** The clients for one deployed stack; `destroy` closes their connection pools. */
export interface StackClients extends AwsClients {
  sfn: SFNClient;
  scheduler: SchedulerClient;
  functionUrls: FunctionUrlClient;
  destroy(): void;
}

const credentialsOf = (options: AwsClientOptions) => options.credentials ?? defaultProvider();

/**
 * Hooks that append every `--aws` call to the IAM conformance test's call log as the caller
 * (`AGENTFLOW_SDK_CALL_LOG`, as every other principal records): SDK calls through the recorder
 * middleware, Function URL requests as `FunctionUrl.Invoke` on the function behind the URL.
 */
export function recordCallerCalls(log: string): Required<Pick<AwsClientOptions, 'instrument' | 'onFunctionUrlRequest'>> {
  return {
    instrument: (client) => recordSdkCalls(client, { log, principal: CALLER_PRINCIPAL }),
    onFunctionUrlRequest: (request) =>
      appendSdkCall(log, {
        principal: CALLER_PRINCIPAL,
        client: 'FunctionUrl',
        operation: 'Invoke',
        input: { FunctionName: request.functionArn ?? request.url },
      }),
  };
}

/** The options with `recordCallerCalls` added when the environment names a call log (the IAM test running the CLI). */
export function withCallRecording(options: AwsClientOptions, env: Readonly<Record<string, string | undefined>> = process.env): AwsClientOptions {
  const log = env[CONFIG_ENV.sdkCallLog];
  if (!log) return options;
  const recording = recordCallerCalls(log);
  return {
    ...options,
    instrument: (client, service) => {
      recording.instrument(client, service);
      options.instrument?.(client, service);
    },
    onFunctionUrlRequest: (request) => {
      recording.onFunctionUrlRequest(request);
      options.onFunctionUrlRequest?.(request);
    },
  };
}

/** CloudFormation, for finding the stack by name before its region is known (the SDK's default region then applies). */
export function cloudFormationClient(options: AwsClientOptions = {}): CloudFormationClient {
  const client = new CloudFormationClient({
    ...(options.region ? { region: options.region } : {}),
    credentials: credentialsOf(options),
    ...(options.endpoints?.cloudformation ? { endpoint: options.endpoints.cloudformation } : {}),
  });
  options.instrument?.(client, 'cloudformation');
  return client;
}

export function stackClients(stack: DeployedStack, options: AwsClientOptions = {}): StackClients {
  const { endpoints = {} } = options;
  const credentials = credentialsOf(options);
  const { s3, dynamodb } = makeClients({
    region: stack.region,
    bucket: stack.bucket,
    registryTable: stack.registryTable,
    rewardTable: stack.rewardTable,
    ...(endpoints.s3 && endpoints.dynamodb ? { endpoints: { s3: endpoints.s3, dynamodb: endpoints.dynamodb } } : {}),
  });
  const sfn = new SFNClient({ region: stack.region, credentials, ...(endpoints.sfn ? { endpoint: endpoints.sfn } : {}) });
  const scheduler = new SchedulerClient({ region: stack.region, credentials, ...(endpoints.scheduler ? { endpoint: endpoints.scheduler } : {}) });
  const instrumented: [InstrumentableClient, AwsServiceName][] = [
    [s3, 's3'],
    [dynamodb, 'dynamodb'],
    [sfn, 'sfn'],
    [scheduler, 'scheduler'],
  ];
  for (const [client, service] of instrumented) options.instrument?.(client, service);
  const functionUrls = new FunctionUrlClient({
    region: stack.region,
    credentials,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.onFunctionUrlRequest ? { onRequest: options.onFunctionUrlRequest } : {}),
  });
  return {
    s3,
    dynamodb,
    sfn,
    scheduler,
    functionUrls,
    destroy() {
      s3.destroy();
      dynamodb.destroy();
      sfn.destroy();
      scheduler.destroy();
    },
  };
}
