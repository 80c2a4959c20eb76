/**
 * The deployment's settings, read from CDK context (`cdk.json` or `-c key=value`) once and
 * checked, so a typo fails `cdk synth` with the key and the fix instead of deploying a surprise.
 */
import { z } from 'zod';
import { GPU_WAIT } from '#lib/pipeline/gpuWait.ts';
import { DeployError } from './errors.ts';

export const CONTEXT_KEYS = {
  gpuInstanceTypes: 'agentflow:gpuInstanceTypes',
  spot: 'agentflow:spot',
  maxvCpus: 'agentflow:maxvCpus',
  vpc: 'agentflow:vpc',
  scratchExpirationDays: 'agentflow:scratchExpirationDays',
  schedules: 'agentflow:schedules',
  monitorRate: 'agentflow:monitorRate',
  inferP99AlarmMs: 'agentflow:inferP99AlarmMs',
  maxGpuWaitMinutes: 'agentflow:maxGpuWaitMinutes',
  existingBucket: 'agentflow:existingBucket',
  existingRegistryTable: 'agentflow:existingRegistryTable',
  existingRewardTable: 'agentflow:existingRewardTable',
} as const;

/** `rate(…)`/`cron(…)` as EventBridge Scheduler writes them, or the bare forms the spec uses ("7 days", 6 cron fields). */
function scheduleExpression(entry: { cron?: string; rate?: string }): string {
  if (entry.rate !== undefined) return /^rate\(.+\)$/.test(entry.rate) ? entry.rate : `rate(${entry.rate})`;
  const cron = entry.cron as string;
  return /^cron\(.+\)$/.test(cron) ? cron : `cron(${cron})`;
}

const RATE = /^(rate\()?\d+ (minute|minutes|hour|hours|day|days)\)?$/;
const CRON_FIELDS = (cron: string) =>
  cron
    .replace(/^cron\((.*)\)$/, '$1')
    .trim()
    .split(/\s+/).length;

const Schedule = z
  .strictObject({
    project: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'a project name is 1-40 lowercase letters, digits or dashes'),
    specUri: z.string().regex(/^s3:\/\/[^/]+\/.+/, 'expected the s3:// URI of a spec whose datasets are in S3'),
    cron: z
      .string()
      .refine((c) => CRON_FIELDS(c) === 6, 'an EventBridge cron has 6 fields (minutes hours day-of-month month day-of-week year), e.g. "0 3 ? * MON *"')
      .optional(),
    rate: z.string().regex(RATE, 'a rate is "<n> minutes|hours|days", e.g. "7 days"').optional(),
    enabled: z.boolean().default(true),
  })
  .refine((s) => (s.cron === undefined) !== (s.rate === undefined), 'give exactly one of cron or rate');

const VpcImport = z.strictObject({
  vpcId: z.string().regex(/^vpc-[0-9a-f]+$/),
  availabilityZones: z.array(z.string()).min(1),
  /** Subnets for the GPU instances; they need a route to ECR, S3 and DynamoDB (NAT or endpoints). */
  subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/)).min(1),
});

/** S3's naming rules for general purpose buckets (dots allowed, not as the first or last character). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** DynamoDB's naming rules for tables. */
const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;

const Context = z.strictObject({
  gpuInstanceTypes: z
    .array(z.string().regex(/^[a-z0-9]+\.[a-z0-9]+$/, 'an EC2 instance type such as "g5.xlarge"'))
    .min(1)
    .default(['g5.xlarge']),
  spot: z.boolean().default(true),
  maxvCpus: z.int().positive().default(16),
  vpc: VpcImport.optional(),
  scratchExpirationDays: z.int().positive().default(30),
  schedules: z.array(Schedule).default([]),
  monitorRate: z.string().regex(RATE, 'a rate such as "rate(1 hour)"').default('rate(1 hour)'),
  inferP99AlarmMs: z.number().positive().default(1000),
  maxGpuWaitMinutes: z
    .int(
      `a whole number of minutes from ${GPU_WAIT.minMinutes} to ${GPU_WAIT.maxMinutes} (Batch's limits for a RUNNABLE time limit), e.g. ${GPU_WAIT.defaultMinutes}`,
    )
    .min(
      GPU_WAIT.minMinutes,
      `Batch cancels RUNNABLE jobs after ${GPU_WAIT.minMinutes} minutes at the earliest; give ${GPU_WAIT.minMinutes}..${GPU_WAIT.maxMinutes}`,
    )
    .max(
      GPU_WAIT.maxMinutes,
      `Batch cancels RUNNABLE jobs after ${GPU_WAIT.maxMinutes} minutes (24 h) at the latest; give ${GPU_WAIT.minMinutes}..${GPU_WAIT.maxMinutes}`,
    )
    .default(GPU_WAIT.defaultMinutes),
  existingBucket: z
    .string()
    .regex(BUCKET_NAME, 'the name (not the ARN or s3:// URI) of an existing S3 bucket, e.g. "agentflow-artifacts-123456789012"')
    .optional(),
  existingRegistryTable: z.string().regex(TABLE_NAME, 'the name (not the ARN) of an existing DynamoDB table: 3-255 letters, digits, _ . or -').optional(),
  existingRewardTable: z.string().regex(TABLE_NAME, 'the name (not the ARN) of an existing DynamoDB table: 3-255 letters, digits, _ . or -').optional(),
});

export interface RetrainingSchedule {
  project: string;
  specUri: string;
  /** `rate(…)` or `cron(…)`. */
  expression: string;
  enabled: boolean;
}

export interface AgentflowContext {
  gpuInstanceTypes: string[];
  spot: boolean;
  maxvCpus: number;
  vpc?: z.infer<typeof VpcImport>;
  scratchExpirationDays: number;
  schedules: RetrainingSchedule[];
  /** `rate(…)`. */
  monitorRate: string;
  inferP99AlarmMs: number;
  /** Minutes a GPU job may wait RUNNABLE before the job queue cancels it (GPU_WAIT). */
  maxGpuWaitMinutes: number;
  /** Names of a bucket and tables kept from an earlier deployment, adopted instead of created. */
  existing: ExistingStorage;
}

/** What `agentflow:existing*` adopts; each absent name is created by the stack. */
export interface ExistingStorage {
  bucket?: string;
  registryTable?: string;
  rewardTable?: string;
}

/** `-c key=value` on the command line gives strings; JSON in them (arrays, booleans, numbers) is parsed. */
function fromCli(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** Reads every `agentflow:*` key through `get` (e.g. `key => app.node.tryGetContext(key)`). */
export function readContext(get: (key: string) => unknown): AgentflowContext {
  const raw = Object.fromEntries(
    Object.entries(CONTEXT_KEYS)
      .map(([field, key]) => [field, fromCli(get(key))] as const)
      .filter(([, value]) => value !== undefined),
  );
  const parsed = Context.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const [field, ...rest] = issue.path;
      const key = CONTEXT_KEYS[field as keyof typeof CONTEXT_KEYS] ?? String(field);
      return `${[key, ...rest].join('.')}: ${issue.message}`;
    });
    throw new DeployError(`invalid CDK context: ${problems.join('; ')}. Fix it in cdk.json "context" or the -c option`, {
      code: 'CONTEXT_INVALID',
      context: { problems },
      cause: parsed.error,
    });
  }
  const { schedules, monitorRate, existingBucket, existingRegistryTable, existingRewardTable, ...rest } = parsed.data;
  const existing = adoptedStorage({ bucket: existingBucket, registryTable: existingRegistryTable, rewardTable: existingRewardTable });
  return {
    ...rest,
    existing,
    monitorRate: scheduleExpression({ rate: monitorRate }),
    schedules: schedules.map((s) => ({ project: s.project, specUri: s.specUri, enabled: s.enabled, expression: scheduleExpression(s) })),
  };
}

/**
 * The tables are adopted together and only with the bucket: version items point at
 * `models/<project>/<version>/` keys and arm counters at versions, so a registry without its
 * bucket, or rewards without their registry, would refer to things the new stack does not have.
 * A bucket alone is fine: its keys are content-addressed or per run, and a new registry starts empty.
 */
function adoptedStorage(names: ExistingStorage): ExistingStorage {
  const given = Object.entries(names).filter(([, name]) => name !== undefined);
  const tables = [names.registryTable, names.rewardTable].filter((name) => name !== undefined).length;
  if (tables > 0 && (tables < 2 || names.bucket === undefined)) {
    const missing = (['bucket', 'registryTable', 'rewardTable'] as const).filter((field) => names[field] === undefined);
    const keyOf = { bucket: CONTEXT_KEYS.existingBucket, registryTable: CONTEXT_KEYS.existingRegistryTable, rewardTable: CONTEXT_KEYS.existingRewardTable };
    throw new DeployError(
      `invalid CDK context: ${given.map(([field]) => keyOf[field as keyof ExistingStorage]).join(', ')} given without ${missing.map((field) => keyOf[field]).join(', ')}. ` +
        'Existing tables are adopted together with the bucket their versions point into: give all three names from the earlier stack, or only the bucket',
      { code: 'CONTEXT_INVALID', context: { given: Object.fromEntries(given), missing: missing.map((field) => keyOf[field]) } },
    );
  }
  return Object.fromEntries(given) as ExistingStorage;
}
