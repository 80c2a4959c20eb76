/**
 * The CDK app (`cdk.json`: `npx tsx cdk/app.ts`). Reads the context once, refuses to synthesize
 * with an entry point missing, and checks the stack with cdk-nag's AWS Solutions rules: any
 * finding not acknowledged in `nag.ts` fails `cdk synth`.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readContext } from './context.ts';
import { DeployError } from './errors.ts';
import { missingEntries } from './functions.ts';
import { AgentflowStack } from './stack.ts';

export const DEFAULT_STACK_NAME = 'Agentflow';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const app = new App();
const missing = missingEntries(projectRoot);
if (missing.length) {
  throw new DeployError(`cannot synthesize: entry point(s) missing: ${missing.join(', ')}. Each Lambda function and Batch job of the stack needs its file`, {
    code: 'ENTRY_MISSING',
    context: { missing },
  });
}
const stackName = (app.node.tryGetContext('agentflow:stackName') as string | undefined) ?? DEFAULT_STACK_NAME;
new AgentflowStack(app, stackName, {
  settings: readContext((key) => app.node.tryGetContext(key)),
  projectRoot,
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
