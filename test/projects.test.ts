/** The vitest projects: every test file in one, and the unit project free of what is slow to start. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CDK_TESTS, E2E_TESTS, INTEGRATION_TESTS } from './helpers/projects.ts';

const root = resolve(import.meta.dirname, '..');
const testFiles = readdirSync(join(root, 'test'))
  .filter((name) => name.endsWith('.test.ts'))
  .map((name) => `test/${name}`);
const classified = [...INTEGRATION_TESTS, ...E2E_TESTS, ...CDK_TESTS];
const unitFiles = testFiles.filter((file) => !classified.includes(file));

/** What starts the local AWS, runs a pipeline or synthesizes the stack, as a test file calls it. */
const SLOW_ENTRY_POINTS =
  /\b(useLocalAws|startLocalAws|openLocalSession|runPipelineLocally|resumePipelineLocally|runLocalWorkflow|deployedStack|AgentflowStack)\b|new App\(/;

describe('vitest projects', () => {
  it('list each test file once, and only files that exist', () => {
    expect(classified.filter((file, i) => classified.indexOf(file) !== i)).toEqual([]);
    expect(classified.filter((file) => !testFiles.includes(file))).toEqual([]);
  });

  it.each(unitFiles.filter((file) => file !== 'test/projects.test.ts'))(
    'keep %s in unit: it starts no local AWS, runs no pipeline and synthesizes no stack',
    (file) => {
      expect(readFileSync(join(root, file), 'utf8')).not.toMatch(SLOW_ENTRY_POINTS);
    },
  );
});
