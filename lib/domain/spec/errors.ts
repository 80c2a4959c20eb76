import { AgentflowError } from '#lib/domain/errors/index.ts';

/** One thing wrong with a spec: where (`tasks[1].type`), what was there, and what to do instead. */
export interface SpecProblem {
  /** The field in the user's spec, as they would write it: `tasks[1].type`, `training.epochs`. */
  path: string;
  /** The value found at `path` (`undefined` when the field is missing). */
  value: unknown;
  /** A sentence naming the bad value and the fix: `"multi" is not one of binary | multiclass | regression`. */
  message: string;
}

/** A spec that cannot be used. Carries every problem found, not just the first. */
export class SpecError extends AgentflowError {
  readonly problems: readonly SpecProblem[];
  readonly source: string;

  constructor(options: { source: string; problems: SpecProblem[]; cause?: unknown }) {
    super(formatSpecProblems(options.source, options.problems), {
      code: 'SPEC_INVALID',
      context: { source: options.source, problems: options.problems },
      cause: options.cause,
    });
    this.name = 'SpecError';
    this.problems = options.problems;
    this.source = options.source;
  }
}

/** `spec.json: 2 problems:\n  - tasks[1].type: "multi" is not one of …\n  - …` */
export function formatSpecProblems(source: string, problems: readonly SpecProblem[]): string {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  const lines = problems.map((problem) => `  - ${problem.path === '' ? '(top level)' : problem.path}: ${problem.message}`);
  return [`${source}: ${count}:`, ...lines].join('\n');
}
