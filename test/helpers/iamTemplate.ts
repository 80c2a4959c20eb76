/**
 * The synthesized stack as the IAM simulator needs it: every principal's identity policies with
 * Ref / Fn::GetAtt / Fn::Join / Fn::Sub resolved to the ARNs CloudFormation would produce in a fixed
 * test account, region and partition, and the stack outputs (bucket, tables, state machine) the
 * recorded local names are mapped onto.
 *
 * Synthesis skips asset bundling (`aws:cdk:bundling-stacks: []`): the policies do not depend on
 * the bundles, and cdk.test.ts covers those.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { App } from 'aws-cdk-lib';
import { AgentflowStack } from '../../cdk/stack.ts';
import { readContext } from '../../cdk/context.ts';
import { FUNCTIONS } from '../../cdk/functions.ts';
import { STACK_OUTPUTS } from '#lib/adapters/aws/outputs.ts';
import { BATCH_STAGES } from '#lib/pipeline/index.ts';

export const TEST_ACCOUNT = '123456789012';
export const TEST_REGION = 'us-east-1';
export const TEST_PARTITION = 'aws';
export const STACK_NAME = 'AgentflowIam';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

export interface PolicyDocument {
  Version: string;
  Statement: PolicyStatement[];
}

/** One identity policy of a principal, named after the template resource it came from. */
export interface NamedPolicy {
  name: string;
  policy: PolicyDocument;
}

export interface Principal {
  /** `plan`, `trial`, `stateMachine`, `caller`, … */
  name: string;
  roleArn: string;
  policies: NamedPolicy[];
  /** Where its grants come from, for messages: the file a fix goes in. */
  grantsFrom: string;
}

/** The deployed names the local bucket, tables and state machine stand for. */
export interface StackResources {
  bucket: string;
  registryTable: string;
  rewardTable: string;
  stateMachineArn: string;
  /** The state machine's definition substitutions (function, job definition and queue ARNs) by placeholder. */
  substitutions: Record<string, string>;
  /** Every stack output, resolved, by output name. */
  outputs: Record<string, string>;
  /** Each function's ARN by handler name (for Function URL calls). */
  functionArns: Record<string, string>;
  /** The artifact bucket's resource policy (e.g. TLS only), evaluated with every S3 request. */
  bucketPolicy?: PolicyDocument;
}

export interface StackPolicies {
  principals: Map<string, Principal>;
  resources: StackResources;
}

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, any> }>; Outputs?: Record<string, { Value: unknown }> };

export class TemplateResolveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateResolveError';
  }
}

/**
 * Resolves CloudFormation intrinsics the way a deployment in the test account would. Resources
 * without an explicit name get their logical id as physical name (buckets in lower case, as S3 needs).
 */
export function templateResolver(template: Template): (value: unknown) => unknown {
  const arn = (service: string, rest: string) => `arn:${TEST_PARTITION}:${service}:${TEST_REGION}:${TEST_ACCOUNT}:${rest}`;
  const resourceOf = (id: string) => {
    const found = template.Resources[id];
    if (!found) throw new TemplateResolveError(`the template has no resource ${id}`);
    return found;
  };
  const physicalName = (id: string): string => {
    const { Type, Properties = {} } = resourceOf(id);
    switch (Type) {
      case 'AWS::S3::Bucket':
        return (Properties.BucketName as string | undefined) ?? id.toLowerCase();
      case 'AWS::DynamoDB::Table':
        return (Properties.TableName as string | undefined) ?? id;
      case 'AWS::Lambda::Function':
        return (Properties.FunctionName as string | undefined) ?? id;
      case 'AWS::IAM::Role':
        return (Properties.RoleName as string | undefined) ?? id;
      case 'AWS::StepFunctions::StateMachine':
        return (Properties.StateMachineName as string | undefined) ?? id;
      case 'AWS::Logs::LogGroup':
        return (Properties.LogGroupName as string | undefined) ?? id;
      default:
        return id;
    }
  };
  const arnOf = (id: string): string => {
    const { Type } = resourceOf(id);
    const name = physicalName(id);
    switch (Type) {
      case 'AWS::S3::Bucket':
        return `arn:${TEST_PARTITION}:s3:::${name}`;
      case 'AWS::DynamoDB::Table':
        return arn('dynamodb', `table/${name}`);
      case 'AWS::Lambda::Function':
        return arn('lambda', `function:${name}`);
      case 'AWS::IAM::Role':
        return `arn:${TEST_PARTITION}:iam::${TEST_ACCOUNT}:role/${name}`;
      case 'AWS::StepFunctions::StateMachine':
        return arn('states', `stateMachine:${name}`);
      case 'AWS::Logs::LogGroup':
        return arn('logs', `log-group:${name}:*`);
      case 'AWS::Batch::JobQueue':
        return arn('batch', `job-queue/${name}`);
      case 'AWS::Batch::JobDefinition':
        return arn('batch', `job-definition/${name}:1`);
      default:
        return arn('unresolved', `${Type}/${id}`);
    }
  };
  const ref = (id: string): string => {
    const pseudo: Record<string, string> = {
      'AWS::Partition': TEST_PARTITION,
      'AWS::Region': TEST_REGION,
      'AWS::AccountId': TEST_ACCOUNT,
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': STACK_NAME,
    };
    if (pseudo[id]) return pseudo[id];
    const { Type } = resourceOf(id);
    // CloudFormation's Ref gives an ARN for these, a name for the rest.
    if (['AWS::StepFunctions::StateMachine', 'AWS::Batch::JobQueue', 'AWS::Batch::JobDefinition'].includes(Type)) return arnOf(id);
    return physicalName(id);
  };
  const getAtt = (id: string, attribute: string): string => {
    if (attribute === 'Arn' || attribute === 'JobQueueArn') return arnOf(id);
    if (attribute === 'Name') return physicalName(id);
    return `${id}.${attribute}`;
  };
  const resolveValue = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolveValue);
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1) {
      const [[key, argument]] = entries;
      if (key === 'Ref') return ref(argument as string);
      if (key === 'Fn::GetAtt') {
        const [id, attribute] = Array.isArray(argument) ? (argument as string[]) : (argument as string).split('.');
        return getAtt(id, attribute);
      }
      if (key === 'Fn::Join') {
        const [separator, parts] = argument as [string, unknown[]];
        return (resolveValue(parts) as unknown[]).join(separator);
      }
      if (key === 'Fn::Sub') {
        const [text, variables = {}] = Array.isArray(argument) ? (argument as [string, Record<string, unknown>]) : [argument as string, {}];
        return text.replace(/\$\{([^}!]+)\}/g, (_, name: string) => {
          if (name in variables) return String(resolveValue(variables[name]));
          const [id, attribute] = name.split('.');
          return attribute ? getAtt(id, attribute) : ref(id);
        });
      }
      if (key === 'Fn::Select') {
        const [index, list] = argument as [number, unknown];
        return (resolveValue(list) as unknown[])[Number(index)];
      }
      if (key === 'Fn::Split') {
        const [separator, text] = argument as [string, unknown];
        return String(resolveValue(text)).split(separator);
      }
      if (key.startsWith('Fn::')) throw new TemplateResolveError(`cannot resolve ${key} in ${JSON.stringify(value)}; teach templateResolver this intrinsic`);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, resolveValue(v)]));
  };
  return resolveValue;
}

/** The identity policies attached to a role: its inline `Policies` and every AWS::IAM::Policy naming it. */
function policiesOfRole(template: Template, roleId: string, resolveValue: (value: unknown) => unknown): NamedPolicy[] {
  const role = template.Resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new TemplateResolveError(`${roleId} is not an AWS::IAM::Role in the template`);
  const inline = ((role.Properties?.Policies ?? []) as { PolicyName: string; PolicyDocument: unknown }[]).map((p) => ({
    name: `${roleId}/${p.PolicyName}`,
    policy: resolveValue(p.PolicyDocument) as PolicyDocument,
  }));
  const attached = Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::IAM::Policy' && ((r.Properties?.Roles ?? []) as { Ref?: string }[]).some((x) => x.Ref === roleId))
    .map(([id, r]) => ({ name: id, policy: resolveValue(r.Properties!.PolicyDocument) as PolicyDocument }));
  return [...inline, ...attached];
}

/** `{ "Fn::GetAtt": [roleId, "Arn"] }` → roleId. */
function roleIdOf(roleArn: unknown, what: string): string {
  const getAtt = (roleArn as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt'];
  if (!getAtt) throw new TemplateResolveError(`${what}: the role is ${JSON.stringify(roleArn)}, not a GetAtt of a role in this stack`);
  return getAtt[0];
}

/**
 * Synthesizes the real stack (cdk.json context, no bundling) and collects every principal: each
 * Lambda function of `FUNCTIONS` by handler name, each Batch job by job name, and the state machine.
 */
export function synthesizeStackPolicies(options: { projectRoot?: string } = {}): StackPolicies {
  const root = options.projectRoot ?? resolve(import.meta.dirname, '..', '..');
  const outdir = mkdtempSync(join(tmpdir(), 'agentflow-iam-cdk-'));
  try {
    const cdkJson = JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
    const app = new App({ outdir, context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
    const stack = new AgentflowStack(app, STACK_NAME, { settings: readContext((key) => app.node.tryGetContext(key)), projectRoot: root });
    const template = app.synth().getStackByName(stack.stackName).template as Template;
    const resolveValue = templateResolver(template);
    const logicalIdOf = (construct: { node: { defaultChild?: unknown } }) => stack.resolve(stack.getLogicalId(construct.node.defaultChild as never)) as string;
    const principal = (name: string, roleId: string, grantsFrom: string): Principal => ({
      name,
      roleArn: resolveValue({ 'Fn::GetAtt': [roleId, 'Arn'] }) as string,
      policies: policiesOfRole(template, roleId, resolveValue),
      grantsFrom,
    });

    const principals = new Map<string, Principal>();
    const functionArns: Record<string, string> = {};
    for (const spec of FUNCTIONS) {
      const functionId = logicalIdOf(stack.functions.get(spec.handler));
      const fn = template.Resources[functionId];
      functionArns[spec.handler] = resolveValue({ 'Fn::GetAtt': [functionId, 'Arn'] }) as string;
      principals.set(
        spec.handler,
        principal(spec.handler, roleIdOf(fn.Properties?.Role, `function ${spec.handler}`), `cdk/functions.ts (${spec.handler}'s access) and cdk/access.ts`),
      );
    }
    for (const stage of BATCH_STAGES) {
      const definition = template.Resources[logicalIdOf(stack.batch.jobDefinitions.get(stage.job)!)];
      const roleArn = definition.Properties?.ContainerProperties?.JobRoleArn;
      principals.set(stage.job, principal(stage.job, roleIdOf(roleArn, `job ${stage.job}`), 'cdk/constructs/gpuBatch.ts (the job role) and cdk/access.ts'));
    }
    principals.set('stateMachine', principal('stateMachine', logicalIdOf(stack.workflow.stateMachine.role as never), 'cdk/constructs/workflow.ts'));

    const output = (key: keyof typeof STACK_OUTPUTS): string => {
      const value = template.Outputs?.[STACK_OUTPUTS[key]]?.Value;
      if (value === undefined) throw new TemplateResolveError(`the template has no output ${STACK_OUTPUTS[key]}`);
      return resolveValue(value) as string;
    };
    const bucket = output('bucket');
    const bucketPolicy = Object.values(template.Resources).find((r) => r.Type === 'AWS::S3::BucketPolicy' && resolveValue(r.Properties?.Bucket) === bucket)
      ?.Properties?.PolicyDocument;
    return {
      principals,
      resources: {
        bucket,
        registryTable: output('registryTable'),
        rewardTable: output('rewardTable'),
        stateMachineArn: output('stateMachineArn'),
        substitutions: resolveValue(template.Resources[logicalIdOf(stack.workflow.stateMachine)].Properties?.DefinitionSubstitutions ?? {}) as Record<
          string,
          string
        >,
        functionArns,
        outputs: Object.fromEntries(Object.entries(template.Outputs ?? {}).map(([name, o]) => [name, String(resolveValue(o.Value))])),
        ...(bucketPolicy ? { bucketPolicy: resolveValue(bucketPolicy) as PolicyDocument } : {}),
      },
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
