/**
 * IAM conformance: the local stand-ins allow everything, so every SDK call the local flows make is
 * recorded per principal (each Lambda function, each Batch job, the CLI's caller) and evaluated
 * with @cloud-copilot/iam-simulate against that principal's policies in the synthesized stack.
 * A call the deployed stack would refuse fails here, naming the principal, the call, the IAM
 * action, the resource and the grant that would allow it.
 *
 * The flows run once, on the embedded local AWS with the real handlers, jobs and state machine
 * definition; the evaluation runs over the recorded calls. To check a new path, add a flow to FLOWS.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionArnOf, followExecution, retrainStarter, startAwsRun } from '#lib/adapters/aws/index.ts';
import { summarizeRun } from '#lib/adapters/cli/summary.ts';
import { CALLER_PRINCIPAL, configToEnv, type RecordedSdkCall } from '#lib/adapters/config/index.ts';
import { moveProduction, rollbackProduction } from '#lib/pipeline/promote/promote.ts';
import { localJobCommands, localStageHandlers, resumePipelineLocally } from '#lib/adapters/local/index.ts';
import { createServeContext, handleFeedbackEvent, handleInferEvent, runMonitor, type MonitorReport } from '#lib/serve/index.ts';
import { runLocalWorkflow, type LocalJobCommand, type LocalWorkflowResult } from '#lib/adapters/local/workflow.ts';
import { type RunContext } from '#lib/pipeline/index.ts';
import {
  decide,
  denialMessages,
  grantAllows,
  grantsOf,
  nameMap,
  neededRequests,
  withoutGrant,
  type Decision,
  type NeededRequest,
} from './helpers/iamEvaluate.ts';
import { openRecordingSession, recordedSfn, recordStateMachineTasks, sfnError, type RecordingSession } from './helpers/iamRecording.ts';
import {
  STACK_NAME,
  synthesizeStackPolicies,
  TEST_ACCOUNT,
  TEST_PARTITION,
  TEST_REGION,
  type PolicyDocument,
  type Principal,
  type StackPolicies,
} from './helpers/iamTemplate.ts';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PROJECT = 'iam-penguins';
const RUN_ID = 'run-iam-1';
const CALLER_POLICY = join(REPO_ROOT, 'docs', 'caller-policy.json');
const quiet = { info() {}, warn() {}, error() {} };
const jobEnv = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', AGENTFLOW_INTRA_OP_THREADS: '1' };

/** What the flows share: the recording session, the deployed names, and what earlier flows left. */
interface FlowContext {
  recording: RecordingSession;
  stack: StackPolicies;
  specPath: string;
  jobOutput: string[];
  /** Set by the serving flow: drifted traffic was served at this time. */
  servedAt?: number;
  /** Set by the monitor flow: the retraining execution it started. */
  retrain?: RunContext;
}

interface Flow {
  name: string;
  run(context: FlowContext): Promise<void>;
}

/** Executes the real definition locally, as Step Functions would for an execution with this input. */
async function executeAsStepFunctions(
  context: FlowContext,
  input: RunContext,
  jobs: Partial<Record<'embed' | 'trial', LocalJobCommand>> = {},
): Promise<LocalWorkflowResult> {
  const { session } = context.recording;
  return runLocalWorkflow({
    input,
    handlers: localStageHandlers(session, { trigger: 'iam-test' }),
    jobs: { ...localJobCommands(), ...jobs },
    env: { ...configToEnv(session.config), ...jobEnv },
    onEvent: recordStateMachineTasks(context.recording, context.stack.resources.substitutions),
    onJobOutput: (line) => context.jobOutput.push(`${line.jobName} ${line.stream}: ${line.line}`),
    timeoutMs: 400_000,
    cwd: REPO_ROOT,
  });
}

const expectStatus = (context: FlowContext, result: LocalWorkflowResult, status: LocalWorkflowResult['status']) => {
  if (result.status !== status)
    throw new Error(`expected ${status}, got ${result.status}: ${result.error}: ${result.cause}\n${context.jobOutput.slice(-20).join('\n')}`);
};

/** A Function URL event for the serving handlers. */
const urlEvent = (path: string, body: unknown) => ({
  rawPath: path,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
  isBase64Encoded: false,
  requestContext: { http: { method: 'POST' } },
});

/** Penguins far outside the training data (long bills, long flippers): drift the monitor must see. */
const driftedPenguin = (i: number) => ({ island: 'Dream', bill_length_mm: 70 + (i % 7), bill_depth_mm: 25 + (i % 3), flipper_length_mm: 260 + (i % 11) });

const FLOWS: Flow[] = [
  {
    // `agentflow run --aws`: the caller uploads and starts; the execution (run here by the local
    // runtime) fails when the Embed container is killed, and goes through RecordFailure.
    name: 'the caller starts a run that fails in Embed, follows it and summarizes it',
    async run(context) {
      const { recording, stack } = context;
      const executionArn = executionArnOf(stack.resources.stateMachineArn, RUN_ID);
      // The history answer reads how the local run ended, once it has.
      const ended: { result?: LocalWorkflowResult } = {};
      const sfn = recordedSfn(recording, CALLER_PRINCIPAL, (operation) => {
        if (operation === 'DescribeExecution') return sfnError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
        if (operation === 'StartExecution') return { body: { executionArn, startDate: Date.now() / 1000 } };
        // GetExecutionHistory: the execution's end, as the local run ended.
        const at = Date.now() / 1000;
        return {
          body: {
            events: [
              {
                id: 2,
                previousEventId: 1,
                type: 'ExecutionFailed',
                timestamp: at,
                executionFailedEventDetails: { error: ended.result?.error, cause: ended.result?.cause },
              },
              { id: 1, type: 'ExecutionStarted', timestamp: at, executionStartedEventDetails: { input: '{}' } },
            ],
          },
        };
      });
      const started = await startAwsRun({
        specPath: context.specPath,
        sfn,
        store: recording.session.deps.store,
        stateMachineArn: stack.resources.stateMachineArn,
        runId: RUN_ID,
      });
      const killed: LocalJobCommand = {
        command: [process.execPath, '-e', "console.error('OutOfMemoryError: Container killed due to memory usage'); process.exit(137)"],
      };
      const result = await executeAsStepFunctions(context, started.input, { embed: killed });
      ended.result = result;
      expectStatus(context, result, 'FAILED');
      const followed = await followExecution({ sfn, executionArn: started.executionArn, pollIntervalMs: 0 });
      expect(followed.status).toBe('FAILED');
      const summary = await summarizeRun(recording.session.deps, PROJECT, RUN_ID);
      expect(summary.text).toContain(RUN_ID);
      sfn.destroy();
    },
  },
  {
    name: 'the failed run is resumed and ends with a promoted model',
    async run(context) {
      const result = await resumePipelineLocally(context.recording.session, {
        project: PROJECT,
        runId: RUN_ID,
        jobEnv,
        onEvent: recordStateMachineTasks(context.recording, context.stack.resources.substitutions),
        onJobOutput: (line) => context.jobOutput.push(line.line),
        timeoutMs: 400_000,
      });
      expectStatus(context, result, 'SUCCEEDED');
      expect(await context.recording.session.deps.registry.getAlias(PROJECT, 'production')).toMatchObject({ version: 1 });
    },
  },
  {
    name: 'the infer function serves drifted traffic and samples it; the feedback function takes a reward',
    async run(context) {
      const { session } = context.recording;
      const serve = (principal: 'infer' | 'feedback', drift: boolean) => {
        const deps = session.depsFor(principal);
        return createServeContext(deps, { drift: drift ? { sampleRate: 1, batchRecords: 100 } : false, metricsSink: () => {}, logger: quiet });
      };
      const infer = serve('infer', true);
      context.servedAt = Date.now();
      let predictionId = '';
      for (let request = 0; request < 3; request += 1) {
        const records = Array.from({ length: 100 }, (_, i) => driftedPenguin(request * 100 + i));
        const response = await handleInferEvent(urlEvent('/infer', { project: PROJECT, records }), infer);
        expect(response.statusCode, response.body).toBe(200);
        predictionId = (JSON.parse(response.body) as { predictions: { predictionId: string }[] }).predictions[0].predictionId;
      }
      await infer.close();
      const feedback = serve('feedback', false);
      const answered = await handleFeedbackEvent(urlEvent('/feedback', { project: PROJECT, predictionId, reward: 1 }), feedback);
      expect(answered.statusCode, answered.body).toBe(200);
      await feedback.close();
    },
  },
  {
    name: 'the monitor sees the drift, writes the reference sample and starts a retraining execution',
    async run(context) {
      const { recording, stack } = context;
      const deps = recording.session.depsFor('monitor');
      const sfn = recordedSfn(recording, 'monitor', (operation, body) => {
        if (operation !== 'StartExecution') throw new Error(`the monitor made an unexpected Step Functions call ${operation}`);
        context.retrain = JSON.parse(String(body.input)) as RunContext;
        return { body: { executionArn: executionArnOf(stack.resources.stateMachineArn, String(body.name)), startDate: Date.now() / 1000 } };
      });
      const report: MonitorReport = await runMonitor(deps, {
        startRun: retrainStarter({ stateMachineArn: stack.resources.stateMachineArn, sfn }),
        now: new Date((context.servedAt ?? Date.now()) + 60_000),
        projects: [PROJECT],
        logger: quiet,
        metricsSink: () => {},
      });
      sfn.destroy();
      expect(await deps.store.exists(`models/${PROJECT}/1/reference.json`)).toBe(true);
      expect(report.projects[0].retrain, JSON.stringify(report.projects[0])).toMatchObject({ started: true });
      expect(context.retrain).toBeDefined();
    },
  },
  {
    name: 'the retraining execution registers version 2, which the "always" deploy policy promotes',
    async run(context) {
      const { runId, project, specUri } = context.retrain!;
      const result = await executeAsStepFunctions(context, { runId, project, specUri });
      expectStatus(context, result, 'SUCCEEDED');
    },
  },
  {
    name: 'the caller promotes version 1 back by hand, then rolls back to version 2',
    async run(context) {
      const { deps } = context.recording.session;
      const current = await deps.registry.getAlias(PROJECT, 'production');
      expect(current).toMatchObject({ version: 2 });
      await moveProduction(deps, PROJECT, { toVersion: 1, expectedRevision: current?.revision });
      const rolled = await rollbackProduction(deps, PROJECT);
      expect(rolled).toMatchObject({ version: 2, previous: 1 });
    },
  },
];

let recording: RecordingSession;
let stack: StackPolicies;
let calls: RecordedSdkCall[];
let requests: Map<string, NeededRequest[]>;
/** The caller's policy from docs/caller-policy.json, when the file exists. */
let callerPolicy: Principal | undefined;

/**
 * docs/caller-policy.json with its `${Placeholders}` (Fn::Sub syntax: `${AWS::Partition}`,
 * `${BucketName}`, …) filled with the synthesized stack's names; a placeholder this does not know
 * fails here by name rather than leaving a policy that matches nothing.
 */
function readCallerPolicy(resources: StackPolicies['resources']): Principal | undefined {
  if (!existsSync(CALLER_POLICY)) return undefined;
  // The stack's outputs first (the caller policy is filled from them in AWS), then what outputs do not carry.
  const values: Record<string, string> = {
    ...resources.outputs,
    'AWS::Partition': TEST_PARTITION,
    'AWS::Region': TEST_REGION,
    'AWS::AccountId': TEST_ACCOUNT,
    StackName: STACK_NAME,
    BucketName: resources.bucket,
    RegistryTableName: resources.registryTable,
    RewardTableName: resources.rewardTable,
    StateMachineName: resources.stateMachineArn.split(':')[6],
    InferFunctionArn: resources.functionArns.infer,
    FeedbackFunctionArn: resources.functionArns.feedback,
  };
  const unknown = new Set<string>();
  const text = readFileSync(CALLER_POLICY, 'utf8').replace(/\$\{([A-Za-z:]+)\}/g, (whole, name: string) => values[name] ?? (unknown.add(name), whole));
  if (unknown.size)
    throw new Error(`${CALLER_POLICY} has placeholders the IAM test cannot fill: ${[...unknown].join(', ')}; add them to readCallerPolicy in test/iam.test.ts`);
  const policy = JSON.parse(text) as PolicyDocument;
  return {
    name: CALLER_PRINCIPAL,
    roleArn: `arn:${TEST_PARTITION}:iam::${TEST_ACCOUNT}:user/agentflow-caller`,
    policies: [{ name: 'docs/caller-policy.json', policy }],
    grantsFrom: 'docs/caller-policy.json',
  };
}

/** The principal a recorded call is evaluated as: a stack role, or the caller's policy file. */
function principalOf(name: string): Principal | undefined {
  return name === CALLER_PRINCIPAL ? callerPolicy : stack.principals.get(name);
}

beforeAll(async () => {
  stack = synthesizeStackPolicies({ projectRoot: REPO_ROOT });
  callerPolicy = readCallerPolicy(stack.resources);
  recording = await openRecordingSession();
  const spec = JSON.parse(readFileSync(join(REPO_ROOT, 'examples', 'penguins', 'spec.json'), 'utf8')) as Record<string, any>;
  const specPath = join(recording.folder, 'spec.json');
  await writeFile(
    specPath,
    JSON.stringify({
      ...spec,
      project: PROJECT,
      datasets: { train: join(REPO_ROOT, 'examples', 'penguins', 'penguins.jsonl') },
      tasks: (spec.tasks as Record<string, unknown>[]).map(({ floor: _floor, ...task }) => task),
      training: { ...spec.training, epochs: 2, earlyStoppingPatience: 2 },
      tuning: { strategy: 'pgpe', generations: 1, population: 2, maxConcurrency: 2 },
      deploy: { policy: 'always' },
      monitor: { windowHours: 1, psiThreshold: 0.2 },
    }),
  );
  const context: FlowContext = { recording, stack, specPath, jobOutput: [] };
  for (const flow of FLOWS) {
    try {
      await flow.run(context);
    } catch (error) {
      throw new Error(`flow "${flow.name}" failed: ${(error as Error).message}`, { cause: error });
    }
  }
  calls = recording.calls();
  requests = await neededRequests(calls, nameMap(recording.session.config, stack.resources));
  const distinct = [...requests.values()].reduce((sum, r) => sum + r.length, 0);
  process.stderr.write(`iam.test: ${calls.length} recorded calls by ${requests.size} principals need ${distinct} distinct IAM requests\n`);
}, 900_000);

afterAll(async () => {
  await recording?.close();
});

describe('IAM conformance of the local flows against the synthesized stack', () => {
  it('recorded calls from every function, job and the caller', () => {
    const principals = new Set(calls.map((c) => c.principal));
    const expected = [
      'prepare',
      'plan',
      'reward',
      'export',
      'promote',
      'recordFailure',
      'infer',
      'feedback',
      'monitor',
      'embed',
      'trial',
      'stateMachine',
      CALLER_PRINCIPAL,
    ];
    expect([...principals].sort()).toEqual(expected.sort());
  });

  it('allows every call each function, job and the state machine makes', async () => {
    const denials: Parameters<typeof denialMessages>[0] = [];
    let checked = 0;
    for (const [name, needed] of requests) {
      if (name === CALLER_PRINCIPAL) continue;
      const principal = stack.principals.get(name);
      if (!principal) throw new Error(`calls were recorded as ${name}, which is no function or job of the stack`);
      for (const request of needed) {
        checked += 1;
        const decision = await decide(request, principal, stack.resources);
        if (decision !== 'Allowed') denials.push({ principal, request, decision });
      }
    }
    const denied = denialMessages(denials);
    expect(denied, denied.join('\n')).toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });

  it('allows every call the caller makes under docs/caller-policy.json (when the file exists)', async () => {
    const needed = requests.get(CALLER_PRINCIPAL) ?? [];
    expect(needed.length).toBeGreaterThan(0);
    if (!callerPolicy) {
      process.stderr.write(
        `iam.test: ${CALLER_POLICY} does not exist; the caller's ${needed.length} distinct requests are not checked:\n${needed.map((r) => `  ${r.action} ${r.resource}`).join('\n')}\n`,
      );
      return;
    }
    const denials: Parameters<typeof denialMessages>[0] = [];
    for (const request of needed) {
      const decision = await decide(request, callerPolicy, stack.resources);
      if (decision !== 'Allowed') denials.push({ principal: callerPolicy, request, decision });
    }
    const denied = denialMessages(denials);
    expect(denied, denied.join('\n')).toEqual([]);
  });

  it('denies at least one recorded call when any one grant a call uses is removed, and reports the grants no call uses', async () => {
    const survivors: string[] = [];
    /** Unused actions by principal and statement, so the report reads one line per statement. */
    const unused = new Map<string, string[]>();
    let needed = 0;
    for (const [name, principalRequests] of requests) {
      const principal = principalOf(name);
      if (!principal) continue;
      for (const grant of grantsOf(principal.policies)) {
        const users: NeededRequest[] = [];
        for (const request of principalRequests) if (await grantAllows(grant, principal, request)) users.push(request);
        if (users.length === 0) {
          const key = `${name}: on ${grant.resources.join(', ')}`;
          unused.set(key, [...(unused.get(key) ?? []), grant.action]);
          continue;
        }
        needed += 1;
        const without = { ...principal, policies: withoutGrant(principal.policies, grant) };
        const decisions: Decision[] = [];
        for (const request of users) decisions.push(await decide(request, without, stack.resources));
        if (decisions.every((d) => d === 'Allowed'))
          survivors.push(`${name}: without ${grant.action} on ${grant.resources.join(', ')} every call it allowed is still allowed (a redundant grant)`);
      }
    }
    const report = [...unused].map(([key, actions]) => `  ${key.replace(': on ', `: ${actions.join(', ')} on `)}`);
    process.stderr.write(`iam.test: ${needed} grants are used by recorded calls; grants no recorded call uses:\n${report.join('\n')}\n`);
    expect(survivors, survivors.join('\n')).toEqual([]);
    expect(needed).toBeGreaterThan(20);
  });

  it.each([
    ['infer', 's3:PutObject', `models/${PROJECT}/1/model.onnx`],
    ['infer', 's3:PutObject', `runs/${RUN_ID}/manifest.json`],
    ['trial', 'dynamodb:PutItem', 'registry'],
    ['feedback', 's3:PutObject', `monitor/${PROJECT}/1/sample.arrow`],
  ])('denies %s %s on %s, which it must not do', async (name, action, target) => {
    const principal = stack.principals.get(name)!;
    const resource =
      target === 'registry'
        ? `arn:${TEST_PARTITION}:dynamodb:${TEST_REGION}:${TEST_ACCOUNT}:table/${stack.resources.registryTable}`
        : `arn:${TEST_PARTITION}:s3:::${stack.resources.bucket}/${target}`;
    expect(await decide({ action, resource, context: {} }, principal, stack.resources)).toBe('ImplicitlyDenied');
  });
});
