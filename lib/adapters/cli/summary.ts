import { candidateKey } from '#lib/pipeline/plan/screening.ts';
import { type PlanDecision } from '#lib/pipeline/plan/plan.ts';
import { type TrialRow } from '#lib/pipeline/reward/reward.ts';
import { readRunHistory } from '#lib/adapters/report/index.ts';
import { hyperparameterEntries, type CardHyperparameters, type ModelCard } from '#lib/domain/run/index.ts';
import type { ModelVersion, RunRecord } from '#lib/adapters/registry/index.ts';
import type { StageDependencies } from '#lib/pipeline/dependencies.ts';
import { fixed, table } from './output.ts';

export interface RunSummary {
  run: RunRecord;
  decisions: PlanDecision[];
  trials: { trialId: string; row: TrialRow }[];
  bestTrialId?: string;
  version?: ModelVersion;
  card?: ModelCard;
  promotion?: { promoted: boolean; reason: string; version: number };
  text: string;
}

const lambdaText = (lambda: Record<string, number>) =>
  Object.entries(lambda)
    .map(([task, value]) => `${task}=${fixed(value, 3)}`)
    .join(' ');

/** The winning trial's settings on one line, the ones the agent searched starred: `lr 0.003*, weightDecay 0.0001, …`. */
export function hyperparametersText(hyperparameters: CardHyperparameters): string {
  const entries = hyperparameterEntries(hyperparameters);
  const text = entries.map((e) => `${e.name} ${e.value}${e.searched ? '*' : ''}`).join(', ');
  return entries.some((e) => e.searched) ? `${text} (* searched)` : text;
}

/** What a run did, for `runs show` and the end of `run`: decisions, trials, the model and the gate's verdict. */
export async function summarizeRun(
  deps: Pick<StageDependencies, 'registry' | 'runLog' | 'rewards' | 'store'>,
  project: string,
  runId: string,
): Promise<RunSummary> {
  const { run, decisions, trials, bestTrialId, version, card, screening, promotionEvent } = await readRunHistory(deps, { project, runId });
  const promotion = promotionEvent as RunSummary['promotion'];

  const lines: string[] = [];
  lines.push(
    `run ${runId} of ${project}: ${run.status}${run.stage ? ` (last stage ${run.stage})` : ''}, started ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}`,
  );
  if (run.error) lines.push(`  error: ${run.error.message}`);
  for (const d of decisions) lines.push(`  plan: ${d.decision} — ${d.reason}`);
  if (screening) {
    lines.push(`  screening: ${candidateKey(screening.winner)} won — ${screening.reason}`);
    for (const round of screening.rounds) {
      const results = round.results.map((r) => `${candidateKey(r.candidate)} ${r.reward === null ? 'failed' : fixed(r.reward)}`).join(', ');
      lines.push(`    round ${round.round} (${round.maxEpochs} epochs): ${results}`);
    }
  }
  if (trials.length > 0) {
    const ranked = [...trials].sort((a, b) => (b.row.reward ?? -Infinity) - (a.row.reward ?? -Infinity));
    const failed = trials.filter((t) => t.row.status === 'failed').length;
    lines.push(`  ${trials.length} trials (${failed} failed); best five by reward:`);
    lines.push(
      table(
        ['trial', 'gen', 'reward', 'λ'],
        ranked
          .slice(0, 5)
          .map((t) => [`${t.trialId}${t.trialId === bestTrialId ? ' *' : ''}`, t.row.generation, fixed(t.row.reward ?? undefined), lambdaText(t.row.lambda)]),
      )
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n'),
    );
  }
  if (version && card) {
    lines.push(`  registered version ${version.version} (${version.status}), λ ${lambdaText(card.lambda)}, holdout objective ${fixed(card.holdoutObjective)}`);
    lines.push(
      table(
        ['task', 'metric', 'validation', 'holdout'],
        card.tasks.map((t) => [t.name, t.metric, fixed(card.metrics.validation[t.name]?.[t.metric]), fixed(card.metrics.holdout[t.name]?.[t.metric])]),
      )
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n'),
    );
    if (card.hyperparameters) lines.push(`  trained with ${hyperparametersText(card.hyperparameters)}`);
    lines.push(`  model ${card.model.uri} (${(card.model.sizeBytes / 1024).toFixed(1)} KiB), ${fixed(card.latencyMs.single, 2)} ms per record`);
  }
  if (promotion) lines.push(`  promotion: ${promotion.promoted ? 'promoted to production' : 'not promoted'} — ${promotion.reason}`);
  return {
    run,
    decisions,
    trials,
    ...(bestTrialId ? { bestTrialId } : {}),
    ...(version ? { version } : {}),
    ...(card ? { card } : {}),
    ...(promotion ? { promotion } : {}),
    text: lines.join('\n'),
  };
}
