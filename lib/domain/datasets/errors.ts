import { AgentflowError } from '#lib/domain/errors/index.ts';

/** One thing wrong with a dataset, located as precisely as the data allows. */
export interface DatasetProblem {
  /** The file as the user knows it, e.g. `train.jsonl` or `s3://bucket/datasets/train.csv`. */
  file: string;
  /** 1-based physical line where the record starts; absent for problems of the whole file. */
  line?: number;
  /** The task whose label is wrong, when the problem is a label. */
  task?: string;
  /** The column or JSON field concerned. */
  field?: string;
  /** The offending value (`undefined` when it is missing). */
  value: unknown;
  /** Names the bad value and the fix: `label "maybe" is not 0 or 1 (true/false also accepted)`. */
  message: string;
}

export type DatasetErrorCode = 'DATASET_INVALID' | 'DATASET_UNREADABLE';

/** A dataset that cannot be read or used. `problems` holds what was found (possibly capped). */
export class DatasetError extends AgentflowError {
  readonly problems: readonly DatasetProblem[];

  constructor(
    message: string,
    options: { code: DatasetErrorCode; file: string; problems?: DatasetProblem[]; context?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, {
      code: options.code,
      context: { file: options.file, problems: options.problems ?? [], ...options.context },
      cause: options.cause,
    });
    this.name = 'DatasetError';
    this.problems = options.problems ?? [];
  }
}

/**
 * `train.jsonl line 812, task "urgent": label "maybe" is not 0 or 1 (true/false also accepted)`.
 * Control characters are written as `\u001b`-style escapes: a binary file's bytes reach the
 * messages (JSON.parse quotes the text it stopped at), and raw they would drive the terminal
 * (colours, cursor moves, clearing the screen) and break the one-problem-a-line list.
 */
export function formatProblem(problem: DatasetProblem): string {
  const where = problem.line === undefined ? problem.file : `${problem.file} line ${problem.line}`;
  return printable(`${where}${problem.task === undefined ? '' : `, task "${problem.task}"`}: ${problem.message}`);
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point: they are escaped before a terminal sees them.
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Text with its control characters (tab aside) escaped as `\uXXXX`. */
export function printable(text: string): string {
  return text.replace(CONTROL, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One problem a line; with `total` above the number shown, a last line says how many were left out. */
export function formatProblems(problems: readonly DatasetProblem[], options: { total?: number } = {}): string {
  const lines = problems.map(formatProblem);
  const hidden = (options.total ?? problems.length) - problems.length;
  if (hidden > 0) lines.push(`… and ${hidden} more problem${hidden === 1 ? '' : 's'}`);
  return lines.join('\n');
}
