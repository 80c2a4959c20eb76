import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { AgentflowError } from '#lib/domain/errors/index.ts';

/**
 * The process that holds a data folder (`agentflow serve` or `agentflow up`) says where it can be
 * reached in `<dir>/server.json`: its HTTP server (/infer, /feedback) and, for `up`, the endpoints
 * of the local AWS stand-ins it runs. LevelDB lets one process open the folder, but dynalite and
 * s3rver are servers: another command can work on the same data through them, as a Lambda
 * function works on the tables a deployed stack owns.
 */
export const HOLDER_FILE = 'server.json';

export const HolderSchema = z.object({
  url: z.string().url(),
  pid: z.number().int().positive(),
  /** Present when the holder lets other commands use its stand-ins (`up`); `serve` answers /infer and /feedback only. */
  aws: z
    .object({
      region: z.string(),
      bucket: z.string(),
      registryTable: z.string(),
      rewardTable: z.string(),
      endpoints: z.object({ s3: z.string().url(), dynamodb: z.string().url() }),
    })
    .optional(),
});
export type Holder = z.infer<typeof HolderSchema>;

export class HolderError extends AgentflowError {
  constructor(message: string, options: { code: 'HOLDER_FILE_INVALID'; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'HolderError';
  }
}

export const holderPath = (dir: string) => join(dir, HOLDER_FILE);

export async function writeHolder(dir: string, holder: Holder): Promise<void> {
  await writeFile(holderPath(dir), JSON.stringify(HolderSchema.parse(holder)));
}

export async function removeHolder(dir: string): Promise<void> {
  await rm(holderPath(dir), { force: true });
}

/** The folder's holder, or undefined when none says where it is. A file that is not a holder's is an error naming it. */
export async function readHolder(dir: string): Promise<Holder | undefined> {
  const path = holderPath(dir);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let parsed: z.ZodSafeParseResult<Holder>;
  try {
    parsed = HolderSchema.safeParse(JSON.parse(text));
  } catch (cause) {
    throw new HolderError(`${path} is not JSON; it is written by \`agentflow serve\` or \`agentflow up\`: stop that process, or remove the file if none runs`, {
      code: 'HOLDER_FILE_INVALID',
      context: { path },
      cause,
    });
  }
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new HolderError(`${path} is not a running agentflow process's address (${problems}); remove it if no \`agentflow serve\` or \`up\` runs`, {
      code: 'HOLDER_FILE_INVALID',
      context: { path },
    });
  }
  return parsed.data;
}
