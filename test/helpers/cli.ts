/** The `agentflow` command line run in the test's process, with its output and exit code captured. */
import { buildProgram, EXIT, type CliHooks } from '#lib/adapters/cli/index.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command; `args` are what follows `agentflow` (put `--dir` in them); `hooks.aws` points `--aws` clients at stand-ins. */
export async function runCli(args: string[], hooks: Pick<CliHooks, 'aws'> = {}): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  let code: number = EXIT.ok;
  const program = buildProgram({
    tty: false,
    setExitCode: (value) => (code = value),
    output: (json) => ({ json, out: (text) => out.push(text), err: (text) => err.push(text) }),
    ...hooks,
  });
  await program.parseAsync(['node', 'agentflow', ...args]);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}
