import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AwsModeError, readServedAnswer, STACK_OUTPUTS, type AwsClientOptions } from '#lib/adapters/aws/index.ts';
import { holderPath, openLocalSession, readHolder, removeHolder, writeHolder, type LocalSession } from '#lib/adapters/local/index.ts';
import { createServeContext, feedback, infer, startServer, type ServeContext } from '#lib/serve/index.ts';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import { CliError } from './errors.ts';
import { EXIT, reportError, type Output } from './output.ts';
import { versionArgument } from './promote.ts';
import type { WithSession } from './program.ts';
import { awsOnly, localOnly, openCliSession, type GlobalOptions } from './session.ts';

/**
 * A serving context over the local session. CloudWatch's embedded-metric lines are for Lambda's
 * log stream; on a terminal they would interleave with the command's own output (and break
 * `--json` for scripts), so locally they go nowhere.
 */
export function serveContextOf(session: LocalSession): ServeContext {
  const { deps } = session;
  return createServeContext(deps, { metricsSink: () => undefined });
}

/**
 * Runs a serving request in this process, or — when `agentflow serve` holds the data folder —
 * sends it to that server, which answers with the same shapes.
 */
async function viaLocalOrServer(
  options: GlobalOptions,
  path: '/infer' | '/feedback',
  body: unknown,
  inProcess: (context: ServeContext) => Promise<unknown>,
): Promise<unknown> {
  let session: LocalSession;
  try {
    session = await openLocalSession({ dir: options.dir });
  } catch (error) {
    if (!(error instanceof AgentflowError && error.code === 'LOCAL_DIR_BUSY')) throw error;
    // The holder (`serve` or `up`) answers with its own router, so traffic is routed as one stream.
    const server = await readHolder(options.dir);
    if (!server) throw error;
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).catch(
      (cause: unknown) => {
        throw new CliError(
          `the data folder is held by a server at ${server.url}, which does not answer (${(cause as Error).message}); stop it or remove ${holderPath(options.dir)}`,
          {
            code: 'SERVER_UNREACHABLE',
            cause,
          },
        );
      },
    );
    return readServedAnswer(response, `${server.url}${path}`);
  }
  const context = serveContextOf(session);
  try {
    return await inProcess(context);
  } finally {
    await context.close();
    await session.close();
  }
}

/**
 * With --aws: the request goes to the stack's Function URL (InferUrl or FeedbackUrl), signed with
 * SigV4; the same handlers answer there as in this process or the local server.
 */
async function viaFunctionUrl(globals: GlobalOptions, aws: AwsClientOptions | undefined, url: 'inferUrl' | 'feedbackUrl', body: unknown): Promise<unknown> {
  const opened = await openCliSession(globals, aws);
  try {
    const session = awsOnly(opened, url === 'inferUrl' ? 'predict --aws' : 'feedback --aws', 'without --aws it runs here');
    const target = session.stack[url];
    if (!target) {
      throw new AwsModeError(`the deployed stack has no ${STACK_OUTPUTS[url]} output; check --stack-outputs / --stack-name, or redeploy`, {
        code: 'STACK_OUTPUTS_MISSING',
        context: { output: STACK_OUTPUTS[url] },
      });
    }
    const functionArn = session.stack[url === 'inferUrl' ? 'inferFunctionArn' : 'feedbackFunctionArn'];
    return await session.clients.functionUrls.post(target, body, functionArn ? { functionArn } : {});
  } finally {
    await opened.close();
  }
}

async function recordsFrom(options: { record?: string[]; file?: string }): Promise<unknown[]> {
  const parse = (text: string, where: string) => {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new CliError(`${where} is not JSON (${(error as Error).message}); pass one record as a JSON object, e.g. --record '{"text":"…"}'`, {
        code: 'RECORDS_INVALID',
      });
    }
  };
  const records = (options.record ?? []).map((text, i) => parse(text, `--record #${i + 1}`));
  if (options.file) {
    const lines = (await readFile(options.file, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      if (line.trim()) records.push(parse(line, `${options.file} line ${i + 1}`));
    });
  }
  if (records.length === 0) throw new CliError('no records: pass --record <json> (repeatable) or --file <records.jsonl>', { code: 'RECORDS_INVALID' });
  return records;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * The reward a user typed. Checked here rather than by the server: `Number("abc")` is NaN, which
 * JSON sends as null (the server could only say "reward is null"), and `Number("")` is 0.
 */
function rewardArgument(text: string): number {
  const reward = text.trim() === '' ? Number.NaN : Number(text);
  if (!Number.isFinite(reward)) {
    throw new CliError(`reward "${text}" is not a number; send 1 for a good outcome and 0 for a bad one (any finite number for a gaussian project)`, {
      code: 'REWARD_INVALID',
      context: { reward: text },
    });
  }
  return reward;
}

/** Whether a listening address is reachable from this machine only. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function registerServingCommands(
  program: Command,
  tools: { withSession: WithSession; outputOf: (json: boolean) => Output; setExitCode: (code: number) => void; aws?: AwsClientOptions },
): void {
  const { withSession, outputOf, setExitCode } = tools;
  const global = () => program.opts<GlobalOptions>();
  /** Runs a serving request where the global options say: the deployed Function URL, or this machine. */
  const serveRequest = (url: 'inferUrl' | 'feedbackUrl', body: unknown, inProcess: (context: ServeContext) => Promise<unknown>) =>
    global().aws ? viaFunctionUrl(global(), tools.aws, url, body) : viaLocalOrServer(global(), url === 'inferUrl' ? '/infer' : '/feedback', body, inProcess);

  program
    .command('serve')
    .description('serve every project over HTTP on this machine: POST /infer and POST /feedback, the same shapes as the Function URLs')
    .option('--port <port>', 'port (0 picks a free one)', (value) => Number.parseInt(value, 10), 8080)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .action(async (options: { port: number; host: string }) =>
      withSession(
        async (session, output, globals) => {
          const local = localOnly(session, 'serve', 'the deployed stack serves from its Function URLs: `agentflow predict --aws`, `agentflow feedback --aws`');
          const server = await startServer({ context: serveContextOf(local), port: options.port, host: options.host });
          await writeHolder(globals.dir, { url: server.url, pid: process.pid });
          if (!isLoopback(options.host)) {
            // Function URLs sign every request with IAM; this server checks nothing.
            output.err(
              `warning: listening on ${options.host} lets not only this machine but anyone who can reach it call /infer and /feedback, with no authentication (anyone can send rewards that steer routing); use --host 127.0.0.1 unless this network is trusted`,
            );
          }
          if (output.json) output.out(JSON.stringify({ url: server.url }));
          else {
            output.out(`serving on ${server.url} (Ctrl-C stops)`);
            output.out(`  curl -s ${server.url}/infer -d '{"project":"<project>","records":[{…}]}'`);
            output.out(`  curl -s ${server.url}/feedback -d '{"project":"<project>","predictionId":"<id>","reward":1}'`);
          }
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
          await server.close();
          await removeHolder(globals.dir);
        },
        { attach: false },
      )(),
    );

  program
    .command('predict')
    .description("predict every task for records with the project's serving models (routed like live traffic); with --aws through the stack's signed InferUrl")
    .requiredOption('-p, --project <name>', 'project name')
    .option('--record <json>', 'one raw record as JSON (repeatable)', collect)
    .option('--file <records.jsonl>', 'records, one JSON object per line')
    .option('--version <n>', 'pin a version of the serving set')
    .action(async (options: { project: string; record?: string[]; file?: string; version?: string }) => {
      const output = outputOf(global().json);
      try {
        const version = options.version === undefined ? undefined : versionArgument(options.version, options.project);
        const body = { project: options.project, records: await recordsFrom(options), ...(version === undefined ? {} : { version }) };
        const answer = await serveRequest('inferUrl', body, (context) => infer(body, context));
        output.out(JSON.stringify(answer, null, output.json ? 0 : 2));
        setExitCode(EXIT.ok);
      } catch (error) {
        setExitCode(reportError(output, error));
      }
    });

  program
    .command('feedback')
    .description('record the reward of a prediction (exactly once); the router learns from it; with --aws through the signed FeedbackUrl')
    .requiredOption('-p, --project <name>', 'project name')
    .argument('<predictionId>')
    .argument('<reward>', '0 or 1 (or a real number for gaussian projects)')
    .action(async (predictionId: string, rewardText: string, options: { project: string }) => {
      const output = outputOf(global().json);
      try {
        const reward = rewardArgument(rewardText);
        const body = { project: options.project, predictionId, reward };
        const answer = await serveRequest('feedbackUrl', body, (context) => feedback(body, context));
        output.out(output.json ? JSON.stringify(answer) : `recorded reward ${reward} for ${predictionId}`);
        setExitCode(EXIT.ok);
      } catch (error) {
        setExitCode(reportError(output, error));
      }
    });
}
