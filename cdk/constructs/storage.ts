/**
 * Where agentflow keeps its state in AWS: the artifact bucket (DESIGN §5) with its access-log
 * bucket, and the two DynamoDB tables created from `tableDefinitions()`, the same data the local
 * runtime creates them from, so the key schemas cannot drift.
 *
 * The bucket and tables are retained when the stack is deleted; a new stack adopts them by name
 * (`agentflow:existingBucket`, `…RegistryTable`, `…RewardTable`) instead of creating empty ones,
 * so the registry, the reward logs and the models survive a redeploy into a new stack.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption, type Attribute } from 'aws-cdk-lib/aws-dynamodb';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership, type IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { tableDefinitions, type TableDefinition } from '#lib/adapters/registry/tables.ts';
import type { TableResource } from '../access.ts';
import type { ExistingStorage } from '../context.ts';
import { DeployError } from '../errors.ts';

export interface StorageProps {
  /** Days after which objects under `runs/` (trial weights, manifests, reports) expire. */
  scratchExpirationDays: number;
  /** Names of a bucket and tables to adopt instead of creating them (validated by readContext). */
  existing?: ExistingStorage;
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
  if (!hash)
    throw new DeployError(`table ${definition.TableName}: a key schema without a HASH key`, {
      code: 'WIRING_INCOMPLETE',
      context: { table: definition.TableName },
    });
  return { partitionKey: attribute(definition, hash.AttributeName), ...(range ? { sortKey: attribute(definition, range.AttributeName) } : {}) };
}

/** A table exactly as `definition` describes it: keys, GSIs, on-demand, TTL; plus PITR, encryption and retention. */
function tableFrom(scope: Construct, id: string, definition: TableDefinition): Table {
  if (definition.BillingMode !== 'PAY_PER_REQUEST') {
    throw new DeployError(`table ${definition.TableName}: only on-demand billing is supported`, {
      code: 'WIRING_INCOMPLETE',
      context: { table: definition.TableName },
    });
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
  /** Created here, or adopted by name; the lifecycle rules and access logging of an adopted bucket stay as they are. */
  readonly bucket: IBucket;
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
    const existing = props.existing ?? {};
    this.bucket = existing.bucket
      ? Bucket.fromBucketName(this, 'Artifacts', existing.bucket)
      : new Bucket(this, 'Artifacts', {
          encryption: BucketEncryption.S3_MANAGED,
          blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
          enforceSSL: true,
          versioned: true,
          objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
          serverAccessLogsBucket: this.logBucket,
          serverAccessLogsPrefix: 'artifacts/',
          lifecycleRules: [
            {
              id: 'expire-run-scratch',
              prefix: 'runs/',
              expiration: Duration.days(props.scratchExpirationDays),
              noncurrentVersionExpiration: Duration.days(1),
            },
            // Keys are immutable, so old versions only appear when a retried stage rewrites identical bytes.
            { id: 'expire-noncurrent-versions', noncurrentVersionExpiration: Duration.days(30) },
            { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
          ],
          removalPolicy: RemovalPolicy.RETAIN,
        });
    const tables = tableDefinitions();
    const resource = (id: string, definition: TableDefinition, adoptedName: string | undefined): TableResource => {
      const indexNames = (definition.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName);
      // An adopted table must have the indexes tableDefinitions() declares: grants name them, and
      // the registry queries them. Naming them here is what lets the grants reach them.
      const table = adoptedName ? Table.fromTableAttributes(this, id, { tableName: adoptedName, globalIndexes: indexNames }) : tableFrom(this, id, definition);
      return { table, indexNames };
    };
    this.registryTable = resource('RegistryTable', tables.registry, existing.registryTable);
    this.rewardTable = resource('RewardTable', tables.rewards, existing.rewardTable);
  }
}
