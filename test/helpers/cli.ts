/** Running `agentflow` commands in the test's own process, with their output and exit code captured. */
import { buildProgram, EXIT, type CliHooks } from '#lib/cli/index.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One `agentflow` command (`args` as typed after `agentflow`); `hooks` as `buildProgram` takes them. */
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
