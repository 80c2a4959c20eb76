import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDefinition, STAGES, type State } from '#lib/pipeline/index.ts';

const root = join(import.meta.dirname, '..');
const folderOf = (state: string) => join(root, 'lib', 'pipeline', state[0].toLowerCase() + state.slice(1));

/** Every Task and Map state, with the Map state that runs it if any. */
function workStates(states: Record<string, State>, inside?: string): { name: string; inside?: string }[] {
  return Object.entries(states).flatMap(([name, state]) => {
    if (state.Type === 'Map') return [{ name, inside }, ...workStates(state.ItemProcessor.States, name)];
    return state.Type === 'Task' ? [{ name, inside }] : [];
  });
}

describe('the tree shows the pipeline', () => {
  const states = workStates(buildDefinition().States);

  it('gives each state of the state machine a folder of the same name under lib/pipeline', () => {
    expect(states.length).toBeGreaterThanOrEqual(STAGES.length);
    for (const { name, inside } of states) {
      // A state inside a Map (RunTrial inside Trials) lives in the Map state's folder.
      const folder = folderOf(inside ?? name);
      expect(existsSync(folder), `${name}: no folder ${folder}`).toBe(true);
    }
  });

  it('keeps each Lambda stage in its own folder, so its entry point bundles that stage alone', () => {
    for (const stage of STAGES.filter((s) => s.kind === 'lambda')) {
      expect(existsSync(join(folderOf(stage.state), 'stage.ts')), stage.state).toBe(true);
    }
  });

  it('holds nothing but stage folders and the state machine itself under lib/pipeline', () => {
    const folders = readdirSync(join(root, 'lib', 'pipeline'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    const stateFolders = new Set(states.filter((s) => !s.inside).map((s) => folderOf(s.name)));
    for (const folder of folders) expect(stateFolders, `lib/pipeline/${folder} is not a state`).toContain(join(root, 'lib', 'pipeline', folder));
  });

  it('groups lib/ into the pipeline, the serving side, domain libraries and adapters', () => {
    expect(readdirSync(join(root, 'lib')).sort()).toEqual(['adapters', 'domain', 'pipeline', 'serve']);
  });
});
