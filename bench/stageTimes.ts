import type { WorkflowEvent } from '#lib/adapters/local/workflow.ts';

/**
 * Wall time per state of a local run, from the workflow's events: `onEvent` goes to
 * `runPipelineLocally`; `stages` sums each state's time (the Map's iterations under `Trials`),
 * `trialWallMs` holds each trial job's wall time. Choice and end states are left out.
 */
export function stageTimer() {
  const entered = new Map<string, number>();
  const stages = new Map<string, number>();
  const trialWallMs: number[] = [];
  const onEvent = (event: WorkflowEvent) => {
    const key = `${event.state}#${event.index ?? ''}`;
    const at = Date.parse(event.at);
    if (event.type === 'StateEntered') entered.set(key, at);
    if (event.type !== 'StateExited' && event.type !== 'StateFailed') return;
    const since = entered.get(key);
    if (since === undefined || !event.state) return;
    if (event.state === 'RunTrial') trialWallMs.push(at - since);
    else if (!/Failed$|Succeeded$|^IsTuningDone$/.test(event.state)) stages.set(event.state, (stages.get(event.state) ?? 0) + (at - since));
  };
  return { onEvent, stages, trialWallMs };
}
