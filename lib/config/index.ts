import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { AgentflowError } from '#lib/errors/index.ts';

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
  if (Boolean(s3) !== Boolean(dynamodb)) {
    throw new ConfigError(
      `${CONFIG_ENV.s3Endpoint} and ${CONFIG_ENV.dynamodbEndpoint} must be set together (local stand-ins) or both left unset (AWS)`,
      { s3Endpoint: s3, dynamodbEndpoint: dynamodb },
    );
  }
  return {
    region: env[CONFIG_ENV.region] || env.AWS_DEFAULT_REGION || required(CONFIG_ENV.region),
    bucket: required(CONFIG_ENV.bucket),
    registryTable: required(CONFIG_ENV.registryTable),
    rewardTable: required(CONFIG_ENV.rewardTable),
    ...(s3 && dynamodb ? { endpoints: { s3, dynamodb } } : {}),
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
  };
}

export interface AwsClients {
  s3: S3Client;
  dynamodb: DynamoDBDocumentClient;
}

/** SDK clients for a config. Local endpoints get path-style S3 and checksums only when required (s3rver predates them). */
export function makeClients(config: AgentflowConfig): AwsClients {
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
  const dynamodb = DynamoDBDocumentClient.from(
    new DynamoDBClient({ region: config.region, ...(local ? { endpoint: local.dynamodb, credentials } : {}) }),
    { marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true } },
  );
  return { s3, dynamodb };
}
