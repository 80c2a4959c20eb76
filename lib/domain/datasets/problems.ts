import { formatProblem, printable, type DatasetProblem } from '#lib/domain/datasets/errors.ts';
import { renderValue, type TaskSpec } from '#lib/domain/spec/index.ts';

/**
 * What sort of problem it is, so a summary can group 90,000 rows with the same fault: a bad label
 * (per task), a bad input value or header name (per column), a row that is not a record or has no
 * label at all, or a fault of the whole file.
 */
export type ProblemKind = 'label' | 'input' | 'row' | 'file';

export function kindOf(problem: DatasetProblem): ProblemKind {
  if (problem.line === undefined) return 'file';
  if (problem.task !== undefined) return 'label';
  return problem.field === undefined ? 'row' : 'input';
}

/** Every problem of one file, task, column and kind: how many, where the first ones are, and the fix. */
export interface ProblemGroup {
  file: string;
  task?: string;
  field?: string;
  kind: ProblemKind;
  count: number;
  /** The first problems of the group in file order. */
  examples: DatasetProblem[];
  /** One fix for the whole group, when the group says more than any one row (e.g. which `positive` to add). */
  fix?: string;
}

export interface ProblemSummaryOptions {
  /** The spec's tasks, to word fixes that name a task's settings. */
  tasks?: readonly TaskSpec[];
  /** Problems shown per group. Default 3. */
  examplesPerGroup?: number;
  /**
   * Problem lines kept for the full list. A file where every row is bad yields one line per row;
   * past this many the rest are only counted, so a huge file cannot exhaust the stage's memory.
   */
  maxListedProblems?: number;
}

/* Distinct label values counted per group, enough to suggest `positive`, bounded for free-text labels. */
const MAX_LABEL_VALUES = 1000;
/* A screenful: each group takes its heading, its examples and its fix. */
const DEFAULT_MAX_GROUPS = 6;
const MAX_LINE_CHARS = 200;

/**
 * Collects dataset problems as they are found, in constant memory per group: the terminal gets
 * one summary per file, task and kind (`format`), and the full list (`fullText`) goes to a file.
 */
export class ProblemSummary {
  readonly #groups = new Map<string, ProblemGroup & { values?: Map<string, number> }>();
  readonly #tasks: Map<string, TaskSpec>;
  readonly #examplesPerGroup: number;
  readonly #maxListed: number;
  readonly #lines: string[] = [];
  #count = 0;

  constructor(options: ProblemSummaryOptions = {}) {
    this.#tasks = new Map((options.tasks ?? []).map((task) => [task.name, task]));
    this.#examplesPerGroup = options.examplesPerGroup ?? 3;
    this.#maxListed = options.maxListedProblems ?? 1_000_000;
  }

  /** Every problem added so far. */
  get count(): number {
    return this.#count;
  }

  /** Bound, so it can be passed as an `onProblem` callback. */
  readonly add = (problem: DatasetProblem): void => {
    this.#count += 1;
    if (this.#lines.length < this.#maxListed) this.#lines.push(formatProblem(problem));
    const kind = kindOf(problem);
    const key = [problem.file, problem.task ?? '', problem.field ?? '', kind].join('\u0000');
    let group = this.#groups.get(key);
    if (!group) {
      group = { file: problem.file, task: problem.task, field: problem.field, kind, count: 0, examples: [] };
      const type = this.#tasks.get(problem.task ?? '')?.type;
      if (kind === 'label' && (type === 'binary' || type === 'multiclass')) group.values = new Map();
      this.#groups.set(key, group);
    }
    group.count += 1;
    if (group.examples.length < this.#examplesPerGroup) group.examples.push(problem);
    if (group.values && typeof problem.value === 'string' && (group.values.size < MAX_LABEL_VALUES || group.values.has(problem.value.trim()))) {
      const value = problem.value.trim();
      group.values.set(value, (group.values.get(value) ?? 0) + 1);
    }
  };

  /** The groups in the order their first problem was found, each with its fix where one applies. */
  groups(): ProblemGroup[] {
    return [...this.#groups.values()].map(({ values, ...group }) => {
      const task = this.#tasks.get(group.task ?? '');
      const fix = values && task ? (task.type === 'multiclass' ? classesFix(task, values) : positiveFix(task, values)) : undefined;
      return fix ? { ...group, fix } : group;
    });
  }

  /**
   * At most a screenful: a heading per group (file, task, count), its first problems with their
   * lines, its fix; past `maxGroups` groups only a count. `fullListAt` names where every problem is.
   */
  format(options: { maxGroups?: number; fullListAt?: string } = {}): string {
    const groups = this.groups();
    const shown = groups.slice(0, options.maxGroups ?? DEFAULT_MAX_GROUPS);
    const lines: string[] = [];
    for (const group of shown) {
      const where = `${group.file}${group.task === undefined ? '' : `, task "${group.task}"`}${group.field === undefined || group.task !== undefined ? '' : `, column "${group.field}"`}`;
      lines.push(clip(`${where}: ${count(group.count, 'problem')}${group.count > group.examples.length ? `, the first ${group.examples.length}:` : ':'}`));
      for (const problem of group.examples) {
        lines.push(clip(`  ${problem.line === undefined ? '' : `line ${problem.line}: `}${problem.message}`));
      }
      if (group.fix) lines.push(clip(`  fix: ${group.fix}`));
    }
    const hidden = groups.slice(shown.length);
    if (hidden.length > 0) {
      const rows = hidden.reduce((sum, group) => sum + group.count, 0);
      lines.push(`… and ${count(rows, 'more problem')} of ${count(hidden.length, 'other kind')}`);
    }
    if (options.fullListAt) lines.push(`every problem, one a line: ${options.fullListAt}`);
    return lines.join('\n');
  }

  /** Every problem, one a line, in the order found; a last line counts any past `maxListedProblems`. */
  fullText(): string {
    const hidden = this.#count - this.#lines.length;
    return [...this.#lines, ...(hidden > 0 ? [`… and ${count(hidden, 'more problem')}, not listed`] : [])].join('\n') + '\n';
  }
}

/** `add "positive": "churned" to task "churn" (values seen: "churned" 120, "stayed" 880)`. */
function positiveFix(task: TaskSpec, values: Map<string, number>): string | undefined {
  // One odd value among 0/1 labels (a stray "maybe") is a typo to fix, not a labelling to name.
  if (task.type !== 'binary' || values.size < 2 || task.positive !== undefined) return undefined;
  const ranked = [...values].sort(([, a], [, b]) => b - a);
  // The rarer value is the usual positive (churned, fraud, spam); the user knows which it is.
  const rarest = ranked[ranked.length - 1][0];
  return `add "positive": ${renderValue(rarest)} to task "${task.name}" (the value that means 1; values seen: ${seenText(ranked)}); every other value then counts as 0`;
}

/** `add "sales" to "classes" of task "team", or correct those labels (values seen: "sales" 40)`. */
function classesFix(task: TaskSpec, values: Map<string, number>): string | undefined {
  if (task.type !== 'multiclass' || values.size === 0) return undefined;
  const ranked = [...values].sort(([, a], [, b]) => b - a);
  const named = ranked.slice(0, 5).map(([value]) => renderValue(value));
  return `add ${named.join(', ')}${values.size > 5 ? `, … (${values.size} values)` : ''} to "classes" of task "${task.name}", or correct those labels (values seen: ${seenText(ranked)})`;
}

function seenText(ranked: readonly [string, number][]): string {
  const shown = ranked.slice(0, 5).map(([value, n]) => `${renderValue(value)} ${n.toLocaleString('en-US')}`);
  return `${shown.join(', ')}${ranked.length > 5 ? `, … ${ranked.length - 5} more` : ''}`;
}

function count(n: number, noun: string): string {
  return `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;
}

/** One terminal line: control characters escaped (data reaches the messages), at most MAX_LINE_CHARS. */
function clip(line: string): string {
  const text = printable(line);
  return text.length > MAX_LINE_CHARS ? `${text.slice(0, MAX_LINE_CHARS - 1)}…` : text;
}
