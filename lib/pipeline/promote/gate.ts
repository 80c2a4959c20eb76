import type { DeploySpec } from '#lib/domain/spec/index.ts';
import type { FloorViolation } from '#lib/domain/tune/index.ts';

export interface GateScore {
  /** The spec's objective (the agent's reward) on this run's holdout. */
  objective: number;
  violations: FloorViolation[];
  /**
   * For an int8-quantized candidate, how much objective it lost against the float model it was
   * quantized from, on the same holdout (float − quantized; negative when quantization helped).
   */
  quantizationLoss?: number;
}

export type GateDecision =
  { action: 'promote'; reason: string } | { action: 'canary'; trafficShare: number; reason: string } | { action: 'hold'; reason: string };

const fmt = (value: number) => value.toFixed(4);

function violationText(violations: FloorViolation[]): string {
  return violations.map((v) => `${v.task} ${v.metric} ${fmt(v.value)} misses its floor ${fmt(v.floor)}`).join('; ');
}

/**
 * The champion/challenger gate, as data: whether a candidate replaces production, joins the
 * serving set as a canary, or is held. A candidate under any task's floor is never served.
 */
export function decidePromotion(policy: DeploySpec, candidate: GateScore, champion?: GateScore & { version: number }): GateDecision {
  if (policy.policy === 'never') return { action: 'hold', reason: 'the deploy policy is "never": registered for manual promotion' };
  if (candidate.violations.length > 0) return { action: 'hold', reason: `held: ${violationText(candidate.violations)}` };
  if (candidate.quantizationLoss !== undefined && !(candidate.quantizationLoss <= policy.maxQuantizationLoss)) {
    return {
      action: 'hold',
      reason: `held: int8 quantization lost ${fmt(candidate.quantizationLoss)} of the holdout objective, more than deploy.maxQuantizationLoss ${policy.maxQuantizationLoss}; export with deploy.quantize false (the float model is kept beside it) or raise the limit`,
    };
  }
  if (!champion) return { action: 'promote', reason: `no version is in production; objective ${fmt(candidate.objective)} meets every floor` };
  switch (policy.policy) {
    case 'always':
      return {
        action: 'promote',
        reason: `the deploy policy is "always": replaces version ${champion.version} (objective ${fmt(candidate.objective)} vs ${fmt(champion.objective)})`,
      };
    case 'canary':
      return {
        action: 'canary',
        trafficShare: policy.canaryShare,
        reason: `the deploy policy is "canary": serves ${Math.round(policy.canaryShare * 100)}% of traffic beside version ${champion.version} (objective ${fmt(candidate.objective)} vs ${fmt(champion.objective)}); the router shifts traffic by reward`,
      };
    case 'if-better': {
      const gain = candidate.objective - champion.objective;
      return gain >= policy.margin
        ? {
            action: 'promote',
            reason: `objective ${fmt(candidate.objective)} beats version ${champion.version}'s ${fmt(champion.objective)} by ${fmt(gain)} ≥ margin ${policy.margin}`,
          }
        : {
            action: 'hold',
            reason: `objective ${fmt(candidate.objective)} does not beat version ${champion.version}'s ${fmt(champion.objective)} by the margin ${policy.margin} (gain ${fmt(gain)})`,
          };
    }
  }
}
