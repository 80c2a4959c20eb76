/**
 * The one way a function or job is given a resource: each helper sets the environment variable
 * the code reads (`CONFIG_ENV`, `configFromEnv`) AND grants the IAM access it implies, so the two
 * cannot drift apart (a variable without permission, or a permission nobody uses).
 *
 * The grants are explicit action lists rather than `grantReadWrite` & co.: artifact keys are
 * immutable (no delete), and DynamoDB access is to the table and its named indexes only.
 */
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { CONFIG_ENV } from '#lib/adapters/config/index.ts';
import { STACK_OUTPUT_ENV } from '#lib/adapters/aws/outputs.ts';
import type { Access } from './functions.ts';

/** Anything with a principal and an environment: a Lambda function, or a Batch container being built. */
export interface ResourceConsumer extends IGrantable {
  addEnvironment(name: string, value: string): unknown;
}

/** A consumer for a Batch container: the environment is collected into `environment` before the container is created. */
export function containerConsumer(grantable: IGrantable): ResourceConsumer & { environment: Record<string, string> } {
  const environment: Record<string, string> = {};
  return {
    grantPrincipal: grantable.grantPrincipal,
    environment,
    addEnvironment: (name, value) => {
      environment[name] = value;
    },
  };
}

/** S3 actions by access level. PutObject covers multipart uploads (lib-storage) except aborting one. */
export const BUCKET_ACTIONS = {
  objects: { read: ['s3:GetObject'], readWrite: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'] },
  bucket: ['s3:ListBucket'],
  /** Writes limited to key patterns (`FunctionSpec.access.bucketWrites`): small single-request objects only. */
  keys: ['s3:PutObject'],
} as const;

/** DynamoDB actions by access level (lib/adapters/registry: conditional single-item writes, one batched put of logged inputs, queries and a scan). */
export const TABLE_ACTIONS = {
  read: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:ConditionCheckItem', 'dynamodb:DescribeTable'],
  readWrite: [
    'dynamodb:GetItem',
    'dynamodb:BatchGetItem',
    'dynamodb:Query',
    'dynamodb:Scan',
    'dynamodb:ConditionCheckItem',
    'dynamodb:DescribeTable',
    'dynamodb:PutItem',
    'dynamodb:UpdateItem',
    'dynamodb:DeleteItem',
    'dynamodb:BatchWriteItem',
  ],
} as const;

/**
 * The bucket, at `access` on every key, plus writes to the keys matching `writeKeys` (IAM
 * wildcards, e.g. `monitor/*`) in a statement of their own, for a reader that writes one kind of
 * key. ListBucket always: without it S3 answers a HEAD or GET of a missing key with 403 instead of
 * 404, and the artifact store reads only 404 as "absent".
 */
export function useBucket(consumer: ResourceConsumer, bucket: IBucket, access: Access, options: { writeKeys?: readonly string[] } = {}): void {
  consumer.addEnvironment(CONFIG_ENV.bucket, bucket.bucketName);
  Grant.addToPrincipal({ grantee: consumer, actions: [...BUCKET_ACTIONS.objects[access]], resourceArns: [bucket.arnForObjects('*')] });
  Grant.addToPrincipal({ grantee: consumer, actions: [...BUCKET_ACTIONS.bucket], resourceArns: [bucket.bucketArn] });
  if (options.writeKeys?.length) {
    Grant.addToPrincipal({
      grantee: consumer,
      actions: [...BUCKET_ACTIONS.keys],
      resourceArns: options.writeKeys.map((pattern) => bucket.arnForObjects(pattern)),
    });
  }
}

export type TableRole = 'registryTable' | 'rewardTable';

/** A table with the names of its secondary indexes (from `tableDefinitions()`), so grants can name them. */
export interface TableResource {
  table: ITable;
  indexNames: readonly string[];
}

export function useTable(consumer: ResourceConsumer, role: TableRole, resource: TableResource, access: Access): void {
  consumer.addEnvironment(CONFIG_ENV[role], resource.table.tableName);
  Grant.addToPrincipal({
    grantee: consumer,
    actions: [...TABLE_ACTIONS[access]],
    resourceArns: [resource.table.tableArn, ...resource.indexNames.map((name) => `${resource.table.tableArn}/index/${name}`)],
  });
}

/** Lets the consumer start executions of the workflow, e.g. the monitor starting a retraining run. */
export function useStateMachine(consumer: ResourceConsumer, stateMachine: IStateMachine): void {
  consumer.addEnvironment(STACK_OUTPUT_ENV.stateMachineArn, stateMachine.stateMachineArn);
  stateMachine.grantStartExecution(consumer);
}
