/**
 * Installs are explicit (issue #12): the CPU install does not depend on the `.npmrc` key
 * `onnxruntime-node-install` (npm 11 warns it will stop working) nor on an environment variable,
 * every dependency install script is decided in package.json's `allowScripts`, and the GPU image
 * runs the CUDA install explicitly and fails its build if the CUDA provider library cannot load.
 * There is no Docker here, so the Dockerfile is read and its instructions checked.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const ORT_BIN = 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64';
const CUDA_PROVIDER = `${ORT_BIN}/libonnxruntime_providers_cuda.so`;

/** The Dockerfile as instructions (continuation lines joined, comments dropped), grouped by build stage. */
function dockerStages(text: string): Array<{ from: string; instructions: string[] }> {
  const logical = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const stages: Array<{ from: string; instructions: string[] }> = [];
  for (const line of logical) {
    if (/^FROM\s/i.test(line)) stages.push({ from: line, instructions: [] });
    else stages.at(-1)?.instructions.push(line);
  }
  return stages;
}

describe('the CPU install', () => {
  it('sets no onnxruntime-node-install key in .npmrc and no ONNXRUNTIME_NODE_INSTALL in CI', () => {
    if (existsSync(join(root, '.npmrc'))) expect(read('.npmrc')).not.toMatch(/onnxruntime-node-install/);
    expect(read('.ci/run')).not.toMatch(/ONNXRUNTIME_NODE_INSTALL/);
  });

  it("denies onnxruntime-node's install script and decides every other dependency install script in allowScripts", () => {
    const manifest = JSON.parse(read('package.json')) as { allowScripts?: Record<string, boolean> };
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { hasInstallScript?: boolean }> };
    const withScripts = Object.entries(lock.packages)
      .filter(([path, entry]) => path && entry.hasInstallScript)
      .map(([path]) => path.replace(/^.*node_modules\//, ''));
    expect(withScripts).toContain('onnxruntime-node');
    expect(manifest.allowScripts?.['onnxruntime-node']).toBe(false);
    const undecided = withScripts.filter((name) => typeof manifest.allowScripts?.[name] !== 'boolean');
    expect(undecided, 'add each to package.json allowScripts (npm install-scripts approve|deny <name>)').toEqual([]);
  });

  it('loads the CPU binding that ships inside the npm package, with no CUDA provider downloaded', () => {
    expect(existsSync(join(root, ORT_BIN, 'onnxruntime_binding.node'))).toBe(true);
    const run = spawnSync(process.execPath, ['-e', "const ort = require('onnxruntime-node'); console.log(typeof ort.InferenceSession.create)"], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('function');
  });
});

describe('the GPU job image', () => {
  const stages = dockerStages(read('cdk/Dockerfile'));
  const deps = stages[0];
  const runtime = stages.at(-1)!;

  it('installs dependencies without implicit scripts, then runs the CUDA install explicitly, not through npm config or the environment', () => {
    const install = deps.instructions.find((i) => /^RUN\s.*\bnpm ci\b/.test(i));
    expect(install).toBeDefined();
    expect(install).toMatch(/npm ci [^&]*--ignore-scripts/);
    const explicit = /node node_modules\/onnxruntime-node\/script\/install(\.js)? --onnxruntime-node-install=cuda12/;
    expect(install).toMatch(explicit);
    // The CUDA install comes after npm ci in the same layer, and its files are checked.
    expect(install!.indexOf('npm ci')).toBeLessThan(install!.search(explicit));
    expect(install).toContain(`test -f ${CUDA_PROVIDER}`);
    for (const stage of stages) expect(stage.instructions.filter((i) => /^(ENV|ARG)\s.*ONNXRUNTIME_NODE_INSTALL/.test(i))).toEqual([]);
  });

  it('fails the build unless the CPU binding loads and every library of the CUDA provider resolves on the CUDA base image', () => {
    expect(runtime.from).toMatch(/^FROM nvidia\/cuda:12\.[0-9.]+-cudnn-runtime-/);
    const copyModules = runtime.instructions.findIndex((i) => /^COPY --from=deps \/app\/node_modules/.test(i));
    const checkIndex = runtime.instructions.findIndex((i) => /^RUN\s.*\bldd\b/.test(i));
    expect(copyModules).toBeGreaterThanOrEqual(0);
    expect(checkIndex).toBeGreaterThan(copyModules);
    const check = runtime.instructions[checkIndex];
    expect(check).toMatch(/require\('onnxruntime-node'\)/);
    expect(check).toContain(`provider=${CUDA_PROVIDER}`);
    expect(check).toMatch(/test -f "\$provider"/);
    expect(check).toMatch(/ldd "\$provider" > (\S+)/);
    // A "not found" library fails the RUN; a missing file fails before ldd is read.
    const report = /ldd "\$provider" > (\S+)/.exec(check)![1];
    expect(check).toMatch(new RegExp(`if grep -q "not found" ${report.replace(/[/.]/g, '\\$&')}; then [^;]*; exit 1; fi`));
    // Every step is chained with &&, so no failure in the middle is ignored.
    expect(check.replace(/if grep[^]*?fi/, 'IF').split('&&').length).toBeGreaterThanOrEqual(5);
  });
});
