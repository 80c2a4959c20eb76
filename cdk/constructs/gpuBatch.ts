/**
 * The GPU side of the workflow: a managed EC2 compute environment (GPU instances, Spot by
 * default, scaled to zero when idle), one job queue, and a job definition per Batch stage of
 * `STAGES`, all running the image built from `cdk/Dockerfile`.
 */
import { Duration, IgnoreMode, Size, Stack } from 'aws-cdk-lib';
import {
  Action,
  AllocationStrategy,
  EcsEc2ContainerDefinition,
  EcsJobDefinition,
  EcsMachineImageType,
  JobQueue,
  JobStateTimeLimitActionsAction,
  JobStateTimeLimitActionsState,
  type JobStateTimeLimitActionsReason,
  ManagedEc2EcsComputeEnvironment,
  Reason,
  RetryStrategy,
} from 'aws-cdk-lib/aws-batch';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  InstanceType,
  SubnetType,
  Vpc,
  type IVpc,
  type SubnetSelection,
} from 'aws-cdk-lib/aws-ec2';
import { Platform, DockerImageAsset } from 'aws-cdk-lib/aws-ecr-assets';
import { ContainerImage, LogDriver } from 'aws-cdk-lib/aws-ecs';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { BATCH_STAGES, type BatchJobName } from '#lib/pipeline/index.ts';
import { GPU_WAIT } from '#lib/pipeline/gpuWait.ts';
import { containerConsumer, useBucket, useTable } from '../access.ts';
import type { AgentflowContext } from '../context.ts';
import { jobEntry } from '../functions.ts';
import type { Storage } from './storage.ts';

/** Container size per job; fits a g5.xlarge / g4dn.xlarge (4 vCPU, 16 GiB, ~15 GiB left after the ECS agent). */
export const JOB_RESOURCES: Record<BatchJobName, { vcpus: number; memoryMiB: number }> = {
  embed: { vcpus: 4, memoryMiB: 14_336 },
  trial: { vcpus: 4, memoryMiB: 14_336 },
};

/** Attempts per job: the first run plus retries after Spot reclaims (any other failure exits at once). */
export const JOB_ATTEMPTS = 3;

/**
 * What the image build may see: only what `npm ci` and the jobs need. CDK hashes exactly these
 * files at synth (no Docker needed then), so an unrelated edit does not rebuild the image.
 */
export const IMAGE_CONTEXT_EXCLUDE = [
  '*',
  '!package.json',
  '!package-lock.json',
  '!tsconfig.json',
  '!lib',
  '!functions',
  '!cdk',
  'cdk/*',
  '!cdk/Dockerfile',
  '**/*.test.ts',
  '**/node_modules',
];

export interface GpuBatchProps {
  storage: Storage;
  context: AgentflowContext;
  projectRoot: string;
  logBucketPrefix: string;
}

export class GpuBatch extends Construct {
  readonly vpc: IVpc;
  readonly queue: JobQueue;
  readonly jobDefinitions: ReadonlyMap<BatchJobName, EcsJobDefinition>;
  readonly image: DockerImageAsset;

  constructor(scope: Construct, id: string, props: GpuBatchProps) {
    super(scope, id);
    const { context, storage } = props;
    let subnets: SubnetSelection;
    if (context.vpc) {
      this.vpc = Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: context.vpc.vpcId,
        availabilityZones: context.vpc.availabilityZones,
        publicSubnetIds: context.vpc.subnetIds,
      });
      subnets = { subnets: this.vpc.publicSubnets };
    } else {
      // Public subnets and no NAT gateway (a NAT costs more per month than many trials): the GPU
      // instances get public addresses, accept no inbound traffic, and reach S3 through an endpoint.
      const vpc = new Vpc(this, 'Vpc', {
        maxAzs: 3,
        natGateways: 0,
        subnetConfiguration: [{ name: 'gpu', subnetType: SubnetType.PUBLIC, cidrMask: 20 }],
        gatewayEndpoints: { S3: { service: GatewayVpcEndpointAwsService.S3 }, DynamoDB: { service: GatewayVpcEndpointAwsService.DYNAMODB } },
      });
      vpc.addFlowLog('FlowLogs', {
        destination: FlowLogDestination.toS3(storage.logBucket, `${props.logBucketPrefix}vpc-flow-logs/`),
        trafficType: FlowLogTrafficType.REJECT,
      });
      this.vpc = vpc;
      subnets = { subnetType: SubnetType.PUBLIC };
    }

    const compute = new ManagedEc2EcsComputeEnvironment(this, 'GpuCompute', {
      vpc: this.vpc,
      vpcSubnets: subnets,
      instanceTypes: context.gpuInstanceTypes.map((type) => new InstanceType(type)),
      useOptimalInstanceClasses: false,
      // The NVIDIA-enabled ECS AMI: drivers and the container toolkit the CUDA image needs.
      images: [{ imageType: EcsMachineImageType.ECS_AL2023_NVIDIA }],
      spot: context.spot,
      allocationStrategy: context.spot ? AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED : AllocationStrategy.BEST_FIT_PROGRESSIVE,
      // Scale to zero: no GPU instance runs (or bills) while no job is queued.
      minvCpus: 0,
      maxvCpus: context.maxvCpus,
      replaceComputeEnvironment: false,
      updateToLatestImageVersion: true,
    });
    this.queue = new JobQueue(this, 'GpuQueue', {
      computeEnvironments: [{ computeEnvironment: compute, order: 1 }],
      // A new account's GPU quota is usually 0: jobs would sit RUNNABLE until the Batch stages'
      // task timeouts. Batch cancels a job at the head of the queue that waited this long for any of
      // these reasons; the run then fails with the fix (lib/) and the GpuWaitExceeded alarm fires.
      jobStateTimeLimitActions: GPU_WAIT.reasons.map((reason) => ({
        action: JobStateTimeLimitActionsAction.CANCEL,
        state: JobStateTimeLimitActionsState.RUNNABLE,
        maxTime: Duration.minutes(context.maxGpuWaitMinutes),
        // GPU_WAIT.reasons are the enum's values, spelled as Batch spells them.
        reason: reason as JobStateTimeLimitActionsReason,
      })),
    });

    this.image = new DockerImageAsset(this, 'JobImage', {
      directory: props.projectRoot,
      file: 'cdk/Dockerfile',
      exclude: IMAGE_CONTEXT_EXCLUDE,
      ignoreMode: IgnoreMode.DOCKER,
      platform: Platform.LINUX_AMD64,
    });
    const image = ContainerImage.fromDockerImageAsset(this.image);
    const logGroup = new LogGroup(this, 'JobLogs', { retention: RetentionDays.ONE_MONTH });
    const jobRole = new Role(this, 'JobRole', {
      assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'agentflow GPU jobs: read datasets and features, write shards and trial results',
    });
    const config = containerConsumer(jobRole);
    useBucket(config, storage.bucket, 'readWrite');
    useTable(config, 'registryTable', storage.registryTable, 'read');
    useTable(config, 'rewardTable', storage.rewardTable, 'read');
    // Lambda sets AWS_REGION itself; a Batch container gets only what the job definition gives it.
    config.addEnvironment('AWS_REGION', Stack.of(this).region);

    const jobDefinitions = new Map<BatchJobName, EcsJobDefinition>();
    for (const stage of BATCH_STAGES) {
      const resources = JOB_RESOURCES[stage.job];
      const definition = new EcsJobDefinition(this, `${stage.job}Job`, {
        container: new EcsEc2ContainerDefinition(this, `${stage.job}Container`, {
          image,
          cpu: resources.vcpus,
          memory: Size.mebibytes(resources.memoryMiB),
          gpu: stage.gpu ? 1 : undefined,
          command: ['node', '--import', 'tsx', jobEntry(stage.job)],
          environment: { ...config.environment },
          jobRole,
          logging: LogDriver.awsLogs({ logGroup, streamPrefix: stage.job }),
        }),
        // Batch's own limit per attempt; the state's TimeoutSeconds (same table) bounds queueing too.
        timeout: Duration.seconds(stage.timeoutSeconds),
        retryAttempts: JOB_ATTEMPTS,
        retryStrategies: [
          // A Spot reclaim ("Host EC2 (instance i-…) terminated.") is not the job's fault: run it again.
          RetryStrategy.of(Action.RETRY, Reason.SPOT_INSTANCE_RECLAIMED),
          // Anything else (a NaN guard, a bad input) would fail again at the same cost.
          RetryStrategy.of(Action.EXIT, Reason.custom({ onExitCode: '*' })),
        ],
        propagateTags: true,
      });
      jobDefinitions.set(stage.job, definition);
    }
    this.jobDefinitions = jobDefinitions;
  }
}
