/**
 * The trial Batch job: `node --import tsx functions/jobs/trial.ts` with the TrialJobEnv variables
 * and the config variables. `AGENTFLOW_DEVICE=cuda` trains on the CUDA execution provider (and
 * fails if it cannot); `AGENTFLOW_INTRA_OP_THREADS` sets ONNX Runtime's thread count. Exit codes:
 * 0 trained, 1 failed cleanly (the result file says why), 2 could not run (Batch may retry).
 * Locally the same body runs in a warm job worker (functions/jobs/host.ts).
 */
import { pathToFileURL } from 'node:url';
import { configFromEnv, makeClients } from '#lib/adapters/config/index.ts';
import { describeError } from '#lib/domain/errors/index.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';
import { intraOpThreadsFrom, runTrialJob } from '#lib/pipeline/trials/trialJob.ts';
import { parseTrialJobEnv } from '#lib/pipeline/contracts.ts';

/** The job's body: trains the trial `env` describes and returns the exit code above. */
export async function runTrialCommand(env: NodeJS.ProcessEnv): Promise<number> {
  try {
    const job = parseTrialJobEnv(env);
    const config = configFromEnv(env);
    const { s3, dynamodb } = makeClients(config, { principal: 'trial' });
    dynamodb.destroy();
    const threads = intraOpThreadsFrom(env.AGENTFLOW_INTRA_OP_THREADS);
    try {
      const result = await runTrialJob(job, {
        store: new ArtifactStore({ s3, bucket: config.bucket }),
        ...(env.AGENTFLOW_DEVICE === undefined ? {} : { device: env.AGENTFLOW_DEVICE }),
        ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
        log: (line) => console.log(line),
      });
      return result.status === 'succeeded' ? 0 : 1;
    } finally {
      s3.destroy();
    }
  } catch (error) {
    console.error(`trial job failed: ${JSON.stringify(describeError(error))}`);
    return 2;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await runTrialCommand(process.env);
}
