import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import { PRODUCTION, rollbackProduction } from '#lib/pipeline/promote/promote.ts';
import { ModelCard } from '#lib/domain/run/index.ts';
import type { TrialRow } from '#lib/pipeline/reward/reward.ts';
import { writeRunReport } from '#lib/adapters/report/index.ts';
import { callerPolicyFor, type AwsClientOptions } from '#lib/adapters/aws/index.ts';
import { PROBLEMS_FILE } from '#lib/pipeline/prepare/index.ts';
import { newRunId, nextFireTime, resumePipelineLocally, runPipelineLocally, runScheduleLoop, ScheduleError } from '#lib/adapters/local/index.ts';
import { parseSpecJson } from '#lib/domain/spec/index.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { resumeOnAws, runOnAws, setSchedules, showSchedules } from './aws.ts';
import { DEMO_SPEC, runDemo, runDriftDemo } from './demo.ts';
import { promoteVersion } from './promote.ts';
import { registerServingCommands } from './serving.ts';
import { registerUpCommand } from './up.ts';
import { consoleOutput, EXIT, fixed, reportError, table, type Output } from './output.ts';
import { createProgress } from './progress.ts';
import { awsOnly, localOnly, openCliSession, type CliSession, type GlobalOptions } from './session.ts';
import { hyperparametersText, summarizeRun } from './summary.ts';

export type { GlobalOptions } from './session.ts';

/** Reports are written on this machine, beside the local data: `<dir>/reports/<runId>.html` (with --aws too, from the deployed data). */
export function reportPath(session: CliSession, runId: string): string {
  return join(session.reportsDir, `${runId}.html`);
}

/**
 * Copies the run's full list of dataset problems, if Prepare wrote one, to
 * `<dir>/problems/<runId>.txt`, beside the reports, where a user looks for it; returns that path.
 */
async function saveProblemsList(session: CliSession, runId: string): Promise<string | undefined> {
  const key = keys.runFile(runId, PROBLEMS_FILE);
  if (!(await session.deps.store.exists(key))) return undefined;
  const path = join(dirname(session.reportsDir), 'problems', `${runId}.txt`);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, await session.deps.store.getBytes(key));
  return path;
}

export type WithSession = (
  action: (session: CliSession, output: Output, options: GlobalOptions) => Promise<number | void>,
  /** `attach: false` for commands that must own the data folder (`serve`, `up`): they do not work through a running `up`. */
  sessionOptions?: { attach?: boolean },
) => () => Promise<void>;

export interface CliHooks {
  /** Where exit codes go (process.exitCode by default; tests capture them). */
  setExitCode?: (code: number) => void;
  output?: (json: boolean) => Output;
  tty?: boolean;
  /** How `--aws` makes its clients: stand-in endpoints and credentials (tests), a recording middleware (the IAM test). */
  aws?: AwsClientOptions;
}

/**
 * The `agentflow` command line. Every command works on the embedded local AWS persisted under
 * `--dir` (default `.agentflow`), so runs, models and the tuner's policy survive between commands.
 */
export function buildProgram(hooks: CliHooks = {}): Command {
  const setExitCode = hooks.setExitCode ?? ((code: number) => (process.exitCode = code));
  const outputOf = hooks.output ?? consoleOutput;
  /** Live progress on a terminal, plain lines elsewhere; on stderr when stdout carries --json. */
  const progressFor = (output: Output, options: { verbose?: boolean; tty?: boolean } = {}) =>
    createProgress({
      tty: options.tty ?? hooks.tty ?? (process.stdout.isTTY === true && !output.json),
      verbose: options.verbose ?? false,
      write: (text) => (output.json ? process.stderr.write(text) : process.stdout.write(text)),
    });
  const program = new Command('agentflow')
    .description('Adapt frozen models to many tasks at once, tune the task weights with RL, and serve the result.')
    .addOption(new Option('--dir <folder>', 'where the local AWS stand-ins keep their data').default('.agentflow'))
    .option('--json', 'machine-readable output on stdout', false)
    .option('--aws', 'work on the deployed stack (its bucket, tables, state machine, Function URLs and schedules) instead of the local stand-ins', false)
    .option('--stack-outputs <file>', 'with --aws: the file `cdk deploy --outputs-file` wrote')
    .option('--stack-name <name>', 'with --aws: the stack to pick from that file, or to look up with CloudFormation (default Agentflow)')
    .showHelpAfterError()
    // Usage errors throw instead of exiting, so the entry point maps them to EXIT.invalidInput.
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  $ agentflow run examples/penguins/spec.json
  $ agentflow runs ls -p penguins
  $ agentflow models ls -p penguins --json
  $ agentflow predict -p penguins --record '{"island":"Biscoe","bill_length_mm":47,"bill_depth_mm":15,"flipper_length_mm":215}'
  $ agentflow models ls -p penguins --aws --stack-outputs stack-outputs.json

Exit codes: 0 ok, 1 failed, 2 invalid input, 3 not found, 4 conflict, 5 data folder busy.`,
    );

  /** Runs an action against the local stand-ins or (--aws) the deployed stack, mapping errors to exit codes. */
  const withSession: WithSession =
    (action, sessionOptions = {}) =>
    async () => {
      const options = program.opts<GlobalOptions>();
      const output = outputOf(options.json);
      let session: CliSession | undefined;
      try {
        session = await openCliSession(options, hooks.aws, sessionOptions);
        setExitCode((await action(session, output, options)) ?? EXIT.ok);
      } catch (error) {
        setExitCode(reportError(output, error));
      } finally {
        await session?.close();
      }
    };

  program
    .command('run')
    .description('run the whole pipeline on a spec: prepare, embed, tune, export, promote')
    .argument('<spec>', 'path to spec.json (dataset paths are relative to it)')
    .option('--run-id <id>', 'use this run id instead of a generated one')
    .option('-v, --verbose', 'show every job output line', false)
    .action(async (specPath: string, options: { runId?: string; verbose: boolean }) =>
      withSession(async (session, output) => {
        const progress = progressFor(output, { verbose: options.verbose });
        // --aws uploads the local datasets, starts the deployed execution and follows it.
        if (session.where === 'aws') return runOnAws(session, { specPath, output, progress, runId: options.runId ?? newRunId() });
        const { runId, staged, result } = await runPipelineLocally(session.local, {
          specPath,
          ...(options.runId ? { runId: options.runId } : {}),
          onEvent: progress.onEvent,
          onJobOutput: progress.onJobOutput,
        });
        progress.finish();
        const summary = await summarizeRun(session.deps, staged.spec.project, runId);
        const report = await writeRunReport(session.deps, { project: staged.spec.project, runId, path: reportPath(session, runId) });
        const problems = result.status === 'SUCCEEDED' ? undefined : await saveProblemsList(session, runId);
        if (output.json) {
          output.out(
            JSON.stringify({
              runId,
              status: result.status,
              error: result.error,
              cause: result.cause,
              summary,
              report: { uri: report.uri, path: report.path },
              ...(problems ? { problems } : {}),
            }),
          );
        } else output.out(`${summary.text}\n  report: ${report.path}${problems ? `\n  every dataset problem: ${problems}` : ''}`);
        return result.status === 'SUCCEEDED' ? EXIT.ok : EXIT.failed;
      })(),
    );

  program
    .command('demo')
    .description('the whole loop on the shipped demo data (what `npm start` runs): a run, baselines, a served prediction and its feedback')
    .option('--spec <spec>', 'another spec to demo', DEMO_SPEC)
    .option('-v, --verbose', 'show every job output line', false)
    .option('--drift', 'then watch the loop close: shifted traffic, detection, a retraining run, a canary, traffic moving to it', false)
    .action(async (options: { spec: string; verbose: boolean; drift: boolean }) =>
      withSession(async (session, output) => {
        const local = localOnly(session, 'demo', 'on the deployed stack, run a spec with `agentflow run <spec.json> --aws`');
        const progress = progressFor(output, { verbose: options.verbose });
        const demo = { output, progress, specPath: options.spec, reportPath: (runId: string) => reportPath(session, runId) };
        const code = await runDemo(local, demo);
        return code === EXIT.ok && options.drift
          ? runDriftDemo(local, { ...demo, verbose: options.verbose, progress: progressFor(output, { verbose: options.verbose }) })
          : code;
      })(),
    );

  const schedule = program
    .command('schedule')
    .description(
      "retrain on a schedule on this machine (the spec's `schedule`, or --every / --cron), and between runs let the monitor retrain when online reward drops or inputs drift; `schedule show|enable|disable --aws` manage the deployed stack's schedules",
    )
    .argument('<spec>', 'path to spec.json; its files are re-read at every run, so new data is picked up')
    .option('--every <rate>', 'a rate such as "7 days" or "30 minutes" (overrides the spec)')
    .option('--cron <expression>', 'an EventBridge cron in UTC, e.g. "0 3 ? * MON *" (overrides the spec)')
    .option('--now', 'run once immediately, then follow the schedule', false)
    .option('--max-runs <n>', 'stop after this many runs', (value) => Number.parseInt(value, 10))
    .option('--monitor-every <minutes>', 'how often to check reward and drift between runs (0: never)', (value) => Number(value), 5)
    .action(async (specPath: string, options: { every?: string; cron?: string; now: boolean; maxRuns?: number; monitorEvery: number }) =>
      withSession(async (session, output) => {
        const local = localOnly(
          session,
          'schedule <spec>',
          'the deployed stack retrains on its EventBridge schedules (the agentflow:schedules context): `agentflow schedule show|enable|disable --aws`',
        );
        const { readFile } = await import('node:fs/promises');
        const spec = parseSpecJson(await readFile(specPath, 'utf8'), { source: specPath });
        if (options.every && options.cron) throw new ScheduleError('give --every or --cron, not both');
        const schedule = options.every ? { rate: options.every } : options.cron ? { cron: options.cron } : spec.schedule;
        if (!schedule) throw new ScheduleError(`${specPath} has no "schedule"; add one (e.g. "schedule": { "rate": "7 days" }) or pass --every / --cron`);
        // Validate before waiting: a bad expression should fail now, not at the first fire time.
        nextFireTime(schedule, new Date());
        const progress = progressFor(output, { tty: false });
        const controller = new AbortController();
        const stop = () => controller.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          const runs = await runScheduleLoop(local, {
            specPath,
            schedule,
            runNow: options.now,
            ...(options.maxRuns === undefined ? {} : { maxRuns: options.maxRuns }),
            monitorEveryMs: options.monitorEvery * 60_000,
            signal: controller.signal,
            onEvent: progress.onEvent,
            onRunStart: ({ trigger, reason, at }) => !output.json && output.out(`${at.toISOString()}  starting a ${trigger} run of ${spec.project}: ${reason}`),
            onRunEnd: ({ runId, result }) =>
              output.json ? output.out(JSON.stringify({ runId, status: result.status })) : output.out(`run ${runId}: ${result.status}`),
            onWait: (until) => !output.json && output.out(`next check at ${until.toISOString()} (Ctrl-C stops)`),
          });
          return runs.every((r) => r.result.status === 'SUCCEEDED') ? EXIT.ok : EXIT.failed;
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      })(),
    );

  program
    .command('resume')
    .description('continue a failed or interrupted run from where it stopped: finished stages and trials are not redone, cached features are reused')
    .argument('<runId>')
    .requiredOption('-p, --project <name>', 'project name')
    .option('-v, --verbose', 'show every job output line', false)
    .option('--restart', 'with --aws: start a new execution even where a redrive applies (a redrive keeps the definition the execution started with)', false)
    .action(async (runId: string, options: { project: string; verbose: boolean; restart: boolean }) =>
      withSession(async (session, output) => {
        const progress = progressFor(output, { verbose: options.verbose });
        // --aws redrives the run's execution, or starts it again where a redrive cannot help (lib/adapters/aws/resume.ts).
        if (session.where === 'aws') return resumeOnAws(session, { project: options.project, runId, restart: options.restart, output, progress });
        const result = await resumePipelineLocally(session.local, {
          project: options.project,
          runId,
          onEvent: progress.onEvent,
          onJobOutput: progress.onJobOutput,
        });
        progress.finish();
        const summary = await summarizeRun(session.deps, options.project, runId);
        const report = await writeRunReport(session.deps, { project: options.project, runId, path: reportPath(session, runId) });
        if (output.json)
          output.out(
            JSON.stringify({ runId, status: result.status, error: result.error, cause: result.cause, summary, report: { uri: report.uri, path: report.path } }),
          );
        else output.out(`${summary.text}\n  report: ${report.path}`);
        return result.status === 'SUCCEEDED' ? EXIT.ok : EXIT.failed;
      })(),
    );

  program
    .command('report')
    .description("write a run's HTML report with plots (reward per generation, λ trajectories, metrics per trial, promotion, traffic)")
    .argument('<runId>')
    .requiredOption('-p, --project <name>', 'project name')
    .option('-o, --out <file>', 'where to write it (default <dir>/reports/<runId>.html)')
    .action(async (runId: string, options: { project: string; out?: string }) =>
      withSession(async (session, output) => {
        const report = await writeRunReport(session.deps, { project: options.project, runId, path: options.out ?? reportPath(session, runId) });
        output.out(output.json ? JSON.stringify({ uri: report.uri, path: report.path }) : `report written to ${report.path} (and ${report.uri})`);
      })(),
    );

  const deployedOnly = 'locally, `agentflow schedule <spec>` retrains on a schedule while it runs';
  schedule
    .command('show')
    .description("the deployed stack's schedules (with --aws): retraining per project and the monitor, with their state")
    .option('-p, --project <name>', 'only the schedules that retrain this project')
    .action(async (options: { project?: string }) =>
      withSession(async (session, output) => showSchedules(awsOnly(session, 'schedule show', deployedOnly), { output, ...options }))(),
    );
  for (const [verb, state] of [
    ['enable', 'ENABLED'],
    ['disable', 'DISABLED'],
  ] as const) {
    schedule
      .command(verb)
      .description(`${verb} deployed schedules (with --aws): a project's retraining schedules, or one schedule by name`)
      .option('-p, --project <name>', 'the project whose retraining schedules change')
      .option('--name <schedule>', 'one schedule, as `schedule show --aws` lists it (the monitor too)')
      .action(async (options: { project?: string; name?: string }) =>
        withSession(async (session, output) => setSchedules(awsOnly(session, `schedule ${verb}`, deployedOnly), { output, state, ...options }))(),
      );
  }

  program
    .command('caller-policy')
    .description("the IAM policy a user of --aws attaches: docs/caller-policy.json filled with the deployed stack's names (with --aws)")
    .action(async () =>
      withSession(async (session, output) => {
        const policy = await callerPolicyFor(awsOnly(session, 'caller-policy', 'the template with placeholders is docs/caller-policy.json').stack);
        output.out(JSON.stringify(policy, null, output.json ? 0 : 2));
      })(),
    );

  const runs = program.command('runs').description('list and inspect runs');
  runs
    .command('ls')
    .description("a project's runs, newest first")
    .requiredOption('-p, --project <name>', 'project name (from the spec)')
    .action(async (options: { project: string }) =>
      withSession(async (session, output) => {
        const list = await session.deps.runLog.listRuns(options.project);
        if (output.json) output.out(JSON.stringify(list));
        else if (list.length === 0) output.out(`no runs of ${options.project} yet; start one with: agentflow run <spec.json>`);
        else
          output.out(
            table(
              ['run', 'status', 'stage', 'started', 'finished', 'error'],
              list.map((r) => [r.runId, r.status, r.stage, r.startedAt, r.finishedAt, r.error?.message.split('\n')[0].slice(0, 80)]),
            ),
          );
      })(),
    );
  runs
    .command('show')
    .description('one run: status, decisions, trials and the resulting model')
    .argument('<runId>')
    .requiredOption('-p, --project <name>', 'project name')
    .action(async (runId: string, options: { project: string }) =>
      withSession(async (session, output) => {
        const summary = await summarizeRun(session.deps, options.project, runId);
        output.out(output.json ? JSON.stringify(summary) : summary.text);
      })(),
    );

  const models = program.command('models').description('registered model versions and the production alias');
  models
    .command('ls')
    .description("a project's versions with their holdout metrics")
    .requiredOption('-p, --project <name>', 'project name')
    .action(async (options: { project: string }) =>
      withSession(async (session, output) => {
        const { registry } = session.deps;
        const [versions, production, serving] = await Promise.all([
          registry.listVersions(options.project),
          registry.getAlias(options.project, PRODUCTION),
          registry.getServingSet(options.project),
        ]);
        if (output.json) {
          output.out(JSON.stringify({ production: production?.version ?? null, serving: serving ?? null, versions }));
          return;
        }
        if (versions.length === 0) {
          output.out(`no versions of ${options.project} yet; a run registers one at its Export stage`);
          return;
        }
        output.out(
          table(
            ['version', 'status', 'run', 'created', 'holdout metrics', ''],
            versions.map((v) => [
              v.version,
              v.status,
              v.lineage.runId,
              v.createdAt,
              Object.entries(v.lineage.metrics)
                .map(
                  ([task, m]) =>
                    `${task} ${Object.entries(m)
                      .filter(([k]) => !k.startsWith('label'))
                      .slice(0, 2)
                      .map(([k, x]) => `${k}=${fixed(x, 3)}`)
                      .join(' ')}`,
                )
                .join('; '),
              production?.version === v.version ? '← production' : serving?.challengers.some((c) => c.version === v.version) ? '← challenger' : '',
            ]),
          ),
        );
      })(),
    );
  models
    .command('show')
    .description('one version: lineage, λ, metrics, model card')
    .argument('<version>', 'version number', (value) => Number.parseInt(value, 10))
    .requiredOption('-p, --project <name>', 'project name')
    .action(async (version: number, options: { project: string }) =>
      withSession(async (session, output) => {
        const registered = await session.deps.registry.getVersion(options.project, version);
        const card = registered.lineage.cardUri ? await session.deps.store.getJson(registered.lineage.cardUri, ModelCard) : undefined;
        if (output.json) output.out(JSON.stringify({ ...registered, card }));
        else {
          output.out(`${options.project} version ${version} — ${registered.status}${registered.statusReason ? ` (${registered.statusReason})` : ''}`);
          output.out(`  run ${registered.lineage.runId}, model ${registered.lineage.artifactUri} (sha256 ${registered.lineage.sha256.slice(0, 12)}…)`);
          output.out(
            `  λ ${Object.entries(registered.lineage.lambda)
              .map(([t, x]) => `${t}=${fixed(x, 3)}`)
              .join(' ')}`,
          );
          if (card) {
            output.out(
              `  ${card.architecture} on a ${card.encoder.kind} encoder (${card.encoder.dimension} dims); holdout objective ${fixed(card.holdoutObjective)}; latency ${fixed(card.latencyMs.single, 2)} ms (1 record), ${fixed(card.latencyMs.batch64, 2)} ms (64)`,
            );
            if (card.hyperparameters) output.out(`  trained with ${hyperparametersText(card.hyperparameters)}`);
            output.out(
              table(
                ['task', 'split', 'metrics'],
                card.tasks.flatMap((t) =>
                  (['validation', 'holdout'] as const).map((split) => [
                    t.name,
                    split,
                    Object.entries(card.metrics[split][t.name] ?? {})
                      .map(([k, x]) => `${k}=${fixed(x, 4)}`)
                      .join(' '),
                  ]),
                ),
              ),
            );
          }
        }
      })(),
    );
  models
    .command('promote')
    .description("move production to a version (conditional: fails if someone moved it first); the version's file must pass its sha256 check")
    .argument('<version>', 'version number (see `models ls`)')
    .requiredOption('-p, --project <name>', 'project name')
    .option('--force', 'promote a version the gate rejected', false)
    .action(async (versionText: string, options: { project: string; force: boolean }) =>
      withSession(async (session, output) => {
        const moved = await promoteVersion(session.deps, { project: options.project, versionText, force: options.force, output });
        output.out(
          output.json
            ? JSON.stringify(moved)
            : `production of ${options.project} is now version ${moved.version}${moved.previous ? ` (was ${moved.previous})` : ''}`,
        );
      })(),
    );
  models
    .command('rollback')
    .description('move production back to the version it replaced')
    .requiredOption('-p, --project <name>', 'project name')
    .action(async (options: { project: string }) =>
      withSession(async (session, output) => {
        const rolled = await rollbackProduction(session.deps, options.project);
        output.out(
          output.json
            ? JSON.stringify(rolled)
            : `production of ${options.project} rolled back to version ${rolled.version}${rolled.previous ? ` (from ${rolled.previous})` : ''}`,
        );
      })(),
    );

  program
    .command('trials')
    .description("a run's trials with λ, reward and status")
    .argument('<runId>')
    .requiredOption('-p, --project <name>', 'project name')
    .action(async (runId: string, options: { project: string }) =>
      withSession(async (session, output) => {
        const trials = await session.deps.rewards.listTrials<TrialRow>(options.project, runId);
        if (output.json) output.out(JSON.stringify(trials));
        else
          output.out(
            table(
              ['trial', 'gen', 'status', 'reward', 'λ'],
              trials.map((t) => [
                t.trialId,
                t.row.generation,
                t.row.status,
                fixed(t.row.reward ?? undefined),
                Object.entries(t.row.lambda)
                  .map(([k, x]) => `${k}=${fixed(x, 2)}`)
                  .join(' '),
              ]),
            ),
          );
      })(),
    );

  registerUpCommand(program, { withSession, progressFor });
  registerServingCommands(program, { withSession, outputOf, setExitCode, ...(hooks.aws ? { aws: hooks.aws } : {}) });
  return program;
}
