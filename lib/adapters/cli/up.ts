import type { Command } from 'commander';
import { describeError } from '#lib/domain/errors/index.ts';
import { startUp, type RunningUp, type UpRun } from '#lib/adapters/local/index.ts';
import type { MonitorReport } from '#lib/serve/index.ts';
import { EXIT, fixed, type Output } from './output.ts';
import type { WithSession } from './program.ts';
import type { createProgress } from './progress.ts';
import { localOnly } from './session.ts';

type ProgressFor = (output: Output, options?: { verbose?: boolean; tty?: boolean }) => ReturnType<typeof createProgress>;

/** One line per project and monitor pass: each version's online reward and drift, and what it started. */
export function monitorLines(report: MonitorReport): string[] {
  return report.projects.map((project) => {
    if (project.error) return `${report.time}  monitor ${project.project}: ${project.error.message}`;
    const versions = project.versions.map((v) => {
      const reward = v.reward.mean === null ? 'no feedback' : `reward ${fixed(v.reward.mean, 3)} (n=${v.reward.count})`;
      const drift = 'maxPsi' in v.drift ? `psi ${fixed(v.drift.maxPsi, 3)}` : 'psi –';
      return `v${v.version}${v.production ? '*' : ''} ${reward}, ${drift}`;
    });
    const retrain = project.retrain?.started ? `; retraining: ${project.retrain.reason}` : '';
    return `${report.time}  monitor ${project.project}: ${versions.join(' | ')}${retrain}`;
  });
}

const runLine = (run: UpRun) =>
  `${run.endedAt.toISOString()}  run ${run.runId} (${run.project}, ${run.trigger}): ${run.result.status}${run.result.error ? ` ${run.result.error}` : ''}`;

/**
 * Waits for Ctrl-C (or SIGTERM), then stops `up` between stages. A second Ctrl-C leaves at once
 * (jobs included); the run in flight is resumable either way, as every stage is idempotent.
 */
async function untilInterrupted(up: RunningUp, output: Output): Promise<void> {
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const leave = () => {
    output.err('leaving now; `agentflow resume <runId> -p <project>` continues an unfinished run');
    process.exit(130);
  };
  process.once('SIGINT', leave);
  output.err(
    'stopping: no new monitor pass or run starts; a run in flight stops before its next stage, resumable with `agentflow resume` (Ctrl-C again leaves at once)',
  );
  try {
    await up.stop();
  } finally {
    process.off('SIGINT', leave);
  }
}

export function registerUpCommand(program: Command, tools: { withSession: WithSession; progressFor: ProgressFor }): void {
  program
    .command('up')
    .description(
      "the deployed stack on this machine, in one process: serve /infer and /feedback, run the monitor on its interval, fire the specs' schedules and run the retraining they and the monitor start; promotions reach the router within seconds. Other commands (predict, feedback, models, runs, report…) work on the same --dir through it",
    )
    .argument('[specs...]', "specs whose schedules fire and whose files retraining re-reads (other served projects retrain from production's stored spec)")
    .option('--port <port>', 'port (0 picks a free one)', (value) => Number.parseInt(value, 10), 8080)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option(
      '--monitor-every <minutes>',
      'how often the monitor checks online reward and drift, as in `schedule` (fractions allowed: 0.1 is every 6 s; 0: never)',
      (value) => Number(value),
      5,
    )
    .option('-v, --verbose', 'show every job output line', false)
    .action(async (specPaths: string[], options: { port: number; host: string; monitorEvery: number; verbose: boolean }) =>
      tools.withSession(
        async (session, output) => {
          const local = localOnly(session, 'up', 'the deployed stack already runs serving, the monitor and the schedules');
          const progress = tools.progressFor(output, { verbose: options.verbose, tty: false });
          const say = (line: string) => (output.json ? undefined : output.out(line));
          const up = await startUp(local, {
            specPaths,
            port: options.port,
            host: options.host,
            monitorEveryMs: options.monitorEvery * 60_000,
            onMonitor: (report) => (output.json ? output.out(JSON.stringify({ monitor: report })) : monitorLines(report).forEach(say)),
            onRunStart: (run) => say(`${run.startedAt.toISOString()}  starting ${run.trigger} run ${run.runId} of ${run.project}: ${run.reason}`),
            onRunEnd: (run) =>
              output.json
                ? output.out(JSON.stringify({ run: { runId: run.runId, project: run.project, trigger: run.trigger, status: run.result.status } }))
                : say(runLine(run)),
            onEvent: progress.onEvent,
            onJobOutput: progress.onJobOutput,
            onError: (error) => output.err(`up: ${describeError(error).message} (serving goes on; the next pass tries again)`),
          });
          if (output.json) output.out(JSON.stringify({ url: up.url }));
          else {
            say(
              `up on ${up.url}: /infer and /feedback; the monitor every ${options.monitorEvery} min${specPaths.length ? `; schedules of ${specPaths.join(', ')}` : ''} (Ctrl-C stops)`,
            );
            say(`  in another terminal, on the same --dir: agentflow models ls -p <project> | predict -p <project> --record '{…}' | runs ls -p <project>`);
          }
          await untilInterrupted(up, output);
          return up.runs.every((run) => run.result.status === 'SUCCEEDED') ? EXIT.ok : EXIT.failed;
        },
        { attach: false },
      )(),
    );
}
