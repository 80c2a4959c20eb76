/**
 * The vitest projects (vitest.config.ts), by what a test file starts. A file not listed is `unit`:
 * it starts no local AWS, runs no pipeline and synthesizes no stack, so the unit project is the
 * fast loop (`npx vitest --project unit`). test/projects.test.ts holds each file to its project.
 */

/** Starts the local AWS (dynalite, s3rver: test/helpers/localAws.ts or a local session), or processes that do. */
export const INTEGRATION_TESTS = [
  'test/agent.test.ts',
  'test/awsMode.test.ts',
  'test/cliAws.test.ts',
  'test/cliServing.test.ts',
  'test/deploy.test.ts',
  'test/embed-large.test.ts',
  'test/embed.test.ts',
  'test/feedbackRows.test.ts',
  'test/iamRecorder.test.ts',
  'test/jobWorkers.test.ts',
  'test/jsonlLines.test.ts',
  'test/local.test.ts',
  'test/localLock.test.ts',
  'test/monitor.test.ts',
  'test/prepare.test.ts',
  'test/promoteCli.test.ts',
  'test/recordFailure.test.ts',
  'test/registry.test.ts',
  'test/runBudget.test.ts',
  'test/serve.test.ts',
  'test/serveHardening.test.ts',
  'test/store.test.ts',
  'test/trialJob.test.ts',
  'test/up.test.ts',
];

/** Runs a whole pipeline: the real state machine definition from start to end, locally. */
export const E2E_TESTS = [
  'test/cli.test.ts',
  'test/iam.test.ts',
  'test/loop.test.ts',
  'test/monitorLiveModel.test.ts',
  'test/pipeline.test.ts',
  'test/pipelineCategorical.test.ts',
  'test/pipelineText.test.ts',
  'test/quantize.test.ts',
  'test/report.test.ts',
  'test/schedule.test.ts',
  'test/workflow.test.ts',
];

/** Synthesizes the CDK stack. */
export const CDK_TESTS = ['test/cdk.test.ts', 'test/cdkFailureModes.test.ts', 'test/cliAwsIam.test.ts'];
