/**
 * The inside of a warm job worker (see jobWorkers.ts): a long-lived child process that loads the
 * job modules once and runs the jobs it is sent one at a time, each with its own environment, so
 * a local run pays Node's and tsx's start-up once per worker instead of once per Batch job.
 *
 * The protocol: the pool sends `{ type: 'run', id, job, env }` over the IPC channel once the host
 * has said `{ type: 'ready' }`. The job's output goes to the worker's own stdout and stderr, so
 * lines written by native code (ONNX Runtime) reach the pool too. When the job returns, the host
 * writes an end marker on both streams (the exit code in stdout's): pipes keep order, so every
 * line before a marker belongs to the job that was running, which is how the pool attributes
 * output and knows that the job's last line has arrived.
 */
import * as z from 'zod';
import { describeError } from '#lib/domain/errors/index.ts';
import { WorkflowError } from '#lib/pipeline/errors.ts';

/** A job's environment: the worker's process environment under the job's own variables. */
export type JobEnvironment = Readonly<Record<string, string | undefined>>;

/**
 * What a Batch job command does, as a function: runs the job configured by `env` and returns its
 * exit code (0 succeeded; non-zero as the command's own documentation says). It reads its
 * environment from `env`, never from `process.env`, so one worker can run jobs with different
 * variables, and it leaves nothing behind that would change the next job's result.
 */
export type JobBody = (env: JobEnvironment) => Promise<number>;

/** Starts an end marker line: a control character no job prints, then a tag. */
export const JOB_END_MARKER = '\u001eagentflow-job-end:';

export const JobRequest = z.object({
  type: z.literal('run'),
  /** The pool's id for this attempt; echoed in the end markers. */
  id: z.string().min(1),
  /** Which job body to run: a key of the host's job table. */
  job: z.string().min(1),
  /** The job's own variables (the state's ContainerOverrides), set over the worker's environment. */
  env: z.record(z.string(), z.string()),
});
export type JobRequest = z.infer<typeof JobRequest>;

export const HostMessage = z.object({ type: z.literal('ready') });
export type HostMessage = z.infer<typeof HostMessage>;

/** The marker line that ends a job's output on one stream: `<marker><id>` on stderr, `<marker><id>:<code>` on stdout. */
export function jobEndLine(id: string, exitCode?: number): string {
  return `${JOB_END_MARKER}${id}${exitCode === undefined ? '' : `:${exitCode}`}\n`;
}

/** Parses what follows the marker: the attempt's id, and the exit code when the stream carries one. */
export function parseJobEnd(tag: string): { id: string; exitCode?: number } {
  const match = /^([^:]+)(?::(-?\d+))?$/.exec(tag);
  if (!match) return { id: tag };
  return match[2] === undefined ? { id: match[1] } : { id: match[1], exitCode: Number(match[2]) };
}

const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write('', () => resolve()));

/**
 * Serves `jobs` over this process's IPC channel until the pool disconnects. A job that throws
 * instead of returning a code exits 1 with the error on stderr, as an uncaught error ends a
 * fresh Node process. A job that exits the process (or crashes it) ends the worker: the pool
 * fails that job alone and starts another worker for the next.
 */
export function serveJobs(jobs: Readonly<Record<string, JobBody>>): void {
  const send = process.send?.bind(process);
  if (!send) {
    throw new WorkflowError('the job host was started without an IPC channel; it is started by the local job worker pool (JobWorkerPool), not run by hand', {
      code: 'JOB_HOST_NO_CHANNEL',
    });
  }
  let running: string | undefined;
  process.on('message', (message: unknown) => {
    const request = JobRequest.safeParse(message);
    if (!request.success || running !== undefined) {
      // The pool sends one well-formed job at a time; anything else means the two sides disagree.
      console.error(
        `job host: ${running === undefined ? `request ${JSON.stringify(message)} is not a job request` : `a job arrived while ${running} runs`}; exiting`,
      );
      process.exit(70);
    }
    const { id, job, env } = request.data;
    running = id;
    void (async () => {
      let exitCode: number;
      const body = jobs[job];
      if (!body) {
        console.error(`job host: no job named ${JSON.stringify(job)}; this host runs ${Object.keys(jobs).join(', ')}`);
        exitCode = 2;
      } else {
        try {
          exitCode = await body({ ...process.env, ...env });
        } catch (error) {
          const { name, message } = describeError(error);
          console.error(`job ${job} threw ${name}: ${message}`);
          exitCode = 1;
        }
      }
      await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
      process.stderr.write(jobEndLine(id));
      process.stdout.write(jobEndLine(id, exitCode));
      running = undefined;
    })();
  });
  // The pool is gone (closed, or its process died): nothing will come.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' } satisfies HostMessage);
}
