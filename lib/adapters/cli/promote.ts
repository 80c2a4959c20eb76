import { DeployError } from '#lib/pipeline/export/errors.ts';
import { loadVerifiedModel, moveProduction, PRODUCTION, type DeployDependencies } from '#lib/pipeline/promote/promote.ts';
import type { Output } from './output.ts';
import { CliError } from './errors.ts';

/**
 * The version a user typed, as a version number: digits only, no sign, no leading zero. `2.5`
 * must not become 2, nor `abc` NaN, so the text is checked rather than parsed leniently.
 */
export function versionArgument(text: string, project: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(text)) {
    throw new CliError(`version "${text}" is not a version number: versions are whole numbers from 1 (run \`agentflow models ls -p ${project}\` to see them)`, {
      code: 'VERSION_INVALID',
      context: { project, version: text },
    });
  }
  return Number(text);
}

/**
 * `models promote`: moves production to a version after the checks a person could not see from
 * the command line — the version exists, the gate did not reject it (unless `force`, which warns),
 * and its file still has the sha256 it was registered with (a changed file would be refused by
 * every server, answering 503 until a rollback) — then the conditional alias move.
 */
export async function promoteVersion(
  deps: DeployDependencies,
  options: { project: string; versionText: string; force: boolean; output: Output },
): Promise<{ version: number; previous?: number }> {
  const { project, output } = options;
  const version = versionArgument(options.versionText, project);
  const registered = await deps.registry.findVersion(project, version);
  if (!registered) {
    throw new CliError(`${project} has no version ${version}; run \`agentflow models ls -p ${project}\` to see its versions`, {
      code: 'VERSION_NOT_FOUND',
      context: { project, version },
    });
  }
  const current = await deps.registry.getAlias(project, PRODUCTION);
  const stays = current ? `production stays at version ${current.version}` : `${project} stays without a production version`;
  if (registered.status === 'rejected') {
    const rejected = `version ${version} of ${project} was rejected${registered.statusReason ? ` (${registered.statusReason})` : ''}`;
    if (!options.force) {
      throw new CliError(`${rejected}; ${stays}. Promote it anyway with --force if you are sure`, { code: 'VERSION_REJECTED', context: { project, version } });
    }
    output.err(`warning: ${rejected}; promoting it anyway (--force)`);
  }
  try {
    await loadVerifiedModel(deps, project, version);
  } catch (error) {
    if (!(error instanceof DeployError && error.code === 'PARITY')) throw error;
    throw new CliError(`version ${version} of ${project} fails its sha256 check, so no server would load it: ${error.message}; ${stays}`, {
      code: 'MODEL_INTEGRITY',
      context: { project, version },
      cause: error,
    });
  }
  return moveProduction(deps, project, { toVersion: version, expectedRevision: current?.revision });
}
