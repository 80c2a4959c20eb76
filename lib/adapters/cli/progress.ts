import type { JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import type { WorkflowEvent } from '#lib/adapters/local/workflow.ts';

export interface Progress {
  onEvent(event: WorkflowEvent): void;
  onJobOutput(line: JobOutputLine): void;
  /** Clears the live line before the summary is printed. */
  finish(): void;
}

interface TrialStatus {
  epoch?: string;
  objective?: string;
  state: 'running' | 'done' | 'failed';
}

const trialOf = (jobName: string) => /-(s\d+-g\d+-t\d+)$/.exec(jobName)?.[1];

/**
 * Live progress of a run. On a terminal: one line per stage as it starts and ends, and a status
 * line rewritten in place with every running trial's epoch and objective. Elsewhere (CI, a pipe):
 * plain timestamped lines, job output included, so the log reads top to bottom.
 */
export function createProgress(options: { tty: boolean; write: (text: string) => void; verbose?: boolean }): Progress {
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;
  const trials = new Map<string, TrialStatus>();
  const stageStarts = new Map<string, number>();
  let liveShown = false;

  const clearLive = () => {
    if (options.tty && liveShown) {
      options.write('\r\x1b[2K');
      liveShown = false;
    }
  };
  const line = (text: string) => {
    clearLive();
    options.write(`${text}\n`);
    drawLive();
  };
  const drawLive = () => {
    if (!options.tty) return;
    const running = [...trials.entries()].filter(([, s]) => s.state === 'running');
    if (running.length === 0) return;
    const text = running.map(([id, s]) => `${id} ${s.epoch ? `epoch ${s.epoch}` : 'starting'}${s.objective ? ` obj ${s.objective}` : ''}`).join(' | ');
    options.write(`\r\x1b[2K${elapsed()}  ${text}`.slice(0, (process.stdout.columns ?? 160) - 1));
    liveShown = true;
  };

  return {
    onEvent(event) {
      const state = event.state ?? '';
      const isTrial = event.index !== undefined;
      switch (event.type) {
        case 'StateEntered':
          if (['Choice', 'Pass'].some((t) => state.endsWith(t))) return;
          stageStarts.set(isTrial ? `${state}#${event.index}` : state, Date.now());
          if (!isTrial && !/Failed$|Succeeded$|^IsTuningDone$/.test(state)) line(`${elapsed()}  ▶ ${state}`);
          return;
        case 'StateExited': {
          const key = isTrial ? `${state}#${event.index}` : state;
          const since = stageStarts.get(key);
          if (!isTrial && since !== undefined && !/Failed$|^IsTuningDone$|^Trials$/.test(state))
            line(`${elapsed()}  ✓ ${state} (${((Date.now() - since) / 1000).toFixed(1)}s)`);
          if (!isTrial && state === 'Trials')
            line(
              `${elapsed()}  ✓ Trials: ${[...trials.values()].filter((t) => t.state === 'done').length} done, ${[...trials.values()].filter((t) => t.state === 'failed').length} failed so far`,
            );
          return;
        }
        case 'StateRetried':
          line(`${elapsed()}  ↻ ${state} retried (${JSON.stringify(event.detail?.errorEquals ?? [])})`);
          return;
        case 'StateFailed':
          if (!isTrial)
            line(
              `${elapsed()}  ✗ ${state}: ${String(event.detail?.error ?? '')} ${String(event.detail?.cause ?? '')
                .split('\n')[0]
                .slice(0, 300)}`,
            );
          return;
        case 'ExecutionSucceeded':
          line(`${elapsed()}  run succeeded`);
          return;
        case 'ExecutionFailed':
          line(`${elapsed()}  run failed: ${String(event.detail?.error ?? '')}`);
          return;
        default:
          return;
      }
    },
    onJobOutput(output) {
      const trial = trialOf(output.jobName);
      if (trial) {
        const status = trials.get(trial) ?? { state: 'running' };
        const epoch = /epoch (\d+\/\d+)/.exec(output.line)?.[1];
        const objective = /objective (-?[\d.]+)/.exec(output.line)?.[1];
        if (epoch) status.epoch = epoch;
        if (objective) status.objective = objective;
        if (/: done\b/.test(output.line)) {
          status.state = 'done';
          line(`${elapsed()}    trial ${trial} done${status.objective ? `, objective ${status.objective}` : ''}`);
        } else if (output.stream === 'stderr' && /error|failed|diverged/i.test(output.line)) {
          status.state = 'failed';
          line(`${elapsed()}    trial ${trial}: ${output.line.slice(0, 300)}`);
        }
        trials.set(trial, status);
      }
      if (!options.tty || options.verbose) {
        if (options.tty) line(`          ${output.jobName}: ${output.line}`);
        else options.write(`${elapsed()}  [${trial ?? output.jobName}] ${output.line}\n`);
      } else drawLive();
    },
    finish() {
      clearLive();
    },
  };
}
