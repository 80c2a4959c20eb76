/**
 * The trial Batch job: `node --import tsx functions/jobs/trial.ts` with the TrialJobEnv variables
 * and the config variables. `AGENTFLOW_DEVICE=cuda` trains on the CUDA execution provider (and
 * fails if it cannot); `AGENTFLOW_INTRA_OP_THREADS` sets ONNX Runtime's thread count. Exit codes:
 * 0 trained, 1 failed cleanly (the result file says why), 2 could not run (Batch may retry).
 */
import { configFromEnv, makeClients } from '#lib/adapters/config/index.ts';
import { describeError } from '#lib/domain/errors/index.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';
import { intraOpThreadsFrom, runTrialJob } from '#lib/pipeline/trials/trialJob.ts';
import { parseTrialJobEnv } from '#lib/pipeline/contracts.ts';

try {
  const job = parseTrialJobEnv(process.env);
  const config = configFromEnv();
  const { s3, dynamodb } = makeClients(config, { principal: 'trial' });
  dynamodb.destroy();
  const threads = intraOpThreadsFrom(process.env.AGENTFLOW_INTRA_OP_THREADS);
  try {
    const result = await runTrialJob(job, {
      store: new ArtifactStore({ s3, bucket: config.bucket }),
      ...(process.env.AGENTFLOW_DEVICE === undefined ? {} : { device: process.env.AGENTFLOW_DEVICE }),
      ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
      log: (line) => console.log(line),
    });
    process.exitCode = result.status === 'succeeded' ? 0 : 1;
  } finally {
    s3.destroy();
  }
} catch (error) {
  console.error(`trial job failed: ${JSON.stringify(describeError(error))}`);
  process.exitCode = 2;
}
