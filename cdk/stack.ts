/**
 * The agentflow stack: storage, the stage and serving functions, the GPU Batch side, the state
 * machine that chains them, schedules, and what an operator watches. Environment-agnostic: it
 * synthesizes offline with no credentials and deploys to whichever account `cdk deploy` targets.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import { FunctionUrlAuthType, type FunctionUrl } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { STACK_OUTPUTS } from '#lib/adapters/aws/outputs.ts';
import { LAMBDA_STAGES } from '#lib/pipeline/index.ts';
import { useStateMachine } from './access.ts';
import type { AgentflowContext } from './context.ts';
import { DeployError } from './errors.ts';
import { acknowledgeNagFindings } from './nag.ts';
import { FUNCTIONS, type FunctionSpec } from './functions.ts';
import { AgentflowFunctions } from './constructs/functions.ts';
import { GpuBatch } from './constructs/gpuBatch.ts';
import { Observability } from './constructs/observability.ts';
import { Schedules } from './constructs/schedules.ts';
import { Storage } from './constructs/storage.ts';
import { Workflow } from './constructs/workflow.ts';

export interface AgentflowStackProps extends StackProps {
  settings: AgentflowContext;
  /** The repository root: handlers, lock file, Dockerfile context. */
  projectRoot: string;
  /** The entry file of a function; default `functions/handlers/<handler>.ts` under `projectRoot`. */
  entryOf?: (spec: FunctionSpec) => string;
}

export class AgentflowStack extends Stack {
  readonly storage: Storage;
  readonly functions: AgentflowFunctions;
  readonly batch: GpuBatch;
  readonly workflow: Workflow;
  readonly schedules: Schedules;
  readonly urls: { infer: FunctionUrl; feedback: FunctionUrl };
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: AgentflowStackProps) {
    super(scope, id, { description: 'agentflow: multi-task model adaptation, RL tuning and serving (Step Functions, Batch GPU, Lambda)', ...props });
    const { settings } = props;

    this.storage = new Storage(this, 'Storage', { scratchExpirationDays: settings.scratchExpirationDays, existing: settings.existing });
    this.functions = new AgentflowFunctions(this, 'Functions', { storage: this.storage, projectRoot: props.projectRoot, entryOf: props.entryOf });
    this.batch = new GpuBatch(this, 'Batch', { storage: this.storage, context: settings, projectRoot: props.projectRoot, logBucketPrefix: '' });
    this.workflow = new Workflow(this, 'Workflow', {
      functionOf: (handler) => this.functions.get(handler),
      jobDefinitionOf: (job) => {
        const definition = this.batch.jobDefinitions.get(job);
        if (!definition) throw new DeployError(`no job definition for job "${job}"`, { code: 'WIRING_INCOMPLETE', context: { job } });
        return definition;
      },
      queue: this.batch.queue,
    });
    const stateMachine = this.workflow.stateMachine;

    for (const spec of FUNCTIONS.filter((f) => f.startsRuns)) useStateMachine(this.functions.get(spec.handler), stateMachine);
    const urlOf = (handler: 'infer' | 'feedback') => {
      if (!FUNCTIONS.some((f) => f.handler === handler && f.url)) {
        throw new DeployError(`FUNCTIONS must mark "${handler}" as served by a Function URL`, { code: 'WIRING_INCOMPLETE', context: { handler } });
      }
      // IAM auth: callers sign requests (SigV4) with a principal allowed lambda:InvokeFunctionUrl.
      return this.functions.get(handler).addFunctionUrl({ authType: FunctionUrlAuthType.AWS_IAM });
    };
    this.urls = { infer: urlOf('infer'), feedback: urlOf('feedback') };

    this.schedules = new Schedules(this, 'Schedules', {
      stateMachine,
      schedules: settings.schedules,
      monitor: this.functions.get('monitor'),
      monitorRate: settings.monitorRate,
    });
    this.observability = new Observability(this, 'Observability', {
      stateMachine,
      stageFunctions: new Map(LAMBDA_STAGES.map((stage) => [stage.state, this.functions.get(stage.handler)])),
      infer: this.functions.get('infer'),
      feedback: this.functions.get('feedback'),
      inferP99AlarmMs: settings.inferP99AlarmMs,
      gpuQueue: this.batch.queue,
      maxGpuWaitMinutes: settings.maxGpuWaitMinutes,
    });

    const output = (key: string, value: string, description: string) => new CfnOutput(this, key, { value, description });
    output(STACK_OUTPUTS.bucket, this.storage.bucket.bucketName, 'artifact bucket (datasets, features, runs, models)');
    output(STACK_OUTPUTS.registryTable, this.storage.registryTable.table.tableName, 'registry table (projects, versions, aliases, runs)');
    output(STACK_OUTPUTS.rewardTable, this.storage.rewardTable.table.tableName, 'reward table (trial rewards, policy, feedback, arm counters)');
    output(STACK_OUTPUTS.stateMachineArn, stateMachine.stateMachineArn, 'the training workflow; agentflow run --aws starts executions of it');
    output(STACK_OUTPUTS.jobQueueArn, this.batch.queue.jobQueueArn, 'GPU job queue');
    output(STACK_OUTPUTS.inferUrl, this.urls.infer.url, 'inference Function URL (AWS_IAM auth)');
    output(STACK_OUTPUTS.feedbackUrl, this.urls.feedback.url, 'feedback Function URL (AWS_IAM auth)');
    output(
      STACK_OUTPUTS.inferFunctionArn,
      this.functions.get('infer').functionArn,
      'the function behind InferUrl: callers need lambda:InvokeFunctionUrl and lambda:InvokeFunction on it',
    );
    output(
      STACK_OUTPUTS.feedbackFunctionArn,
      this.functions.get('feedback').functionArn,
      'the function behind FeedbackUrl: callers need lambda:InvokeFunctionUrl and lambda:InvokeFunction on it',
    );
    output(
      STACK_OUTPUTS.scheduleGroup,
      this.schedules.group.scheduleGroupName,
      'EventBridge Scheduler group of the retraining and monitor schedules; agentflow schedule show|enable|disable --aws',
    );
    acknowledgeNagFindings(this);
  }
}
