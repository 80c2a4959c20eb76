/**
 * Headless Chromium for tests that must see a page render: Debian's `chromium` package, driven
 * from the command line (`--dump-dom`, `--screenshot`). A missing browser fails the test with the
 * install command; it is never a reason to skip.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function requireChromium(): string {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`headless Chromium is not installed at ${CHROMIUM_PATH}: run \`apt-get update && apt-get install -y chromium\` (or set CHROMIUM_PATH)`);
  }
  return CHROMIUM_PATH;
}

// No network, no first-run UI, no background services: the page must render from the file alone.
const QUIET_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--hide-scrollbars',
  '--force-device-scale-factor=1',
];

async function runChromium(args: string[], options: { timeoutMs: number }): Promise<string> {
  const binary = requireChromium();
  const profile = await mkdtemp(join(tmpdir(), 'agentflow-chromium-'));
  try {
    return await new Promise<string>((resolve, reject) => {
      execFile(
        binary,
        [...QUIET_FLAGS, `--user-data-dir=${profile}`, ...args],
        { timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error) reject(new Error(`chromium ${args.join(' ')} failed: ${error.message}\n${stderr.slice(-2000)}`, { cause: error }));
          else resolve(stdout);
        },
      );
    });
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The DOM after the page's scripts ran (virtual time lets timers and rendering settle). */
export function dumpDom(file: string, options: { windowSize?: string; virtualTimeBudgetMs?: number; timeoutMs?: number } = {}): Promise<string> {
  return runChromium(
    [
      `--window-size=${options.windowSize ?? '1280,2400'}`,
      `--virtual-time-budget=${options.virtualTimeBudgetMs ?? 5000}`,
      '--dump-dom',
      pathToFileURL(file).href,
    ],
    { timeoutMs: options.timeoutMs ?? 60_000 },
  );
}

export async function screenshot(
  file: string,
  out: string,
  options: { windowSize?: string; virtualTimeBudgetMs?: number; timeoutMs?: number } = {},
): Promise<void> {
  await runChromium(
    [
      `--window-size=${options.windowSize ?? '1280,2400'}`,
      `--virtual-time-budget=${options.virtualTimeBudgetMs ?? 5000}`,
      `--screenshot=${out}`,
      pathToFileURL(file).href,
    ],
    { timeoutMs: options.timeoutMs ?? 60_000 },
  );
}

/** The attributes of every element with the given tag, keyed by its id (a small parser for dumped DOM, not general HTML). */
export function elementsById(html: string, tag: string): Map<string, Record<string, string>> {
  const found = new Map<string, Record<string, string>>();
  for (const match of html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'gi'))) {
    const attributes: Record<string, string> = {};
    for (const attribute of match[1]!.matchAll(/([\w:-]+)="([^"]*)"/g)) attributes[attribute[1]!] = attribute[2]!;
    if (attributes.id) found.set(attributes.id, attributes);
  }
  return found;
}

export function bodyAttributes(html: string): Record<string, string> {
  const match = /<body\b([^>]*)>/i.exec(html);
  const attributes: Record<string, string> = {};
  for (const attribute of (match?.[1] ?? '').matchAll(/([\w:-]+)="([^"]*)"/g)) attributes[attribute[1]!] = attribute[2]!;
  return attributes;
}
