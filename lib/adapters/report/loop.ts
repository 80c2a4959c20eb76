import { z } from 'zod';
import { keys, type ArtifactStore } from '#lib/adapters/store/index.ts';
import { ReportError } from './errors.ts';

/**
 * The closed loop around a retraining run, as `agentflow demo --drift` observed it: per monitor
 * window the drift score and online reward of each serving version and each version's share of
 * the requests, with the moments that matter (drift onset, detection, the new version serving).
 * Stored beside the run (`runs/<runId>/loop.json`) so that its report can show the timeline.
 */
export const LoopTimelineSchema = z.object({
  project: z.string(),
  champion: z.number().int(),
  challenger: z.number().int().optional(),
  production: z.number().int(),
  driftOnsetAt: z.string(),
  detectedAt: z.string().optional(),
  retrainRun: z.object({ runId: z.string(), status: z.string(), reason: z.string(), startedAt: z.string(), endedAt: z.string() }).optional(),
  servingAt: z.string().optional(),
  rewardBefore: z.number().nullable(),
  rewardAfter: z.number().nullable(),
  challengerShare: z.number().nullable(),
  windows: z.array(
    z.object({
      start: z.string(),
      versions: z.array(
        z.object({ version: z.number().int(), production: z.boolean(), reward: z.number().nullable(), feedback: z.number(), psi: z.number().nullable() }),
      ),
      traffic: z.record(z.string(), z.number()),
      requests: z.number(),
      shifted: z.boolean(),
    }),
  ),
});
export type LoopTimeline = z.infer<typeof LoopTimelineSchema>;

const LOOP_FILE = 'loop.json';

export async function writeLoopTimeline(store: ArtifactStore, runId: string, timeline: LoopTimeline): Promise<void> {
  await store.putJson(keys.runFile(runId, LOOP_FILE), LoopTimelineSchema.parse(timeline));
}

/** The run's loop timeline, when the run was part of one. */
export async function readLoopTimeline(store: ArtifactStore, runId: string): Promise<LoopTimeline | undefined> {
  const key = keys.runFile(runId, LOOP_FILE);
  const document = await store.findJson(key, z.unknown());
  if (document === undefined) return undefined;
  const parsed = LoopTimelineSchema.safeParse(document);
  if (!parsed.success) {
    throw new ReportError(
      `${key} is not a loop timeline (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}); it is written by \`agentflow demo --drift\`: delete it, or run the demo again`,
      {
        code: 'LOOP_TIMELINE_INVALID',
        context: { key },
      },
    );
  }
  return parsed.data;
}

/** The figures the loop is judged by, in seconds. */
export function loopFigures(timeline: LoopTimeline): { detectionSeconds: number | null; servingSeconds: number | null } {
  const since = (at: string | undefined) => (at === undefined ? null : (Date.parse(at) - Date.parse(timeline.driftOnsetAt)) / 1000);
  return { detectionSeconds: since(timeline.detectedAt), servingSeconds: since(timeline.servingAt) };
}
