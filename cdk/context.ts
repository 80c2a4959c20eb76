/**
 * The deployment's settings, read from CDK context (`cdk.json` or `-c key=value`) once and
 * checked, so a typo fails `cdk synth` with the key and the fix instead of deploying a surprise.
 */
import { z } from 'zod';
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
} as const;

/** `rate(…)`/`cron(…)` as EventBridge Scheduler writes them, or the bare forms the spec uses ("7 days", 6 cron fields). */
function scheduleExpression(entry: { cron?: string; rate?: string }): string {
  if (entry.rate !== undefined) return /^rate\(.+\)$/.test(entry.rate) ? entry.rate : `rate(${entry.rate})`;
  const cron = entry.cron as string;
  return /^cron\(.+\)$/.test(cron) ? cron : `cron(${cron})`;
}

const RATE = /^(rate\()?\d+ (minute|minutes|hour|hours|day|days)\)?$/;
const CRON_FIELDS = (cron: string) => cron.replace(/^cron\((.*)\)$/, '$1').trim().split(/\s+/).length;

const Schedule = z
  .strictObject({
    project: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'a project name is 1-40 lowercase letters, digits or dashes'),
    specUri: z.string().regex(/^s3:\/\/[^/]+\/.+/, 'expected the s3:// URI of a spec whose datasets are in S3'),
    cron: z.string().refine((c) => CRON_FIELDS(c) === 6, 'an EventBridge cron has 6 fields (minutes hours day-of-month month day-of-week year), e.g. "0 3 ? * MON *"').optional(),
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

const Context = z.strictObject({
  gpuInstanceTypes: z.array(z.string().regex(/^[a-z0-9]+\.[a-z0-9]+$/, 'an EC2 instance type such as "g5.xlarge"')).min(1).default(['g5.xlarge']),
  spot: z.boolean().default(true),
  maxvCpus: z.int().positive().default(16),
  vpc: VpcImport.optional(),
  scratchExpirationDays: z.int().positive().default(30),
  schedules: z.array(Schedule).default([]),
  monitorRate: z.string().regex(RATE, 'a rate such as "rate(1 hour)"').default('rate(1 hour)'),
  inferP99AlarmMs: z.number().positive().default(1000),
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
  const { schedules, monitorRate, ...rest } = parsed.data;
  return {
    ...rest,
    monitorRate: scheduleExpression({ rate: monitorRate }),
    schedules: schedules.map((s) => ({ project: s.project, specUri: s.specUri, enabled: s.enabled, expression: scheduleExpression(s) })),
  };
}
