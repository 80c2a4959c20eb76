import { AgentflowError, describeError } from '#lib/domain/errors/index.ts';

/** Exit codes a script can branch on. */
export const EXIT = {
  ok: 0,
  /** The run or operation ran and failed (a failed pipeline run, a held promotion asked to succeed). */
  failed: 1,
  /** Bad input: spec, dataset, arguments. Nothing was changed. */
  invalidInput: 2,
  /** The thing named does not exist (run, version, prediction). */
  notFound: 3,
  /** Someone else changed it first (alias race, duplicate feedback). */
  conflict: 4,
  /** The local data folder is in use by another agentflow process. */
  busy: 5,
} as const;

export interface Output {
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
}

export function consoleOutput(json: boolean): Output {
  return { json, out: (text) => process.stdout.write(`${text}\n`), err: (text) => process.stderr.write(`${text}\n`) };
}

/** A plain text table: columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number | undefined | null)[][]): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => (cell === undefined || cell === null ? '' : String(cell))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (cell ?? '').padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function fixed(value: number | undefined, digits = 4): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

const NOT_FOUND = /NOT_FOUND$|^PREDICTION_NOT_FOUND$|^VERSION_NOT_FOUND$|^RUN_NOT_FOUND$|^ALIAS_NOT_FOUND$|^NO_PRODUCTION$/;
const CONFLICT = /CONFLICT$|DUPLICATE$/;
const INVALID = /INVALID|MISMATCH|MISSING|UNREADABLE|^SPEC_|_ONLY$/;

/** The exit code for an error, from its family's code. */
export function exitCodeOf(error: unknown): number {
  if (!(error instanceof AgentflowError)) return error instanceof Error && error.name === 'ZodError' ? EXIT.invalidInput : EXIT.failed;
  if (error.code === 'LOCAL_DIR_BUSY') return EXIT.busy;
  if (NOT_FOUND.test(error.code)) return EXIT.notFound;
  if (CONFLICT.test(error.code)) return EXIT.conflict;
  if (INVALID.test(error.code)) return EXIT.invalidInput;
  return EXIT.failed;
}

/** Prints an error for a person (message only) or a script (`{ error: {...} }` on stdout with --json). */
export function reportError(output: Output, error: unknown): number {
  const code = exitCodeOf(error);
  if (output.json) output.out(JSON.stringify({ error: describeError(error), exitCode: code }));
  else output.err(`error: ${error instanceof Error ? error.message : String(error)}`);
  return code;
}
