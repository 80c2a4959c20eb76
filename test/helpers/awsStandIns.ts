/**
 * Protocol stand-ins for the AWS APIs `--aws` mode calls that no local emulator on npm provides:
 * Step Functions (JSON 1.0 protocol: POST /, `X-Amz-Target: AWSStepFunctions.<Operation>`),
 * EventBridge Scheduler (REST-JSON: /schedules/{Name}), CloudFormation's DescribeStacks (the Query
 * protocol: a form-encoded POST answered in XML), and Lambda Function URLs (which hand the
 * request to the real infer/feedback handlers as a Function URL event). Each checks the SigV4
 * signature (test/helpers/sigv4.ts) and keeps only the state the tests need. They are small on
 * purpose: the real SDK clients talk to them over HTTP, so serialization, signing and error parsing
 * are the SDK's own; what the service would decide is scripted by the test.
 */
import type { FunctionUrlResult } from '#lib/serve/index.ts';
import { startSignedEndpoint, type Answer, type ReceivedRequest, type SignedEndpoint } from './sigv4.ts';

export const STAND_IN_REGION = 'us-east-1';
const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => ({ status, headers, body: JSON.stringify(body) });
const seconds = (date: Date) => date.getTime() / 1000;

// ── Lambda Function URLs ──────────────────────────────────────────────────────────────────────

/** A Function URL with AWS_IAM auth in front of a real handler (e.g. `handleInferEvent` with a serve context). */
export function startFunctionUrl(handler: (event: unknown) => Promise<FunctionUrlResult>): Promise<SignedEndpoint> {
  return startSignedEndpoint({
    service: 'lambda',
    region: STAND_IN_REGION,
    async handle(request) {
      const url = new URL(request.url, 'http://localhost');
      const result = await handler({
        version: '2.0',
        rawPath: url.pathname,
        rawQueryString: url.search.slice(1),
        headers: request.headers,
        requestContext: { http: { method: request.method, path: url.pathname }, requestId: 'stand-in' },
        body: request.body,
        isBase64Encoded: false,
      });
      return { status: result.statusCode, headers: result.headers, body: result.body };
    },
  });
}

// ── Step Functions ────────────────────────────────────────────────────────────────────────────

export interface StandInEvent {
  type: string;
  /** The `…EventDetails` field and its value, e.g. `{ stateEnteredEventDetails: { name: 'Prepare' } }`. */
  details?: Record<string, unknown>;
}

export interface StandInExecution {
  executionArn: string;
  name: string;
  stateMachineArn: string;
  input: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  startDate: Date;
  redriveStatus?: 'REDRIVABLE' | 'NOT_REDRIVABLE';
  redriveStatusReason?: string;
  redriveCount: number;
  /** Oldest first; ids are positions + 1, each event's previous is the one before. */
  history: StandInEvent[];
}

export interface SfnStandIn extends SignedEndpoint {
  executions: Map<string, StandInExecution>;
  /** Operation names in the order they were called (signature checked). */
  operations: string[];
  /** Puts an execution in place, as if it had run before the test. */
  seed(execution: Omit<StandInExecution, 'executionArn' | 'redriveCount' | 'startDate'> & { startDate?: Date }): StandInExecution;
}

/**
 * Step Functions with scripted outcomes: `onStart` and `onRedrive` append the events a real run
 * would and set the status (by default a started execution succeeds at once).
 */
/** Ends an execution successfully, as its last state would. */
export function succeedExecution(execution: StandInExecution): void {
  execution.history.push({ type: 'ExecutionSucceeded', details: { executionSucceededEventDetails: { output: '{}' } } });
  execution.status = 'SUCCEEDED';
}

export interface SfnScript {
  /** What a started execution does (it may await, e.g. to write what a stage would); default: it succeeds at once. */
  onStart?: (execution: StandInExecution) => void | Promise<void>;
  onRedrive?: (execution: StandInExecution) => void | Promise<void>;
}

export async function startSfnStandIn(script: SfnScript = {}): Promise<SfnStandIn> {
  const executions = new Map<string, StandInExecution>();
  const operations: string[] = [];
  const error = (type: string, message: string) =>
    json(400, { __type: `com.amazonaws.states#${type}`, message }, { 'content-type': 'application/x-amz-json-1.0' });
  const ok = (body: unknown) => json(200, body, { 'content-type': 'application/x-amz-json-1.0' });
  const executionArnOf = (stateMachineArn: string, name: string) => stateMachineArn.replace(':stateMachine:', ':execution:') + `:${name}`;

  const operationsByName: Record<string, (body: Record<string, unknown>) => Answer | Promise<Answer>> = {
    DescribeExecution({ executionArn }) {
      const execution = executions.get(String(executionArn));
      if (!execution) return error('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(executionArn)}'`);
      return ok({
        executionArn: execution.executionArn,
        stateMachineArn: execution.stateMachineArn,
        name: execution.name,
        status: execution.status,
        startDate: seconds(execution.startDate),
        input: execution.input,
        redriveCount: execution.redriveCount,
        ...(execution.redriveStatus ? { redriveStatus: execution.redriveStatus } : {}),
        ...(execution.redriveStatusReason ? { redriveStatusReason: execution.redriveStatusReason } : {}),
      });
    },
    async StartExecution({ stateMachineArn, name, input }) {
      const executionArn = executionArnOf(String(stateMachineArn), String(name));
      if (executions.has(executionArn)) return error('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
      const execution: StandInExecution = {
        executionArn,
        name: String(name),
        stateMachineArn: String(stateMachineArn),
        input: String(input),
        status: 'RUNNING',
        startDate: new Date(),
        redriveCount: 0,
        history: [{ type: 'ExecutionStarted', details: { executionStartedEventDetails: { input } } }],
      };
      executions.set(executionArn, execution);
      if (script.onStart) await script.onStart(execution);
      else succeedExecution(execution);
      return ok({ executionArn, startDate: seconds(execution.startDate) });
    },
    async RedriveExecution({ executionArn }) {
      const execution = executions.get(String(executionArn));
      if (!execution) return error('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(executionArn)}'`);
      if (execution.status === 'RUNNING' || execution.status === 'SUCCEEDED' || execution.redriveStatus !== 'REDRIVABLE') {
        return error('ExecutionNotRedrivable', `Execution is ${execution.status} and ${execution.redriveStatus ?? 'NOT_REDRIVABLE'}`);
      }
      execution.redriveCount += 1;
      execution.status = 'RUNNING';
      execution.history.push({ type: 'ExecutionRedriven', details: { executionRedrivenEventDetails: { redriveCount: execution.redriveCount } } });
      if (script.onRedrive) await script.onRedrive(execution);
      else succeedExecution(execution);
      return ok({ redriveDate: seconds(new Date()) });
    },
    GetExecutionHistory({ executionArn, reverseOrder, maxResults, nextToken }) {
      const execution = executions.get(String(executionArn));
      if (!execution) return error('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(executionArn)}'`);
      const events = execution.history.map((event, index) => ({
        id: index + 1,
        ...(index > 0 ? { previousEventId: index } : {}),
        type: event.type,
        timestamp: seconds(execution.startDate) + index,
        ...event.details,
      }));
      if (reverseOrder) events.reverse();
      const from = nextToken ? Number(nextToken) : 0;
      const size = typeof maxResults === 'number' && maxResults > 0 ? maxResults : 100;
      const page = events.slice(from, from + size);
      return ok({ events: page, ...(from + size < events.length ? { nextToken: String(from + size) } : {}) });
    },
  };

  const endpoint = await startSignedEndpoint({
    service: 'states',
    region: STAND_IN_REGION,
    refusal: (reason) =>
      json(400, { __type: 'com.amazonaws.states#InvalidSignatureException', message: reason }, { 'content-type': 'application/x-amz-json-1.0' }),
    async handle(request: ReceivedRequest) {
      const operation = (request.headers['x-amz-target'] ?? '').replace('AWSStepFunctions.', '');
      operations.push(operation);
      const run = operationsByName[operation];
      if (!run) return error('UnknownOperationException', `the stand-in does not implement ${operation}`);
      return run(JSON.parse(request.body || '{}') as Record<string, unknown>);
    },
  });
  return {
    ...endpoint,
    executions,
    operations,
    seed(seeded) {
      const executionArn = executionArnOf(seeded.stateMachineArn, seeded.name);
      const execution: StandInExecution = { ...seeded, executionArn, redriveCount: 0, startDate: seeded.startDate ?? new Date() };
      executions.set(executionArn, execution);
      return execution;
    },
  };
}

// ── EventBridge Scheduler ─────────────────────────────────────────────────────────────────────

/** A schedule as GetSchedule returns it (dates as epoch seconds, as on the wire). */
export type StandInSchedule = Record<string, unknown> & { Name: string; GroupName: string; State: 'ENABLED' | 'DISABLED' };

export interface SchedulerStandIn extends SignedEndpoint {
  /** By `<group>/<name>`. */
  schedules: Map<string, StandInSchedule>;
  /** `METHOD path` of each call. */
  calls: string[];
}

/**
 * Scheduler's GetSchedule, ListSchedules (paged, `pageSize` per page) and UpdateSchedule. Like the
 * real API, UpdateSchedule replaces the schedule with what it is sent: a field left out is gone,
 * and one without its expression, target (ARN and role) or flexible window is refused.
 */
export async function startSchedulerStandIn(options: { schedules: StandInSchedule[]; pageSize?: number }): Promise<SchedulerStandIn> {
  const schedules = new Map(options.schedules.map((s) => [`${s.GroupName}/${s.Name}`, { ...s }]));
  const calls: string[] = [];
  const pageSize = options.pageSize ?? 100;
  const failure = (status: number, type: string, message: string) => json(status, { Message: message }, { 'x-amzn-errortype': type });

  const endpoint = await startSignedEndpoint({
    service: 'scheduler',
    region: STAND_IN_REGION,
    refusal: (reason) => failure(403, 'InvalidSignatureException', reason),
    async handle(request) {
      const url = new URL(request.url, 'http://localhost');
      calls.push(`${request.method} ${url.pathname}`);
      if (request.method === 'GET' && url.pathname === '/schedules') {
        const group = url.searchParams.get('ScheduleGroup') ?? 'default';
        const inGroup = [...schedules.values()].filter((s) => s.GroupName === group).sort((a, b) => a.Name.localeCompare(b.Name));
        const from = Number(url.searchParams.get('NextToken') ?? 0);
        const page = inGroup
          .slice(from, from + pageSize)
          .map((s) => ({ Name: s.Name, GroupName: s.GroupName, State: s.State, Arn: s.Arn, Target: { Arn: (s.Target as { Arn: string }).Arn } }));
        return json(200, { Schedules: page, ...(from + pageSize < inGroup.length ? { NextToken: String(from + pageSize) } : {}) });
      }
      const name = /^\/schedules\/([^/]+)$/.exec(url.pathname)?.[1];
      if (!name) return failure(404, 'ResourceNotFoundException', `no route ${request.method} ${url.pathname}`);
      if (request.method === 'GET') {
        const schedule = schedules.get(`${url.searchParams.get('groupName') ?? 'default'}/${decodeURIComponent(name)}`);
        return schedule ? json(200, schedule) : failure(404, 'ResourceNotFoundException', `Schedule ${name} does not exist.`);
      }
      if (request.method === 'PUT') {
        const body = JSON.parse(request.body || '{}') as Record<string, unknown> & {
          Target?: { Arn?: string; RoleArn?: string };
          FlexibleTimeWindow?: { Mode?: string };
        };
        const key = `${String(body.GroupName ?? 'default')}/${decodeURIComponent(name)}`;
        const current = schedules.get(key);
        if (!current) return failure(404, 'ResourceNotFoundException', `Schedule ${name} does not exist.`);
        if (!body.ScheduleExpression || !body.Target?.Arn || !body.Target.RoleArn || !body.FlexibleTimeWindow?.Mode) {
          return failure(400, 'ValidationException', 'ScheduleExpression, Target (Arn, RoleArn) and FlexibleTimeWindow are required');
        }
        const { ClientToken: _token, ...fields } = body;
        schedules.set(key, {
          ...fields,
          Name: current.Name,
          GroupName: current.GroupName,
          Arn: current.Arn,
          CreationDate: current.CreationDate,
          LastModificationDate: seconds(new Date()),
          State: (body.State as 'ENABLED' | 'DISABLED' | undefined) ?? 'ENABLED',
        });
        return json(200, { ScheduleArn: current.Arn });
      }
      return failure(405, 'ValidationException', `${request.method} is not supported here`);
    },
  });
  return { ...endpoint, schedules, calls };
}

// ── CloudFormation ────────────────────────────────────────────────────────────────────────────

const xmlText = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** DescribeStacks over the given stacks' outputs; an unknown name is the ValidationError CloudFormation sends. */
export function startCloudFormationStandIn(stacks: Record<string, Record<string, string>>): Promise<SignedEndpoint> {
  const namespace = 'http://cloudformation.amazonaws.com/doc/2010-05-15/';
  return startSignedEndpoint({
    service: 'cloudformation',
    region: STAND_IN_REGION,
    async handle(request) {
      const form = new URLSearchParams(request.body);
      const name = form.get('StackName') ?? '';
      if (form.get('Action') !== 'DescribeStacks')
        return {
          status: 400,
          headers: { 'content-type': 'text/xml' },
          body: `<ErrorResponse xmlns="${namespace}"><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>the stand-in answers DescribeStacks only</Message></Error></ErrorResponse>`,
        };
      const outputs = stacks[name];
      if (!outputs) {
        return {
          status: 400,
          headers: { 'content-type': 'text/xml' },
          body: `<ErrorResponse xmlns="${namespace}"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id ${xmlText(name)} does not exist</Message></Error><RequestId>stand-in</RequestId></ErrorResponse>`,
        };
      }
      const members = Object.entries(outputs)
        .map(([key, value]) => `<member><OutputKey>${xmlText(key)}</OutputKey><OutputValue>${xmlText(value)}</OutputValue></member>`)
        .join('');
      return {
        status: 200,
        headers: { 'content-type': 'text/xml' },
        body:
          `<DescribeStacksResponse xmlns="${namespace}"><DescribeStacksResult><Stacks><member>` +
          `<StackName>${xmlText(name)}</StackName><StackId>arn:aws:cloudformation:${STAND_IN_REGION}:123456789012:stack/${xmlText(name)}/stand-in</StackId>` +
          `<CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>CREATE_COMPLETE</StackStatus><Outputs>${members}</Outputs>` +
          `</member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>stand-in</RequestId></ResponseMetadata></DescribeStacksResponse>`,
      };
    },
  });
}
