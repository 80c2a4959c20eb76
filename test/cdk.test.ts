/**
 * The CDK stack, synthesized once (local esbuild bundling, no Docker, no credentials) with the
 * context from cdk.json plus test schedules. Handlers not written yet are bundled from stand-ins
 * under cdk.out/ (reported on stderr) so the rest of the stack can still be checked.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentflowStack } from '../cdk/stack.ts';
import { readContext } from '../cdk/context.ts';
import { FUNCTIONS, handlerEntry, type FunctionSpec } from '../cdk/functions.ts';
import { BATCH_SYNC_RULE } from '../cdk/constructs/workflow.ts';
import { BUCKET_ACTIONS, TABLE_ACTIONS } from '../cdk/access.ts';
import { IMAGE_CONTEXT_EXCLUDE } from '../cdk/constructs/gpuBatch.ts';
import { bundleImportsOnnxRuntime, directorySizeBytes, LAMBDA_UNZIPPED_LIMIT_BYTES } from '../cdk/vendorOnnxRuntime.ts';
import { CONFIG_ENV } from '#lib/adapters/config/index.ts';
import { METRICS_NAMESPACE, SERVE_METRICS, ServeMetrics } from '#lib/serve/metrics.ts';
import { STACK_OUTPUTS, STACK_OUTPUT_ENV } from '#lib/adapters/aws/outputs.ts';
import { tableDefinitions } from '#lib/adapters/registry/tables.ts';
import { BATCH_STAGES, LAMBDA_STAGES, PLACEHOLDERS, buildDefinition, placeholdersIn, JOB_QUEUE_PLACEHOLDER } from '#lib/pipeline/index.ts';

const root = resolve(import.meta.dirname, '..');

const SCHEDULES = [
  { project: 'support-triage', rate: '7 days', specUri: 's3://agentflow-specs/support-triage/spec.json' },
  { project: 'churn-tabular', cron: '0 3 ? * MON *', specUri: 's3://agentflow-specs/churn/spec.json', enabled: false },
];

type Resource = { Type: string; Properties: Record<string, any>; Metadata?: Record<string, any> };

let outdir: string;
let stack: AgentflowStack;
let template: Template;
let resources: Record<string, Resource>;
let standIns: string[] = [];
const synthMs: { construct?: number; synth?: number } = {};

/** A stand-in entry for a handler another engineer has not written yet; throws if ever invoked. */
function entryOf(spec: FunctionSpec): string {
  const real = join(root, handlerEntry(spec.handler));
  if (existsSync(real)) return real;
  const dir = join(root, 'cdk.out', '.test-entries');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${spec.handler}.ts`);
  const ort = spec.runsModel;
  writeFileSync(
    file,
    `${ort ? "import { InferenceSession } from 'onnxruntime-node';\n" : ''}` +
      `export const handler = async (): Promise<never> => { throw new Error('stand-in for ${handlerEntry(spec.handler)}${ort ? ` (${'${typeof InferenceSession}'})` : ''}'); };\n`,
  );
  standIns.push(handlerEntry(spec.handler));
  return file;
}

const logicalIdOf = (construct: { node: { defaultChild?: unknown } }) => stack.resolve(stack.getLogicalId(construct.node.defaultChild as never)) as string;
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
/** Every statement of every AWS::IAM::Policy attached to the role with this logical id. */
function statementsOfRole(roleLogicalId: string): Array<{ Action: string | string[]; Resource: unknown; Effect: string }> {
  return ofType('AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === roleLogicalId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
}
const actionsOf = (s: { Action: string | string[] }) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: { Resource: unknown }) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);
const sorted = (values: unknown[]) => values.map((v) => JSON.stringify(v)).sort();

beforeAll(() => {
  standIns = [];
  outdir = mkdtempSync(join(tmpdir(), 'agentflow-cdk-'));
  const cdkJson = JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
  const app = new App({
    outdir,
    context: {
      ...cdkJson.context,
      'agentflow:schedules': SCHEDULES,
      'agentflow:gpuInstanceTypes': ['g5.xlarge', 'g4dn.xlarge'],
      'aws:cdk:enable-asset-metadata': true,
    },
  });
  let t = Date.now();
  stack = new AgentflowStack(app, 'AgentflowTest', { settings: readContext((key) => app.node.tryGetContext(key)), projectRoot: root, entryOf });
  synthMs.construct = Date.now() - t;
  t = Date.now();
  app.synth();
  template = Template.fromStack(stack);
  synthMs.synth = Date.now() - t;
  resources = template.toJSON().Resources;
  if (standIns.length) process.stderr.write(`cdk.test: bundled stand-ins for missing entry points: ${standIns.join(', ')}\n`);
  process.stderr.write(`cdk.test: construct+bundle ${synthMs.construct} ms, synth ${synthMs.synth} ms\n`);
}, 600_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

describe('state machine', () => {
  it('deploys exactly the definition the local runtime executes, every placeholder substituted', () => {
    const [[, machine]] = ofType('AWS::StepFunctions::StateMachine');
    const definitionString = machine.Properties.DefinitionString as string;
    expect(JSON.parse(definitionString)).toEqual(buildDefinition());
    const substitutions = machine.Properties.DefinitionSubstitutions as Record<string, unknown>;
    expect(Object.keys(substitutions).sort()).toEqual([...PLACEHOLDERS].sort());
    expect(placeholdersIn(JSON.parse(definitionString)).filter((name) => !(name in substitutions))).toEqual([]);
    for (const stage of LAMBDA_STAGES) {
      expect(substitutions[stage.placeholder]).toEqual({ 'Fn::GetAtt': [logicalIdOf(stack.functions.get(stage.handler)), 'Arn'] });
    }
    for (const stage of BATCH_STAGES) expect(substitutions[stage.placeholder]).toEqual({ Ref: logicalIdOf(stack.batch.jobDefinitions.get(stage.job)!) });
    expect(substitutions[JOB_QUEUE_PLACEHOLDER]).toEqual({ 'Fn::GetAtt': [logicalIdOf(stack.batch.queue), 'JobQueueArn'] });
  });

  it('logs every event to a log group and traces with X-Ray', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: true, Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: Match.anyValue() } }] },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('may invoke the stage functions only, submit the two jobs to the queue, watch and stop jobs, and manage the .sync rule', () => {
    const statements = statementsOfRole(logicalIdOf(stack.workflow.stateMachine.role));
    const invoke = statements.filter((s) => actionsOf(s).includes('lambda:InvokeFunction'));
    expect(sorted(invoke.flatMap(resourcesOf))).toEqual(
      sorted(LAMBDA_STAGES.map((stage) => ({ 'Fn::GetAtt': [logicalIdOf(stack.functions.get(stage.handler)), 'Arn'] }))),
    );
    const submit = statements.filter((s) => actionsOf(s).includes('batch:SubmitJob'));
    expect(sorted(submit.flatMap(resourcesOf))).toEqual(
      sorted([
        ...BATCH_STAGES.map((s) => ({ Ref: logicalIdOf(stack.batch.jobDefinitions.get(s.job)!) })),
        { 'Fn::GetAtt': [logicalIdOf(stack.batch.queue), 'JobQueueArn'] },
      ]),
    );
    expect(statements.find((s) => actionsOf(s).includes('batch:DescribeJobs'))).toBeDefined();
    const terminate = statements.find((s) => actionsOf(s).includes('batch:TerminateJob'));
    expect(JSON.stringify(terminate?.Resource)).toContain(':job/*');
    const events = statements.find((s) => actionsOf(s).includes('events:PutRule'));
    expect(actionsOf(events!).sort()).toEqual(['events:DescribeRule', 'events:PutRule', 'events:PutTargets']);
    expect(JSON.stringify(events!.Resource)).toContain(`:rule/${BATCH_SYNC_RULE}`);
    // Nothing broader slipped in: no service-wide actions.
    expect(statements.flatMap(actionsOf).filter((a) => a.endsWith(':*'))).toEqual([]);
  });
});

describe('GPU batch jobs', () => {
  it.each(BATCH_STAGES.map((s) => [s.job, s] as const))(
    '%s: one GPU, the stage timeout, Spot reclaims retried, the job command and config environment',
    (job, stage) => {
      const definition = resources[logicalIdOf(stack.batch.jobDefinitions.get(job)!)];
      const container = definition.Properties.ContainerProperties;
      expect(container.ResourceRequirements).toEqual(expect.arrayContaining([{ Type: 'GPU', Value: '1' }]));
      expect(container.Command).toEqual(['node', '--import', 'tsx', `functions/jobs/${job}.ts`]);
      expect(definition.Properties.Timeout).toEqual({ AttemptDurationSeconds: stage.timeoutSeconds });
      expect(definition.Properties.RetryStrategy.EvaluateOnExit[0]).toEqual({ Action: 'RETRY', OnStatusReason: 'Host EC2*' });
      expect(definition.Properties.RetryStrategy.Attempts).toBeGreaterThan(1);
      const env = Object.fromEntries((container.Environment as Array<{ Name: string; Value: unknown }>).map((e) => [e.Name, e.Value]));
      expect(env[CONFIG_ENV.bucket]).toEqual({ Ref: logicalIdOf(stack.storage.bucket) });
      expect(env[CONFIG_ENV.registryTable]).toEqual({ Ref: logicalIdOf(stack.storage.registryTable.table) });
      expect(env[CONFIG_ENV.rewardTable]).toEqual({ Ref: logicalIdOf(stack.storage.rewardTable.table) });
      expect(env.AWS_REGION).toEqual({ Ref: 'AWS::Region' });
    },
  );

  it('runs on a managed GPU compute environment from context: the instance types, Spot, scaled to zero', () => {
    template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      Type: 'managed',
      ComputeResources: Match.objectLike({
        Type: 'SPOT',
        MinvCpus: 0,
        InstanceTypes: ['g5.xlarge', 'g4dn.xlarge'],
        Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
      }),
    });
  });

  it('builds the image from a context holding only what the jobs need', () => {
    const assets = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.assets.json`), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string } }>;
    };
    const images = Object.values(assets.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0].source.dockerFile).toBe('cdk/Dockerfile');
    const context = join(outdir, images[0].source.directory);
    expect(readdirSync(context).sort()).toEqual(['cdk', 'functions', 'lib', 'package-lock.json', 'package.json', 'tsconfig.json']);
    expect(readdirSync(join(context, 'cdk'))).toEqual(['Dockerfile']);
    expect(IMAGE_CONTEXT_EXCLUDE).toContain('**/node_modules');
    const dockerfile = readFileSync(join(context, 'cdk', 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM nvidia\/cuda:12\.[0-9.]+-cudnn-runtime-/m);
    expect(dockerfile).toMatch(/--onnxruntime-node-install=cuda12/);
    expect(dockerfile).toMatch(/AGENTFLOW_DEVICE=cuda/);
  });
});

describe('storage', () => {
  it('encrypts the artifact bucket, blocks public access, versions it, logs access and expires run scratch', () => {
    const expirationDays = readContext(() => undefined).scratchExpirationDays;
    const bucket = resources[logicalIdOf(stack.storage.bucket)].Properties;
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.LoggingConfiguration.DestinationBucketName).toEqual({ Ref: logicalIdOf(stack.storage.logBucket) });
    expect(bucket.LifecycleConfiguration.Rules).toEqual(
      expect.arrayContaining([expect.objectContaining({ Prefix: 'runs/', ExpirationInDays: expirationDays, Status: 'Enabled' })]),
    );
  });

  it.each(['bucket', 'logBucket'] as const)('%s denies every request without TLS', (which) => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logicalIdOf(stack.storage[which]) },
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
  });

  it.each([
    ['registry', 'registryTable'],
    ['rewards', 'rewardTable'],
  ] as const)('the %s table has the local key schema, on-demand billing, PITR, encryption and its TTL', (name, field) => {
    const definition = tableDefinitions()[name];
    const table = resources[logicalIdOf(stack.storage[field].table)];
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    expect(table.Properties.KeySchema).toEqual(definition.KeySchema);
    expect([...table.Properties.AttributeDefinitions].sort((a, b) => a.AttributeName.localeCompare(b.AttributeName))).toEqual(
      [...definition.AttributeDefinitions].sort((a, b) => a.AttributeName.localeCompare(b.AttributeName)),
    );
    expect(table.Properties.GlobalSecondaryIndexes ?? []).toEqual(definition.GlobalSecondaryIndexes ?? []);
    expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: true });
    expect(table.Properties.TimeToLiveSpecification).toEqual(
      definition.timeToLiveAttribute ? { AttributeName: definition.timeToLiveAttribute, Enabled: true } : undefined,
    );
  });
});

describe('functions', () => {
  it('has one function per Lambda stage and per serving function', () => {
    expect(FUNCTIONS.map((f) => f.handler)).toEqual([...LAMBDA_STAGES.map((s) => s.handler), 'infer', 'feedback', 'monitor']);
    const ours = ofType('AWS::Lambda::Function').filter(([, r]) => r.Properties.Environment?.Variables?.[CONFIG_ENV.bucket]);
    expect(ours.map(([id]) => id).sort()).toEqual(FUNCTIONS.map((f) => logicalIdOf(stack.functions.get(f.handler))).sort());
  });

  it.each(FUNCTIONS.map((f) => [f.handler, f] as const))(
    '%s: Node.js 22, X-Ray, sizes from the table, config environment backed by matching grants',
    (handler, spec) => {
      const fn = stack.functions.get(handler);
      const properties = resources[logicalIdOf(fn)].Properties;
      expect(properties.Runtime).toBe('nodejs22.x');
      expect(properties.Handler).toBe('index.handler');
      expect(properties.TracingConfig).toEqual({ Mode: 'Active' });
      expect(properties.MemorySize).toBe(spec.memoryMiB);
      expect(properties.Timeout).toBe(spec.timeoutSeconds);
      const stage = LAMBDA_STAGES.find((s) => s.handler === handler);
      if (stage) expect(properties.Timeout).toBe(Math.min(stage.timeoutSeconds, 900));

      const env = properties.Environment.Variables as Record<string, unknown>;
      const statements = statementsOfRole(logicalIdOf(fn.role!));
      const bucketArn = { 'Fn::GetAtt': [logicalIdOf(stack.storage.bucket), 'Arn'] };
      expect(env[CONFIG_ENV.bucket]).toEqual({ Ref: logicalIdOf(stack.storage.bucket) });
      // Every key ("<bucket>/*"); writes scoped to key patterns (access.bucketWrites) are iam.test's to check.
      const objectActions = statements
        .filter((s) => JSON.stringify(s.Resource).includes('"/*"') && JSON.stringify(s.Resource).includes(logicalIdOf(stack.storage.bucket)))
        .flatMap(actionsOf);
      expect(objectActions.sort()).toEqual([...BUCKET_ACTIONS.objects[spec.access.bucket]].sort());
      expect(statements.some((s) => actionsOf(s).includes('s3:ListBucket') && JSON.stringify(resourcesOf(s)) === JSON.stringify([bucketArn]))).toBe(true);
      for (const role of ['registryTable', 'rewardTable'] as const) {
        const table = stack.storage[role].table;
        expect(env[CONFIG_ENV[role]]).toEqual({ Ref: logicalIdOf(table) });
        const granted = statements
          .filter((s) => resourcesOf(s).some((r) => JSON.stringify(r) === JSON.stringify({ 'Fn::GetAtt': [logicalIdOf(table), 'Arn'] })))
          .flatMap(actionsOf);
        expect(granted.sort()).toEqual([...TABLE_ACTIONS[spec.access[role]]].sort());
      }
      const starts = statements.some((s) => actionsOf(s).includes('states:StartExecution'));
      expect(starts).toBe(spec.startsRuns);
      expect(STACK_OUTPUT_ENV.stateMachineArn in env).toBe(spec.startsRuns);
      // Nothing deletes artifacts: keys are immutable.
      expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('s3:Delete'))).toEqual([]);
    },
  );

  it('serves infer and feedback behind Function URLs with AWS_IAM auth', () => {
    const urls = ofType('AWS::Lambda::Url').map(([, r]) => r.Properties);
    expect(urls).toHaveLength(2);
    for (const handler of ['infer', 'feedback']) {
      expect(urls).toContainEqual(
        expect.objectContaining({ AuthType: 'AWS_IAM', TargetFunctionArn: { 'Fn::GetAtt': [logicalIdOf(stack.functions.get(handler)), 'Arn'] } }),
      );
    }
  });

  it('ships onnxruntime-node (linux-x64 CPU only) with exactly the functions that run a model, within 250 MB unzipped', () => {
    const sizes: string[] = [];
    const shipping: string[] = [];
    for (const spec of FUNCTIONS) {
      const assetPath = resources[logicalIdOf(stack.functions.get(spec.handler))].Metadata?.['aws:asset:path'] as string;
      const dir = join(outdir, assetPath);
      const imports = bundleImportsOnnxRuntime(readFileSync(join(dir, 'index.mjs'), 'utf8'));
      const ort = join(dir, 'node_modules', 'onnxruntime-node');
      expect(existsSync(ort), `${spec.handler}: imports onnxruntime-node = ${imports}`).toBe(imports);
      if (imports) {
        shipping.push(spec.handler);
        const bin = join(ort, 'bin');
        for (const napi of readdirSync(bin)) {
          expect(readdirSync(join(bin, napi))).toEqual(['linux']);
          expect(readdirSync(join(bin, napi, 'linux'))).toEqual(['x64']);
          const files = readdirSync(join(bin, napi, 'linux', 'x64'));
          expect(files).toContain('onnxruntime_binding.node');
          expect(files.filter((f) => /providers_(cuda|tensorrt)/.test(f))).toEqual([]);
        }
        expect(existsSync(join(dir, 'node_modules', 'onnxruntime-common', 'package.json'))).toBe(true);
      }
      const bytes = directorySizeBytes(dir);
      sizes.push(`${spec.handler} ${(bytes / 2 ** 20).toFixed(1)} MiB`);
      expect(bytes, `${spec.handler} bundle`).toBeLessThan(LAMBDA_UNZIPPED_LIMIT_BYTES);
    }
    // The others (Plan, Reward, RecordFailure, Feedback, Monitor) neither ship nor import it.
    expect(shipping).toEqual(FUNCTIONS.filter((f) => f.runsModel).map((f) => f.handler));
    expect(FUNCTIONS.filter((f) => !f.runsModel).map((f) => f.handler)).toEqual(expect.arrayContaining(['plan', 'reward', 'recordFailure', 'feedback']));
    process.stderr.write(`cdk.test: unzipped bundle sizes: ${sizes.join(', ')}\n`);
  });
});

describe('schedules', () => {
  it('starts an execution per context schedule with a fresh run id, through a role that may only start this state machine', () => {
    const schedules = ofType('AWS::Scheduler::Schedule')
      .map(([, r]) => r.Properties)
      .filter((p) => JSON.stringify(p.Target.Arn).includes(logicalIdOf(stack.workflow.stateMachine)));
    expect(schedules.map((s) => s.ScheduleExpression)).toEqual(['rate(7 days)', 'cron(0 3 ? * MON *)']);
    expect(schedules.map((s) => s.State)).toEqual(['ENABLED', 'DISABLED']);
    SCHEDULES.forEach((expected, index) => {
      const input = JSON.parse(schedules[index].Target.Input as string) as Record<string, string>;
      expect(input).toEqual({ runId: 'sched-<aws.scheduler.execution-id>', project: expected.project, specUri: expected.specUri });
    });
    const roleId = (schedules[0].Target.RoleArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    expect(schedules[1].Target.RoleArn).toEqual(schedules[0].Target.RoleArn);
    const statements = statementsOfRole(roleId);
    expect(statements).toEqual([
      expect.objectContaining({ Action: 'states:StartExecution', Effect: 'Allow', Resource: { Ref: logicalIdOf(stack.workflow.stateMachine) } }),
    ]);
  });

  it("puts every schedule in the stack's own group, whose name is the output agentflow schedule --aws lists", () => {
    const groups = ofType('AWS::Scheduler::ScheduleGroup');
    expect(groups).toHaveLength(1);
    const [[groupId, group]] = groups;
    const name = group.Properties.Name as string;
    expect(name).toMatch(/^AgentflowTest-/);
    const schedules = ofType('AWS::Scheduler::Schedule').map(([, r]) => r as Resource & { DependsOn?: string[] });
    expect(schedules).toHaveLength(3);
    for (const schedule of schedules) {
      expect(schedule.Properties.GroupName).toBe(name);
      // The name is a literal, so only DependsOn makes CloudFormation create the group first.
      expect(schedule.DependsOn).toContain(groupId);
    }
    expect((template.toJSON().Outputs as Record<string, { Value: unknown }>)[STACK_OUTPUTS.scheduleGroup].Value).toBe(name);
  });

  it('runs the monitor on the default rate', () => {
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 hour)',
      Target: Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalIdOf(stack.functions.get('monitor')), 'Arn'] } }),
    });
  });
});

describe('outputs and observability', () => {
  it('outputs what --aws mode reads, under the names lib/adapters/aws expects', () => {
    const outputs = template.toJSON().Outputs as Record<string, unknown>;
    expect(Object.keys(outputs).sort()).toEqual(Object.values(STACK_OUTPUTS).sort());
  });

  it('alarms on failed and timed-out executions, infer errors and infer p99 latency', () => {
    const alarms = ofType('AWS::CloudWatch::Alarm').map(([, r]) => r.Properties);
    expect(
      alarms
        .map((a) => a.MetricName)
        .filter(Boolean)
        .sort(),
    ).toEqual(['Duration', 'ExecutionsFailed', 'ExecutionsTimedOut']);
    expect(alarms.find((a) => a.MetricName === 'Duration')?.ExtendedStatistic).toBe('p99');
    expect(alarms.some((a) => JSON.stringify(a.Metrics ?? []).includes('errors / invocations'))).toBe(true);
  });

  it('graphs online reward and traffic share per version from the serving metrics', () => {
    const [[, dashboard]] = ofType('AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const metric of [SERVE_METRICS.onlineReward.name, SERVE_METRICS.routedRequests.name]) expect(body).toContain(`MetricName=\\\\\\"${metric}\\\\\\"`);
    expect(body).toContain('{agentflow,project,version}');
  });

  it('reads only custom metrics the serving code emits, by name and with the dimensions it emits them with', () => {
    // Every metric line the serving functions and the monitor write, one call of each.
    const lines: Array<{ _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string }> }> } }> = [];
    const metrics = new ServeMetrics({ sink: (line) => lines.push(JSON.parse(line)), clock: () => 0 });
    metrics.routed('shop', 1, 2, 0.5);
    metrics.imputed('shop', 1, 3);
    metrics.reward('shop', 1, 1);
    metrics.monitorPass('shop', 1, { rewardCount: 40, meanReward: 0.7, maxPsi: 0.1 });
    metrics.retrainStarted('shop');
    const emitted = new Set(
      lines.flatMap((line) => line._aws.CloudWatchMetrics.flatMap((d) => d.Metrics.map((m) => `{${[d.Namespace, ...d.Dimensions[0]].join(',')}} ${m.Name}`))),
    );

    // Every metric of our namespace the dashboard searches for or an alarm watches.
    const [[, dashboard]] = ofType('AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(stack.resolve(dashboard.Properties.DashboardBody)).replaceAll('\\', '');
    const searched = [...body.matchAll(/SEARCH\('(\{[^}]*\}) MetricName="([^"]+)"/g)].map(([, dimensions, name]) => `${dimensions} ${name}`);
    const alarmed = ofType('AWS::CloudWatch::Alarm')
      .flatMap(([, r]) => [
        r.Properties,
        ...((r.Properties.Metrics as Array<{ MetricStat?: { Metric: Record<string, unknown> } }> | undefined) ?? []).map((m) => m.MetricStat?.Metric ?? {}),
      ])
      .filter((m) => m.Namespace === METRICS_NAMESPACE)
      .map(
        (m) =>
          `{${[METRICS_NAMESPACE, ...((m.Dimensions as Array<{ Name: string }> | undefined) ?? []).map((d) => d.Name)].join(',')}} ${m.MetricName as string}`,
      );

    expect(searched.length).toBeGreaterThanOrEqual(4);
    expect([...searched, ...alarmed].filter((metric) => !emitted.has(metric))).toEqual([]);
  });
});

describe('cdk-nag', () => {
  it('reports no AwsSolutions finding that is not acknowledged with a reason', () => {
    const report = new AwsSolutionsChecks(stack).validateScope(stack);
    const findings = report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
    expect(findings).toEqual([]);
  });
});
