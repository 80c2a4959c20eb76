/**
 * cdk-nag (AwsSolutions) acknowledgments: each names the exact finding (rule and, for wildcards,
 * the resource or action), sits on the construct it concerns, and says why it is accepted.
 * Anything else cdk-nag finds fails `cdk synth` (and the CDK test).
 */
import { Validations, type CfnResource, type Stack } from 'aws-cdk-lib';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IConstruct } from 'constructs';
import { DeployError } from './errors.ts';
import { FUNCTIONS } from './functions.ts';
import type { AgentflowStack } from './stack.ts';

/** `<LogicalId.Arn>` as cdk-nag renders a `Fn::GetAtt` in a finding id. */
function arnToken(stack: Stack, resource: IConstruct): string {
  return `<${stack.resolve(stack.getLogicalId(resource.node.defaultChild as CfnResource)) as string}.Arn>`;
}

/** Keys of the artifact bucket as cdk-nag names them: a GetAtt of the created bucket, or the adopted bucket's ARN. */
function bucketKeysToken(stack: Stack, bucket: IBucket, keys = '*'): string {
  if (bucket.node.defaultChild) return `${arnToken(stack, bucket)}/${keys}`;
  return `arn:<AWS::Partition>:s3:::${bucket.bucketName}/${keys}`;
}

const XRAY = 'X-Ray tracing (tracing: ACTIVE) needs xray:PutTraceSegments/PutTelemetryRecords, which support no resource-level permissions.';

export function acknowledgeNagFindings(stack: AgentflowStack): void {
  const objects = `Resource::${bucketKeysToken(stack, stack.storage.bucket)}`;
  const objectsReason =
    'Objects of the artifact bucket only: the stages address datasets/, features/<digest>/, runs/<runId>/ and models/<project>/<version>/ by ids known at run time, so no narrower static prefix exists.';

  for (const fn of stack.functions.byHandler.values()) {
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Node.js 22 is the runtime the project supports and tests (package.json engines, the GPU job image, the onnxruntime-node binaries shipped with it); moving to a newer runtime is a deliberate upgrade, not a drive-by.',
    });
    if (!fn.role)
      throw new DeployError(`function ${fn.node.path} has no role to acknowledge findings on`, { code: 'WIRING_INCOMPLETE', context: { path: fn.node.path } });
    Validations.of(fn.role).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason: XRAY }, { id: `AwsSolutions-IAM5[${objects}]`, reason: objectsReason });
  }

  // A reader's writes scoped to one kind of key (FunctionSpec.access.bucketWrites): the wildcard is the narrowing.
  for (const spec of FUNCTIONS) {
    for (const pattern of spec.access.bucketWrites ?? []) {
      Validations.of(stack.functions.get(spec.handler).role!).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${bucketKeysToken(stack, stack.storage.bucket, pattern)}]`,
        reason: `PutObject only on keys matching ${pattern}, whose project, version and hour parts are known at run time; every other key stays read-only for ${spec.handler}.`,
      });
    }
  }

  // With agentflow:existingBucket the kept artifact bucket logs where it already did, and cdk-nag no
  // longer sees this bucket as a log destination.
  Validations.of(stack.storage.logBucket).acknowledge({
    id: 'AwsSolutions-S1',
    reason:
      'The access-log bucket is itself the destination of the artifact bucket access logs and VPC flow logs; logging its own access would log the log deliveries.',
  });

  Validations.of(stack.batch.node.findChild('JobRole')).acknowledge({ id: `AwsSolutions-IAM5[${objects}]`, reason: objectsReason });
  for (const definition of stack.batch.jobDefinitions.values()) {
    Validations.of(definition.container.executionRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The ECS execution role pulls the job image: ecr:GetAuthorizationToken supports no resource-level permissions (the image pull actions are scoped to the asset repository).',
    });
  }
  Validations.of(stack.batch.node.findChild('GpuCompute')).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]',
    reason:
      'The AWS-maintained policy for the ECS agent on Batch-managed GPU instances (register with the cluster, pull images, ship logs); AWS updates it with the agent.',
  });

  const stateMachineRole = stack.workflow.stateMachine.role;
  Validations.of(stateMachineRole).acknowledge(
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: `${XRAY} CloudWatch Logs delivery (logs:CreateLogDelivery & co.) and batch:DescribeJobs (used by .sync) also support no resource-level permissions.`,
    },
    {
      id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*]',
      reason:
        'batch:TerminateJob (a .sync task stops its job when the execution is stopped or the state times out) acts on job ARNs, which are job/<uuid> and unknown before submission.',
    },
  );

  const monitor = stack.functions.get('monitor');
  Validations.of(stack.schedules.node.findChild('InvokeMonitorRole')).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${arnToken(stack, monitor)}:*]`,
    reason: "The scheduler's Lambda target grants invoke on the monitor function and its versions/aliases (<arn>:*); it is one function, no other.",
  });
}
