/**
 * `npm test`'s pretest step: test/report.test.ts renders the run report in headless Chromium
 * (Debian's `chromium` package), so a fresh machine's `npm ci && npm test` needs it. Present: do
 * nothing. Missing: install it when this process can (root, with apt-get), or stop with the one
 * command to run — before the type check and the suite spend minutes ending in that one failure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CHROMIUM_PATH } from '../test/helpers/chromium.ts';

const INSTALL = 'apt-get update && apt-get install -y --no-install-recommends chromium';

function fail(message: string): never {
  process.stderr.write(`pretest: ${message}\n`);
  process.exit(1);
}

function run(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return result.status === 0;
}

if (!existsSync(CHROMIUM_PATH)) {
  const why = `headless Chromium, which test/report.test.ts drives, is not installed at ${CHROMIUM_PATH}`;
  const hasAptGet = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (process.env.CHROMIUM_PATH !== undefined) fail(`${why} (CHROMIUM_PATH); point CHROMIUM_PATH at a Chromium binary, or unset it to use Debian's package`);
  if (!hasAptGet) fail(`${why}, and this is not a Debian-like system with apt-get; install Chromium and set CHROMIUM_PATH to its binary`);
  if (process.getuid?.() !== 0) fail(`${why}; install it with: sudo sh -c '${INSTALL}'`);
  process.stdout.write(`pretest: ${why}; installing Debian's chromium (${INSTALL})\n`);
  if (!run('apt-get', ['update', '-qq']) || !run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'])) {
    fail(`installing chromium failed (see apt-get's output above); run: ${INSTALL}`);
  }
  if (!existsSync(CHROMIUM_PATH)) fail(`apt-get installed chromium, but ${CHROMIUM_PATH} is still missing; set CHROMIUM_PATH to its binary`);
  process.stdout.write(`pretest: chromium installed at ${CHROMIUM_PATH}\n`);
}
