/**
 * Where agentflow keeps its state in AWS: the artifact bucket (DESIGN §5) with its access-log
 * bucket, and the two DynamoDB tables created from `tableDefinitions()`, the same data the local
 * runtime creates them from, so the key schemas cannot drift.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption, type Attribute } from 'aws-cdk-lib/aws-dynamodb';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { tableDefinitions, type TableDefinition } from '#lib/registry/tables.ts';
import type { TableResource } from '../access.ts';
import { DeployError } from '../errors.ts';

export interface StorageProps {
  /** Days after which objects under `runs/` (trial weights, manifests, reports) expire. */
  scratchExpirationDays: number;
}

function attribute(definition: TableDefinition, name: string): Attribute {
  const declared = definition.AttributeDefinitions.find((a) => a.AttributeName === name);
  if (!declared) {
    throw new DeployError(`table ${definition.TableName}: key attribute "${name}" has no AttributeDefinitions entry`, {
      code: 'WIRING_INCOMPLETE',
      context: { table: definition.TableName, attribute: name },
    });
  }
  return { name, type: declared.AttributeType === 'N' ? AttributeType.NUMBER : AttributeType.STRING };
}

function keyOf(definition: TableDefinition, schema: TableDefinition['KeySchema']): { partitionKey: Attribute; sortKey?: Attribute } {
  const hash = schema.find((k) => k.KeyType === 'HASH');
  const range = schema.find((k) => k.KeyType === 'RANGE');
  if (!hash) throw new DeployError(`table ${definition.TableName}: a key schema without a HASH key`, { code: 'WIRING_INCOMPLETE', context: { table: definition.TableName } });
  return { partitionKey: attribute(definition, hash.AttributeName), ...(range ? { sortKey: attribute(definition, range.AttributeName) } : {}) };
}

/** A table exactly as `definition` describes it: keys, GSIs, on-demand, TTL; plus PITR, encryption and retention. */
function tableFrom(scope: Construct, id: string, definition: TableDefinition): Table {
  if (definition.BillingMode !== 'PAY_PER_REQUEST') {
    throw new DeployError(`table ${definition.TableName}: only on-demand billing is supported`, { code: 'WIRING_INCOMPLETE', context: { table: definition.TableName } });
  }
  const table = new Table(scope, id, {
    // CloudFormation names the table (stacks can coexist); handlers get the name from the environment.
    ...keyOf(definition, definition.KeySchema),
    billingMode: BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: definition.timeToLiveAttribute,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    encryption: TableEncryption.AWS_MANAGED,
    deletionProtection: true,
    // The registry and the reward logs are the project's memory: they outlive the stack.
    removalPolicy: RemovalPolicy.RETAIN,
  });
  for (const index of definition.GlobalSecondaryIndexes ?? []) {
    // Projection ALL is the only kind tableDefinitions() declares (and CDK's default).
    table.addGlobalSecondaryIndex({ indexName: index.IndexName, ...keyOf(definition, index.KeySchema) });
  }
  return table;
}

export class Storage extends Construct {
  readonly bucket: Bucket;
  readonly logBucket: Bucket;
  readonly registryTable: TableResource;
  readonly rewardTable: TableResource;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    this.logBucket = new Bucket(this, 'AccessLogs', {
      // Server access log delivery writes with SSE-S3 only.
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.bucket = new Bucket(this, 'Artifacts', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.logBucket,
      serverAccessLogsPrefix: 'artifacts/',
      lifecycleRules: [
        { id: 'expire-run-scratch', prefix: 'runs/', expiration: Duration.days(props.scratchExpirationDays), noncurrentVersionExpiration: Duration.days(1) },
        // Keys are immutable, so old versions only appear when a retried stage rewrites identical bytes.
        { id: 'expire-noncurrent-versions', noncurrentVersionExpiration: Duration.days(30) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const tables = tableDefinitions();
    const resource = (id: string, definition: TableDefinition): TableResource => ({
      table: tableFrom(this, id, definition),
      indexNames: (definition.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName),
    });
    this.registryTable = resource('RegistryTable', tables.registry);
    this.rewardTable = resource('RewardTable', tables.rewards);
  }
}
