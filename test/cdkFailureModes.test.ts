/**
 * The failure modes only AWS has, on the CDK side (issue #12): each has its own synthesized stack
 * and fine-grained assertions. Bundling is skipped here (`aws:cdk:bundling-stacks: []`); the bundles
 * themselves are checked in cdk.test.ts.
 *
 * - Redeploy: a retained resource with a fixed name makes the next deploy fail with "already exists".
 * - Partitions: cdk.json targets aws-cn too; no ARN may carry a literal `arn:aws:`.
 * - GPU quota 0: jobs would sit RUNNABLE until the 4-6 h task timeouts.
 * - Data across redeploys: a new stack adopts the kept bucket and tables.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readContext } from '../cdk/context.ts';
import { FUNCTIONS } from '../cdk/functions.ts';
import { AgentflowStack } from '../cdk/stack.ts';
import { CONFIG_ENV } from '#lib/adapters/config/index.ts';
import { STACK_OUTPUTS } from '#lib/adapters/aws/outputs.ts';
import { tableDefinitions } from '#lib/adapters/registry/tables.ts';
import { GPU_WAIT } from '#lib/pipeline/gpuWait.ts';
import { BATCH_SUBMIT_JOB_SYNC, LAMBDA_INVOKE, PARTITION_PLACEHOLDER } from '#lib/pipeline/index.ts';

const root = resolve(import.meta.dirname, '..');
const cdkContext = (JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> }).context;

type Resource = { Type: string; Properties?: Record<string, any>; DeletionPolicy?: string };
type Synthesized = { stack: AgentflowStack; template: Record<string, any>; resources: Record<string, Resource> };

const outdirs: string[] = [];

function synthesize(id: string, context: Record<string, unknown>, env?: { account: string; region: string }): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'agentflow-cdk-modes-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: { ...cdkContext, 'aws:cdk:bundling-stacks': [], ...context } });
  const stack = new AgentflowStack(app, id, { settings: readContext((key) => app.node.tryGetContext(key)), projectRoot: root, ...(env ? { env } : {}) });
  const template = Template.fromStack(stack).toJSON();
  return { stack, template, resources: template.Resources };
}

/**
 * A CloudFormation value as the text it becomes: Fn::Join concatenated, pseudo parameters as
 * `<AWS::Partition>`, the stack id's UUID (Fn::Select 2 of its `/` split) as `<stack-uuid>`,
 * other Refs and GetAtts as `<Ref:Id>` / `<Id.Attr>`.
 */
function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const v = value as Record<string, any>;
    if ('Fn::Join' in v) return (v['Fn::Join'][1] as unknown[]).map(render).join(v['Fn::Join'][0]);
    if ('Ref' in v) return String(v.Ref).startsWith('AWS::') ? `<${v.Ref}>` : `<Ref:${v.Ref}>`;
    if ('Fn::GetAtt' in v) return `<${v['Fn::GetAtt'].join('.')}>`;
    if ('Fn::Select' in v && JSON.stringify(v) === JSON.stringify({ 'Fn::Select': [2, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] }))
      return '<stack-uuid>';
  }
  return JSON.stringify(value);
}

const ofType = (s: Synthesized, type: string) => Object.entries(s.resources).filter(([, r]) => r.Type === type);
const logicalIdOf = (s: Synthesized, construct: { node: { defaultChild?: unknown } }) =>
  s.stack.resolve(s.stack.getLogicalId(construct.node.defaultChild as never)) as string;
/** Every Resource of every statement of every IAM policy in the template, rendered. */
const policyResources = (s: Synthesized) =>
  ofType(s, 'AWS::IAM::Policy').flatMap(([, p]) =>
    (p.Properties!.PolicyDocument.Statement as Array<{ Resource: unknown }>)
      .flatMap((st) => (Array.isArray(st.Resource) ? st.Resource : [st.Resource]))
      .map(render),
  );

/** Properties that set a resource's physical name, which must be unique in the account and region. */
const PHYSICAL_NAMES: Record<string, string> = {
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Logs::ResourcePolicy': 'PolicyName',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::IAM::Role': 'RoleName',
  'AWS::IAM::ManagedPolicy': 'ManagedPolicyName',
  'AWS::StepFunctions::StateMachine': 'StateMachineName',
  'AWS::Events::Rule': 'Name',
  'AWS::Scheduler::Schedule': 'Name',
  'AWS::CloudWatch::Alarm': 'AlarmName',
  'AWS::CloudWatch::Dashboard': 'DashboardName',
  'AWS::Batch::JobQueue': 'JobQueueName',
  'AWS::Batch::ComputeEnvironment': 'ComputeEnvironmentName',
  'AWS::Batch::JobDefinition': 'JobDefinitionName',
  'AWS::ECR::Repository': 'RepositoryName',
};

const ADOPTED = {
  bucket: 'agentflow-kept-artifacts-123456789012',
  registryTable: 'Agentflow-StorageRegistryTable-KEPT1',
  rewardTable: 'Agentflow-StorageRewardTable-KEPT2',
};

let main: Synthesized;
let adopted: Synthesized;
let china: Synthesized;

beforeAll(() => {
  main = synthesize('AgentflowModes', { 'agentflow:maxGpuWaitMinutes': 45 });
  adopted = synthesize('AgentflowAdopted', {
    'agentflow:existingBucket': ADOPTED.bucket,
    'agentflow:existingRegistryTable': ADOPTED.registryTable,
    'agentflow:existingRewardTable': ADOPTED.rewardTable,
  });
  china = synthesize('AgentflowChina', {}, { account: '123456789012', region: 'cn-north-1' });
}, 300_000);

afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

describe('redeploy after destroy or a failed first deploy', () => {
  it('names the retained execution log group per stack instance, under /aws/vendedlogs/states/', () => {
    const group = main.resources[logicalIdOf(main, main.stack.workflow.logGroup)];
    expect(group.DeletionPolicy).toBe('Retain');
    expect(render(group.Properties!.LogGroupName)).toBe('/aws/vendedlogs/states/AgentflowModes-workflow-<stack-uuid>');
    const [[, machine]] = ofType(main, 'AWS::StepFunctions::StateMachine');
    expect(machine.Properties!.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn).toEqual({
      'Fn::GetAtt': [logicalIdOf(main, main.stack.workflow.logGroup), 'Arn'],
    });
  });

  it('gives every explicitly named resource a name that carries the stack UUID', () => {
    const named = Object.entries(main.resources)
      .filter(([, r]) => PHYSICAL_NAMES[r.Type] && r.Properties?.[PHYSICAL_NAMES[r.Type]] !== undefined)
      .map(([id, r]) => [id, render(r.Properties![PHYSICAL_NAMES[r.Type]])] as const);
    // The check is not vacuous: the two log groups that need fixed prefixes and the events policy are named.
    expect(named.length).toBeGreaterThanOrEqual(3);
    expect(named.filter(([, name]) => !name.includes('<stack-uuid>'))).toEqual([]);
  });
});

describe('partitions', () => {
  it('has no literal arn:aws: anywhere in the template, in the definition or the policies', () => {
    const text = JSON.stringify(main.template);
    expect(text.match(/arn:aws[a-z-]*:/g) ?? []).toEqual([]);
  });

  it('builds the service integration ARNs from the stack partition through definitionSubstitutions', () => {
    const [[, machine]] = ofType(main, 'AWS::StepFunctions::StateMachine');
    expect(machine.Properties!.DefinitionSubstitutions[PARTITION_PLACEHOLDER]).toEqual({ Ref: 'AWS::Partition' });
    const definition = machine.Properties!.DefinitionString as string;
    expect(LAMBDA_INVOKE).toBe('arn:${Partition}:states:::lambda:invoke');
    expect(definition).toContain(`"Resource":"${LAMBDA_INVOKE}"`);
    expect(definition).toContain(`"Resource":"${BATCH_SUBMIT_JOB_SYNC}"`);
  });

  it('starts every ARN built from text in an IAM policy with the partition reference, adopted bucket and tables included', () => {
    // GetAtt ARNs come from CloudFormation with the right partition; these are the ones built here.
    const arns = [...policyResources(main), ...policyResources(adopted)].filter((r) => r.startsWith('arn:'));
    expect(arns.length).toBeGreaterThan(20);
    expect(arns.filter((arn) => !arn.startsWith('arn:<AWS::Partition>:'))).toEqual([]);
  });

  it('synthesizes for cn-north-1 without a single aws-partition ARN', () => {
    const text = JSON.stringify(china.template);
    expect(text.match(/arn:aws:/g) ?? []).toEqual([]);
    const [[, machine]] = ofType(china, 'AWS::StepFunctions::StateMachine');
    expect(render(machine.Properties!.DefinitionSubstitutions[PARTITION_PLACEHOLDER])).toMatch(/^(aws-cn|<AWS::Partition>)$/);
  });
});

describe('GPU quota 0: jobs waiting RUNNABLE', () => {
  it('cancels a job waiting RUNNABLE past agentflow:maxGpuWaitMinutes for each reason Batch acts on', () => {
    const [[, queue]] = ofType(main, 'AWS::Batch::JobQueue');
    const actions = queue.Properties!.JobStateTimeLimitActions as Array<Record<string, unknown>>;
    expect(actions.map((a) => a.Reason)).toEqual([...GPU_WAIT.reasons]);
    for (const action of actions) expect(action).toEqual(expect.objectContaining({ Action: 'CANCEL', State: 'RUNNABLE', MaxTimeSeconds: 45 * 60 }));
  });

  it('uses the GPU_WAIT default when the key is not set', () => {
    const [[, queue]] = ofType(adopted, 'AWS::Batch::JobQueue');
    expect(new Set((queue.Properties!.JobStateTimeLimitActions as Array<{ MaxTimeSeconds: number }>).map((a) => a.MaxTimeSeconds))).toEqual(
      new Set([GPU_WAIT.defaultMinutes * 60]),
    );
  });

  it("matches Batch's FAILED event of a job this queue cancelled, and keeps the events in an /aws/events/ log group EventBridge may write", () => {
    const queueId = logicalIdOf(main, main.stack.batch.queue);
    const [[ruleId, rule]] = ofType(main, 'AWS::Events::Rule');
    expect(rule.Properties!.EventPattern).toEqual({
      source: ['aws.batch'],
      'detail-type': ['Batch Job State Change'],
      detail: { jobQueue: [{ 'Fn::GetAtt': [queueId, 'JobQueueArn'] }], status: ['FAILED'], statusReason: [{ prefix: GPU_WAIT.cancelledStatusPrefix }] },
    });
    const groupId = logicalIdOf(main, main.stack.observability.gpuWaitEvents);
    expect(render(main.resources[groupId].Properties!.LogGroupName)).toMatch(/^\/aws\/events\//);
    expect(rule.Properties!.Targets.map((t: { Arn: unknown }) => render(t.Arn))).toEqual([
      `arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:<Ref:${groupId}>`,
    ]);
    const [[, policy]] = ofType(main, 'AWS::Logs::ResourcePolicy');
    const document = JSON.parse(render(policy.Properties!.PolicyDocument)) as { Statement: Array<Record<string, any>> };
    expect(document.Statement).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: `<${groupId}.Arn>`,
        Principal: { Service: expect.arrayContaining(['events.amazonaws.com']) },
      }),
    ]);
    expect(ruleId).toBe(logicalIdOf(main, main.stack.observability.gpuWaitRule));
  });

  it("alarms on the rule's MatchedEvents and says how to fix it; the dashboard graphs it", () => {
    const ruleId = logicalIdOf(main, main.stack.observability.gpuWaitRule);
    const alarms = ofType(main, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties!);
    const alarm = alarms.find((a) => JSON.stringify(a).includes('MatchedEvents'));
    expect(alarm).toBeDefined();
    const stat = (alarm!.Metrics as Array<{ MetricStat?: { Metric: Record<string, unknown>; Stat: string } }>).find((m) => m.MetricStat)!.MetricStat!;
    expect(stat.Metric).toEqual({ Namespace: 'AWS/Events', MetricName: 'MatchedEvents', Dimensions: [{ Name: 'RuleName', Value: { Ref: ruleId } }] });
    expect(stat.Stat).toBe('Sum');
    expect(alarm).toEqual(expect.objectContaining({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' }));
    expect(alarm!.AlarmDescription).toMatch(/45 minutes/);
    expect(alarm!.AlarmDescription).toMatch(/quota/);
    expect(alarm!.AlarmDescription).toContain('agentflow:gpuInstanceTypes');
    const [[, dashboard]] = ofType(main, 'AWS::CloudWatch::Dashboard');
    const body = render(dashboard.Properties!.DashboardBody);
    expect(body).toContain('"AWS/Events","MatchedEvents","RuleName"');
    expect(body).toContain(`<Ref:${ruleId}>`);
  });
});

describe('data across redeploys: adopting the kept bucket and tables', () => {
  it('creates no artifact bucket and no table, only the access-log bucket', () => {
    expect(ofType(adopted, 'AWS::DynamoDB::Table')).toEqual([]);
    expect(ofType(adopted, 'AWS::S3::Bucket').map(([id]) => id)).toEqual([logicalIdOf(adopted, adopted.stack.storage.logBucket)]);
    // The same stack without the keys creates all three.
    expect(ofType(main, 'AWS::DynamoDB::Table')).toHaveLength(2);
    expect(ofType(main, 'AWS::S3::Bucket')).toHaveLength(2);
  });

  it.each(FUNCTIONS.map((f) => [f.handler] as const))('%s: reads the adopted names from its environment', (handler) => {
    const env = adopted.resources[logicalIdOf(adopted, adopted.stack.functions.get(handler))].Properties!.Environment.Variables as Record<string, unknown>;
    expect(env[CONFIG_ENV.bucket]).toBe(ADOPTED.bucket);
    expect(env[CONFIG_ENV.registryTable]).toBe(ADOPTED.registryTable);
    expect(env[CONFIG_ENV.rewardTable]).toBe(ADOPTED.rewardTable);
  });

  it('grants on the adopted bucket, tables and their indexes, and on nothing the stack would have created', () => {
    const resources = new Set(policyResources(adopted));
    expect(resources).toContain(`arn:<AWS::Partition>:s3:::${ADOPTED.bucket}`);
    expect(resources).toContain(`arn:<AWS::Partition>:s3:::${ADOPTED.bucket}/*`);
    const tables = tableDefinitions();
    for (const [name, definition] of [
      [ADOPTED.registryTable, tables.registry],
      [ADOPTED.rewardTable, tables.rewards],
    ] as const) {
      const arn = `arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/${name}`;
      expect(resources).toContain(arn);
      for (const index of definition.GlobalSecondaryIndexes ?? []) expect(resources).toContain(`${arn}/index/${index.IndexName}`);
    }
    const jobEnv = Object.fromEntries(
      (
        adopted.resources[logicalIdOf(adopted, adopted.stack.batch.jobDefinitions.get('trial')!)].Properties!.ContainerProperties.Environment as Array<{
          Name: string;
          Value: unknown;
        }>
      ).map((e) => [e.Name, e.Value]),
    );
    expect(jobEnv[CONFIG_ENV.bucket]).toBe(ADOPTED.bucket);
  });

  it('outputs the adopted names for --aws mode', () => {
    const outputs = adopted.template.Outputs as Record<string, { Value: unknown }>;
    expect(outputs[STACK_OUTPUTS.bucket].Value).toBe(ADOPTED.bucket);
    expect(outputs[STACK_OUTPUTS.registryTable].Value).toBe(ADOPTED.registryTable);
    expect(outputs[STACK_OUTPUTS.rewardTable].Value).toBe(ADOPTED.rewardTable);
  });

  it('stays clean under cdk-nag', () => {
    const report = new AwsSolutionsChecks(adopted.stack).validateScope(adopted.stack);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});

describe('cdk-nag on the failure-mode resources', () => {
  it('reports no unacknowledged finding for the GPU wait rule, its log group and policy', () => {
    const report = new AwsSolutionsChecks(main.stack).validateScope(main.stack);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});
