/**
 * The Embed Batch job: `node --import tsx functions/jobs/embed.ts`, configured by environment
 * (EmbedJobEnv plus the config variables). Writes its EmbedJobResult to AGENTFLOW_OUTPUT_URI;
 * on failure prints why and exits non-zero, which fails the Batch job and the workflow state.
 * Locally the same body runs in a warm job worker (functions/jobs/host.ts).
 */
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { configFromEnv, makeClients } from '#lib/adapters/config/index.ts';
import { runEmbed } from '#lib/pipeline/embed/index.ts';
import { describeError } from '#lib/domain/errors/index.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';
import { executionProvidersFor } from '#lib/pipeline/trials/trialJob.ts';
import { EmbedJobEnv, EmbedJobResult } from '#lib/pipeline/contracts.ts';

export async function embedJob(env: NodeJS.ProcessEnv): Promise<EmbedJobResult> {
  const vars = EmbedJobEnv.parse(env);
  const config = configFromEnv(env);
  const { s3, dynamodb } = makeClients(config, { principal: 'embed' });
  try {
    const store = new ArtifactStore({ s3, bucket: config.bucket });
    const manifest = await store.getJson(vars.AGENTFLOW_MANIFEST_URI, RunManifest);
    if (manifest.runId !== vars.AGENTFLOW_RUN_ID) {
      throw new Error(
        `${vars.AGENTFLOW_MANIFEST_URI} is the manifest of run ${manifest.runId}, not of AGENTFLOW_RUN_ID ${vars.AGENTFLOW_RUN_ID}; pass the run's own manifest`,
      );
    }
    let reported = 0;
    const result = await runEmbed({
      store,
      manifest,
      featuresUri: vars.AGENTFLOW_FEATURES_URI,
      ...(env.AGENTFLOW_EMBED_BATCH_SIZE ? { batchSize: Number(env.AGENTFLOW_EMBED_BATCH_SIZE) } : {}),
      // One variable chooses the device for every job: the GPU image sets AGENTFLOW_DEVICE=cuda.
      executionProviders: executionProvidersFor(env.AGENTFLOW_DEVICE),
      onProgress: ({ rows, dataset }) => {
        if (rows - reported >= 50_000) {
          reported = rows;
          console.error(`embed: ${rows} rows embedded (reading ${dataset})`);
        }
      },
    });
    await store.putJson(store.keyOf(vars.AGENTFLOW_OUTPUT_URI), EmbedJobResult.parse(result));
    console.log(JSON.stringify(result));
    return result;
  } finally {
    s3.destroy();
    dynamodb.destroy();
  }
}

/** The job's body: embeds as `env` says and returns the exit code (0 embedded, 1 failed, with why on stderr). */
export async function runEmbedCommand(env: NodeJS.ProcessEnv): Promise<number> {
  try {
    await embedJob(env);
    return 0;
  } catch (error) {
    const { name, message } = error instanceof z.ZodError ? { name: 'EnvironmentError', message: z.prettifyError(error) } : describeError(error);
    console.error(`embed job failed: ${name}: ${message}`);
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exit(await runEmbedCommand(process.env));
}
