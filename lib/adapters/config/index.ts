import { appendFileSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { AgentflowError } from '#lib/domain/errors/index.ts';

/**
 * Where agentflow keeps its state. The same shape serves AWS (endpoints absent) and the embedded
 * local stand-ins (endpoints on loopback); this is the one place that picks between them.
 */
export interface AgentflowConfig {
  region: string;
  bucket: string;
  registryTable: string;
  rewardTable: string;
  /** Set only for the local stand-ins (dynalite, s3rver); absent means the real AWS endpoints. */
  endpoints?: { s3: string; dynamodb: string };
  /**
   * A JSONL file that every SDK call made through `makeClients` is appended to, tagged with the
   * calling principal. Only the IAM conformance test sets it: the local stand-ins have no IAM, so
   * the calls are recorded here and checked against the synthesized policies. Absent: no recording.
   */
  sdkCallLog?: string;
}

export class ConfigError extends AgentflowError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(message, { code: 'CONFIG_INVALID', context });
    this.name = 'ConfigError';
  }
}

/** The environment variables that carry a config into Lambda handlers and Batch jobs. */
export const CONFIG_ENV = {
  region: 'AWS_REGION',
  bucket: 'AGENTFLOW_BUCKET',
  registryTable: 'AGENTFLOW_REGISTRY_TABLE',
  rewardTable: 'AGENTFLOW_REWARD_TABLE',
  s3Endpoint: 'AGENTFLOW_S3_ENDPOINT',
  dynamodbEndpoint: 'AGENTFLOW_DYNAMODB_ENDPOINT',
  sdkCallLog: 'AGENTFLOW_SDK_CALL_LOG',
} as const;

/** Reads the config once, failing fast with the name of the first missing variable. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AgentflowConfig {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) {
      throw new ConfigError(`environment variable ${name} is not set; set it (the CDK stack does) or run through the local runtime`, { variable: name });
    }
    return value;
  };
  const s3 = env[CONFIG_ENV.s3Endpoint];
  const dynamodb = env[CONFIG_ENV.dynamodbEndpoint];
  const sdkCallLog = env[CONFIG_ENV.sdkCallLog];
  if (Boolean(s3) !== Boolean(dynamodb)) {
    throw new ConfigError(`${CONFIG_ENV.s3Endpoint} and ${CONFIG_ENV.dynamodbEndpoint} must be set together (local stand-ins) or both left unset (AWS)`, {
      s3Endpoint: s3,
      dynamodbEndpoint: dynamodb,
    });
  }
  return {
    region: env[CONFIG_ENV.region] || env.AWS_DEFAULT_REGION || required(CONFIG_ENV.region),
    bucket: required(CONFIG_ENV.bucket),
    registryTable: required(CONFIG_ENV.registryTable),
    rewardTable: required(CONFIG_ENV.rewardTable),
    ...(s3 && dynamodb ? { endpoints: { s3, dynamodb } } : {}),
    ...(sdkCallLog ? { sdkCallLog } : {}),
  };
}

/** The inverse of `configFromEnv`: the variables a child job or handler needs to see this config. */
export function configToEnv(config: AgentflowConfig): Record<string, string> {
  return {
    [CONFIG_ENV.region]: config.region,
    [CONFIG_ENV.bucket]: config.bucket,
    [CONFIG_ENV.registryTable]: config.registryTable,
    [CONFIG_ENV.rewardTable]: config.rewardTable,
    ...(config.endpoints
      ? {
          [CONFIG_ENV.s3Endpoint]: config.endpoints.s3,
          [CONFIG_ENV.dynamodbEndpoint]: config.endpoints.dynamodb,
          // The local stand-ins accept any credentials; fixed ones keep the SDK from searching for real ones.
          AWS_ACCESS_KEY_ID: 'local',
          AWS_SECRET_ACCESS_KEY: 'local',
        }
      : {}),
    ...(config.sdkCallLog ? { [CONFIG_ENV.sdkCallLog]: config.sdkCallLog } : {}),
  };
}

export interface AwsClients {
  s3: S3Client;
  dynamodb: DynamoDBDocumentClient;
}

/** One SDK call as the IAM conformance test needs it: who made it, what it was, which resource it named, how it ended. */
export interface RecordedSdkCall {
  /** The function, job or caller whose role makes the call in AWS: a handler name (`plan`), a job (`trial`), or `caller`. */
  principal: string;
  /** The client: `S3Client`, `DynamoDBClient`, `SFNClient`, … */
  client: string;
  /** The command without its suffix: `GetObject`, `PutItem`, `StartExecution`. */
  operation: string;
  /** The input fields that decide the resource and its condition keys (Bucket, Key, Prefix, TableName, IndexName, …). */
  input: Record<string, string | string[]>;
  /** The error's name when the call failed (`NotFound` for a HEAD of a missing key), absent when it succeeded. */
  error?: string;
}

/** The principal the CLI's own calls are made as: in AWS, whoever runs `agentflow … --aws`. */
export const CALLER_PRINCIPAL = 'caller';

/** The input fields the recorder keeps: the ones IAM resources and condition keys are made of. */
const RESOURCE_FIELDS = [
  'Bucket',
  'Key',
  'Prefix',
  'CopySource',
  'TableName',
  'IndexName',
  'stateMachineArn',
  'executionArn',
  'name',
  'Name',
  'ScheduleName',
  'GroupName',
  'StackName',
  'FunctionName',
] as const;

interface MiddlewareContext {
  clientName?: string;
  commandName?: string;
}

/** Anything with the SDK's middleware stack: every v3 client. */
export interface SdkClientLike {
  middlewareStack: { add(middleware: unknown, options: { step: 'initialize'; name: string; priority?: 'high' | 'normal' | 'low' }): void };
}

function resourceFields(input: Record<string, unknown>): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = {};
  for (const field of RESOURCE_FIELDS) {
    const value = input[field];
    if (typeof value === 'string') fields[field] = value;
  }
  // A schedule's target role: UpdateSchedule also needs iam:PassRole on it.
  const target = input.Target as { RoleArn?: unknown } | undefined;
  if (typeof target?.RoleArn === 'string') fields.RoleArn = target.RoleArn;
  // BatchGetItem / BatchWriteItem name their tables as the keys of RequestItems.
  const requestItems = input.RequestItems;
  if (requestItems && typeof requestItems === 'object') fields.TableName = Object.keys(requestItems);
  return fields;
}

/**
 * Appends one call to the log: a synchronous append of one line, so calls from child processes
 * and this one interleave whole. Also for calls made without an SDK client (a Function URL request,
 * a state machine's task), which the test records itself.
 */
export function appendSdkCall(log: string, call: RecordedSdkCall): void {
  appendFileSync(log, `${JSON.stringify(call)}\n`);
}

/** Appends every call the client sends to `log` (see `AgentflowConfig.sdkCallLog`). */
export function recordSdkCalls(client: SdkClientLike, options: { log: string; principal: string }): void {
  const record = (context: MiddlewareContext, input: Record<string, unknown>, error: unknown) => {
    appendSdkCall(options.log, {
      principal: options.principal,
      client: context.clientName ?? 'unknown',
      operation: (context.commandName ?? 'unknown').replace(/Command$/, ''),
      input: resourceFields(input),
      ...(error === undefined ? {} : { error: error instanceof Error ? error.name : String(error) }),
    });
  };
  client.middlewareStack.add(
    (next: (args: { input: Record<string, unknown> }) => Promise<unknown>, context: MiddlewareContext) => async (args: { input: Record<string, unknown> }) => {
      try {
        const result = await next(args);
        record(context, args.input, undefined);
        return result;
      } catch (error) {
        record(context, args.input, error ?? 'Error');
        throw error;
      }
    },
    { step: 'initialize', name: 'agentflowRecordSdkCalls', priority: 'high' },
  );
}

/** Adds the recorder when the config asks for one; the principal must then be named. */
export function recordIfConfigured<T extends SdkClientLike>(client: T, config: AgentflowConfig, principal: string | undefined): T {
  if (!config.sdkCallLog) return client;
  if (!principal) {
    throw new ConfigError(
      `${CONFIG_ENV.sdkCallLog} is set but these clients were made without a principal; pass makeClients(config, { principal: '<function or job>' })`,
      {
        sdkCallLog: config.sdkCallLog,
      },
    );
  }
  recordSdkCalls(client, { log: config.sdkCallLog, principal });
  return client;
}

export interface MakeClientsOptions {
  /** Who makes the calls (a handler, a job, `caller`); required when `config.sdkCallLog` is set, ignored otherwise. */
  principal?: string;
}

/** SDK clients for a config. Local endpoints get path-style S3 and checksums only when required (s3rver predates them). */
export function makeClients(config: AgentflowConfig, options: MakeClientsOptions = {}): AwsClients {
  const local = config.endpoints;
  const credentials = local ? { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } : undefined;
  const s3 = new S3Client({
    region: config.region,
    ...(local
      ? {
          endpoint: local.s3,
          forcePathStyle: true,
          credentials,
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
  });
  // The document client shares its base client's middleware stack, so recording the base records both.
  const dynamodb = DynamoDBDocumentClient.from(
    recordIfConfigured(new DynamoDBClient({ region: config.region, ...(local ? { endpoint: local.dynamodb, credentials } : {}) }), config, options.principal),
    { marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true } },
  );
  return { s3: recordIfConfigured(s3, config, options.principal), dynamodb };
}
