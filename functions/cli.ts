/** The `agentflow` command (`npm run agentflow -- …`, or `npx agentflow …`). */
import { CommanderError } from 'commander';
import { buildProgram, EXIT } from '#lib/adapters/cli/index.ts';

// The SDK's notice that it will drop Node 20 would precede every command's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  // Commander has printed the usage problem (or the help/version it was asked for).
  if (!(error instanceof CommanderError)) throw error;
  process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.invalidInput;
}
