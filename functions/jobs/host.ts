/**
 * The local warm job worker: `node --import tsx functions/jobs/host.ts`, started by the local
 * runtime's JobWorkerPool (never by Batch: the job image runs embed.ts or trial.ts directly). It
 * loads both jobs once and runs the ones it is sent, one at a time, each with its own environment.
 */
import { serveJobs } from '#lib/adapters/local/jobHost.ts';
import type { BatchJobName } from '#lib/pipeline/stages.ts';
import { runEmbedCommand } from './embed.ts';
import { runTrialCommand } from './trial.ts';

serveJobs({ embed: runEmbedCommand, trial: runTrialCommand } satisfies Record<BatchJobName, unknown>);
