import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '#lib/adapters/cli/index.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { openLocalSession, trainBaselines } from '#lib/adapters/local/index.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { runCli } from './helpers/cli.ts';

const EXAMPLE = resolve('examples/penguins');
const PROJECT = 'penguins';

/** Runs one `agentflow` command in this process, capturing its output and exit code. */
const agentflow = runCli;

let folder: string;
let specPath: string;

/** The penguins example on a small budget; `margin` lets a second run face a gate it cannot pass. */
async function writeSpec(name: string, overrides: { margin?: number } = {}): Promise<string> {
  const spec = JSON.parse(await readFile(join(EXAMPLE, 'spec.json'), 'utf8'));
  spec.training = { ...spec.training, epochs: 8, earlyStoppingPatience: 3 };
  spec.tuning = { ...spec.tuning, generations: 2, population: 2, maxConcurrency: 2 };
  spec.tasks = spec.tasks.map((task: { name: string; floor?: number }) => (task.name === 'species' ? { ...task, floor: 0.3 } : task));
  if (overrides.margin !== undefined) spec.deploy = { policy: 'if-better', margin: overrides.margin };
  const path = join(folder, name);
  await writeFile(path, JSON.stringify(spec, null, 2));
  return path;
}

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-cli-'));
  await copyFile(join(EXAMPLE, 'penguins.jsonl'), join(folder, 'penguins.jsonl'));
  specPath = await writeSpec('spec.json');
});

afterAll(async () => {
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('agentflow end to end', () => {
  const dir = () => join(folder, 'data');

  it('runs a spec, shows it, lists the model, predicts, takes feedback, writes the report, and holds a second model the gate refuses', async () => {
    const run = await agentflow(['--dir', dir(), '--json', 'run', specPath, '--run-id', 'run-cli-1']);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    const ran = JSON.parse(run.stdout) as { runId: string; status: string; report: { path: string } };
    expect(ran).toMatchObject({ runId: 'run-cli-1', status: 'SUCCEEDED' });
    expect((await stat(ran.report.path)).size).toBeGreaterThan(10_000);

    const shown = await agentflow(['--dir', dir(), 'runs', 'show', 'run-cli-1', '-p', PROJECT]);
    expect(shown.code).toBe(EXIT.ok);
    expect(shown.stdout).toMatch(/run run-cli-1 of penguins: succeeded/);
    expect(shown.stdout).toMatch(/promotion: promoted to production/);

    const models = JSON.parse((await agentflow(['--dir', dir(), '--json', 'models', 'ls', '-p', PROJECT])).stdout) as {
      production: number;
      versions: { version: number; status: string }[];
    };
    expect(models.production).toBe(1);
    expect(models.versions).toEqual([expect.objectContaining({ version: 1, status: 'production' })]);

    const record = { island: 'Biscoe', bill_length_mm: 47.5, bill_depth_mm: 14.8, flipper_length_mm: 217 };
    const predicted = await agentflow(['--dir', dir(), '--json', 'predict', '-p', PROJECT, '--record', JSON.stringify(record)]);
    expect(predicted.code, predicted.stderr).toBe(EXIT.ok);
    const prediction = (
      JSON.parse(predicted.stdout) as { predictions: { predictionId: string; version: number; outputs: Record<string, Record<string, unknown>> }[] }
    ).predictions[0];
    expect(prediction.version).toBe(1);
    expect(Object.keys(prediction.outputs).sort()).toEqual(['body_mass_g', 'male', 'species']);
    expect(prediction.outputs.species.label).toBe('Gentoo');

    expect((await agentflow(['--dir', dir(), 'feedback', '-p', PROJECT, prediction.predictionId, '1'])).code).toBe(EXIT.ok);
    const duplicate = await agentflow(['--dir', dir(), 'feedback', '-p', PROJECT, prediction.predictionId, '1']);
    expect(duplicate.code).toBe(EXIT.conflict);
    expect(duplicate.stderr).toMatch(/already has reward 1/);
    const bad = await agentflow(['--dir', dir(), 'predict', '-p', PROJECT, '--record', '{"island":"Biscoe","bill_length_mm":"long"}']);
    expect(bad.code).toBe(EXIT.invalidInput);
    expect(bad.stderr).toMatch(/bill_length_mm.*"long", not a number/);

    const report = await agentflow(['--dir', dir(), '--json', 'report', 'run-cli-1', '-p', PROJECT]);
    const written = JSON.parse(report.stdout) as { path: string; uri: string };
    expect(await readFile(written.path, 'utf8')).toMatch(/Nothing has been served|feedback/i);

    // The same data again, with a gate no model can pass: registered, evaluated against the champion, held.
    const strict = await writeSpec('strict.json', { margin: 0.5 });
    const second = await agentflow(['--dir', dir(), '--json', 'run', strict, '--run-id', 'run-cli-2']);
    expect(second.code, second.stderr).toBe(EXIT.ok);
    const held = JSON.parse(second.stdout) as {
      summary: { promotion: { promoted: boolean; reason: string }; decisions: { decision: string; value: unknown }[] };
    };
    expect(held.summary.promotion.promoted).toBe(false);
    expect(held.summary.promotion.reason).toMatch(/does not beat version 1's .* by the margin 0.5/);
    expect(held.summary.decisions.find((d) => d.decision === 'policy')?.value).toBe('warm-start');
    const after = JSON.parse((await agentflow(['--dir', dir(), '--json', 'models', 'ls', '-p', PROJECT])).stdout) as {
      production: number;
      versions: { version: number; status: string }[];
    };
    expect(after.production).toBe(1);
    expect(after.versions.find((v) => v.version === 2)?.status).toBe('rejected');

    const shownModel = await agentflow(['--dir', dir(), 'models', 'show', '1', '-p', PROJECT]);
    expect(shownModel.code).toBe(EXIT.ok);
    expect(shownModel.stdout).toMatch(
      /trained with learningRate 0\.01, weightDecay 0\.0001, dropout 0, hidden \[32\], towerHidden \[16\], patience 3, epochs 8, /,
    );
    const missing = await agentflow(['--dir', dir(), 'models', 'show', '9', '-p', PROJECT]);
    expect(missing.code).toBe(EXIT.notFound);
  });

  it("trains the demo baselines on the run's shards and scores them on its holdout rows", async () => {
    const session = await openLocalSession({ dir: dir() });
    try {
      const manifest = await session.deps.store.getJson(keys.runManifest('run-cli-1'), RunManifest);

      const baselines = await trainBaselines(session.deps.store, manifest);

      expect(baselines.map((b) => b.name)).toEqual(['uniform λ', 'single-task species', 'single-task male', 'single-task body_mass_g']);
      expect(baselines[1].lambda).toEqual({ species: 1, male: 0, body_mass_g: 0 });
      for (const baseline of baselines) expect(Object.keys(baseline.holdout).sort()).toEqual(['body_mass_g', 'male', 'species']);
      // Each single-task model learns its own task and not the others (a tower trained with weight 0 stays near chance).
      expect(baselines[1].holdout.species.macroF1).toBeGreaterThan(0.8);
      expect(baselines[2].holdout.male.auc).toBeGreaterThan(baselines[1].holdout.male.auc);
      expect(baselines[3].holdout.body_mass_g.rmse).toBeLessThan(baselines[3].holdout.body_mass_g.labelStd);
    } finally {
      await session.close();
    }
  });

  it('resumes a run killed midway to the same model as an uninterrupted run', async () => {
    const killedDir = join(folder, 'killed');
    const child = spawn(process.execPath, ['bin/agentflow.js', '--dir', killedDir, 'run', specPath, '--run-id', 'run-cli-1'], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    await new Promise<void>((done, fail) => {
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        // Kill the whole process group (the CLI and its trial jobs) once one trial has finished.
        if (/trial \S+ done/.test(log)) {
          child.stdout!.off('data', onData);
          process.kill(-child.pid!, 'SIGKILL');
          done();
        }
      };
      child.stdout!.on('data', onData);
      child.on('exit', (code) => fail(new Error(`the run ended (code ${code}) before a trial finished:\n${log}`)));
    });
    await new Promise((settled) => child.once('close', settled));
    // The killed process could not release its lock; a later start takes a lock whose owner is gone.
    const interrupted = JSON.parse((await agentflow(['--dir', killedDir, '--json', 'runs', 'ls', '-p', PROJECT])).stdout) as {
      runId: string;
      status: string;
    }[];
    expect(interrupted).toEqual([expect.objectContaining({ runId: 'run-cli-1', status: 'running' })]);

    const resumed = await agentflow(['--dir', killedDir, '--json', '--', 'resume', 'run-cli-1', '-p', PROJECT].filter((a) => a !== '--'));
    expect(resumed.code, resumed.stderr).toBe(EXIT.ok);
    const result = JSON.parse(resumed.stdout) as {
      status: string;
      summary: { run: { resumes: number }; trials: unknown[]; card: { model: { sha256: string }; lambda: Record<string, number> } };
    };
    expect(result.status).toBe('SUCCEEDED');
    expect(result.summary.run.resumes).toBe(1);
    expect(result.summary.trials).toHaveLength(4);

    const uninterrupted = JSON.parse((await agentflow(['--dir', dir(), '--json', 'models', 'show', '1', '-p', PROJECT])).stdout) as {
      card: { model: { sha256: string }; lambda: Record<string, number> };
    };
    expect(result.summary.card.lambda).toEqual(uninterrupted.card.lambda);
    expect(result.summary.card.model.sha256).toBe(uninterrupted.card.model.sha256);
  });
});

describe('agentflow run on a dataset with problems', () => {
  it('prints a screenful with the fix and copies the full list beside the local data', async () => {
    const data = join(folder, 'bad-data');
    const rows = Array.from({ length: 3000 }, (_, i) => `${i % 9}, ${i % 5 === 0 ? 'churned' : 'stayed'}`);
    await writeFile(join(folder, 'churn.csv'), ['tenure, status', ...rows].join('\n'));
    const spec = join(folder, 'churn-spec.json');
    await writeFile(
      spec,
      JSON.stringify({
        project: 'churn-cli',
        baseModel: { kind: 'tabular', numeric: ['tenure'] },
        datasets: { train: 'churn.csv' },
        tasks: [{ name: 'churn', type: 'binary', label: 'status' }],
      }),
    );

    const run = await agentflow(['--dir', data, 'run', spec, '--run-id', 'bad-labels-1']);

    expect(run.code).toBe(EXIT.failed);
    expect(run.stdout.split('\n').length).toBeLessThanOrEqual(50);
    expect(run.stdout).toContain('fix: add "positive": "churned" to task "churn"');
    const path = join(data, 'problems', 'bad-labels-1.txt');
    expect(run.stdout).toContain(`every dataset problem: ${path}`);
    const list = (await readFile(path, 'utf8')).trimEnd().split('\n');
    expect(list).toHaveLength(3000);
    expect(list[1]).toBe(
      'churn.csv line 3, task "churn": label "stayed" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
    );
  });
});
