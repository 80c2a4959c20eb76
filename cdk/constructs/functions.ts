/**
 * One NodejsFunction per row of `FUNCTIONS`: Node.js 22, bundled locally with esbuild, X-Ray
 * tracing, environment and IAM from the access helpers only.
 */
import { join } from 'node:path';
import { Duration, Size } from 'aws-cdk-lib';
import { Architecture, Runtime, Tracing, type IFunction } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { bundlingFor } from '../bundling.ts';
import { DeployError } from '../errors.ts';
import { useBucket, useTable } from '../access.ts';
import { FUNCTIONS, handlerEntry, type FunctionSpec } from '../functions.ts';
import type { Storage } from './storage.ts';

export interface FunctionsProps {
  storage: Storage;
  /** The repository root: esbuild's working folder and where the lock file and handlers are. */
  projectRoot: string;
  /** The entry file of a function; default `<projectRoot>/functions/handlers/<handler>.ts`. */
  entryOf?: (spec: FunctionSpec) => string;
}

export class AgentflowFunctions extends Construct {
  /** By handler name (`prepare`, …, `infer`, `feedback`, `monitor`). */
  readonly byHandler: ReadonlyMap<string, NodejsFunction>;

  constructor(scope: Construct, id: string, props: FunctionsProps) {
    super(scope, id);
    const entryOf = props.entryOf ?? ((spec: FunctionSpec) => join(props.projectRoot, handlerEntry(spec.handler)));
    const byHandler = new Map<string, NodejsFunction>();
    for (const spec of FUNCTIONS) {
      // Its own role with write access to its own log group only (no AWSLambdaBasicExecutionRole, which allows every group).
      const logGroup = new LogGroup(this, `${spec.handler}Logs`, { retention: RetentionDays.ONE_MONTH });
      const role = new Role(this, `${spec.handler}Role`, {
        assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
        description: `agentflow ${spec.handler} function`,
      });
      logGroup.grantWrite(role);
      const fn = new NodejsFunction(this, spec.handler, {
        role,
        entry: entryOf(spec),
        handler: 'handler',
        projectRoot: props.projectRoot,
        depsLockFilePath: join(props.projectRoot, 'package-lock.json'),
        runtime: Runtime.NODEJS_22_X,
        // onnxruntime-node's Lambda copy is the linux-x64 build (see vendorOnnxRuntime.ts).
        architecture: Architecture.X86_64,
        memorySize: spec.memoryMiB,
        timeout: Duration.seconds(spec.timeoutSeconds),
        ephemeralStorageSize: Size.mebibytes(spec.ephemeralStorageMiB),
        tracing: Tracing.ACTIVE,
        description: spec.stage ? `agentflow ${spec.stage} stage` : `agentflow ${spec.handler}`,
        logGroup,
        environment: {
          NODE_OPTIONS: '--enable-source-maps',
          POWERTOOLS_SERVICE_NAME: `agentflow-${spec.handler}`,
        },
        bundling: bundlingFor({ projectRoot: props.projectRoot, spec }),
      });
      useBucket(fn, props.storage.bucket, spec.access.bucket, { writeKeys: spec.access.bucketWrites ?? [] });
      useTable(fn, 'registryTable', props.storage.registryTable, spec.access.registryTable);
      useTable(fn, 'rewardTable', props.storage.rewardTable, spec.access.rewardTable);
      byHandler.set(spec.handler, fn);
    }
    this.byHandler = byHandler;
  }

  get(handler: string): NodejsFunction {
    const fn = this.byHandler.get(handler);
    if (!fn) {
      throw new DeployError(`no function "${handler}"; FUNCTIONS lists ${[...this.byHandler.keys()].join(', ')}`, {
        code: 'WIRING_INCOMPLETE',
        context: { handler },
      });
    }
    return fn;
  }

  all(): IFunction[] {
    return [...this.byHandler.values()];
  }
}
