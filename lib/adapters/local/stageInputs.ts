import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, resolve } from 'node:path';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import { parseSpec, type Spec } from '#lib/domain/spec/index.ts';
import { keys, type ArtifactStore } from '#lib/adapters/store/index.ts';

export class RunInputError extends AgentflowError {
  constructor(message: string, options: { code: 'SPEC_UNREADABLE' | 'DATASET_MISSING'; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'RunInputError';
  }
}

export interface StagedRun {
  spec: Spec;
  /** The spec as uploaded: the user's JSON with every local path replaced by its S3 URI. */
  specUri: string;
  uploads: { field: string; path: string; uri: string; sizeBytes: number; reused: boolean }[];
}

/**
 * Makes a local spec runnable by the workflow: checks it (so a bad spec fails before anything is
 * uploaded), uploads every local file it names (datasets, bring-your-own encoder and tokenizer)
 * under content-addressed keys, and stores the rewritten spec under the run. Paths are relative
 * to the spec file. Files already uploaded with the same content are not sent again.
 */
export async function stageRunInputs(specPath: string, runId: string, store: ArtifactStore): Promise<StagedRun> {
  let text: string;
  try {
    text = await readFile(specPath, 'utf8');
  } catch (error) {
    throw new RunInputError(`cannot read the spec ${specPath}: ${(error as Error).message}`, { code: 'SPEC_UNREADABLE', context: { specPath }, cause: error });
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new RunInputError(`${specPath} is not valid JSON: ${(error as Error).message}`, { code: 'SPEC_UNREADABLE', context: { specPath }, cause: error });
  }
  const spec = parseSpec(raw, { source: specPath });
  const folder = dirname(resolve(specPath));
  const uploads: StagedRun['uploads'] = [];

  const upload = async (field: string, location: string): Promise<string> => {
    if (location.startsWith('s3://')) return location;
    const path = resolve(folder, location);
    const digest = await sha256OfFile(path, field);
    const key = keys.dataset(spec.project, `${digest}/${basename(path)}`);
    const existing = await store.head(key);
    const stored = existing ?? (await store.putStream(key, createReadStream(path), { expectedSha256: digest }));
    uploads.push({ field, path, uri: store.uri(key), sizeBytes: 'sizeBytes' in stored ? stored.sizeBytes : 0, reused: existing !== undefined });
    return store.uri(key);
  };

  const rewritten = structuredClone(raw);
  const datasets = rewritten.datasets as Record<string, unknown>;
  for (const role of ['train', 'validation', 'holdout'] as const) {
    if (typeof datasets[role] === 'string') datasets[role] = await upload(`datasets.${role}`, datasets[role] as string);
  }
  const baseModels = Array.isArray(rewritten.baseModel) ? (rewritten.baseModel as Record<string, unknown>[]) : [rewritten.baseModel as Record<string, unknown>];
  for (const [index, model] of baseModels.entries()) {
    if (model?.kind !== 'onnx') continue;
    const at = Array.isArray(rewritten.baseModel) ? `baseModel[${index}]` : 'baseModel';
    model.model = await upload(`${at}.model`, model.model as string);
    model.tokenizer = await upload(`${at}.tokenizer`, model.tokenizer as string);
  }
  const stored = await store.putJson(keys.runFile(runId, 'spec.json'), rewritten);
  return { spec, specUri: stored.uri, uploads };
}

async function sha256OfFile(path: string, field: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (error) {
    throw new RunInputError(
      `${field}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); paths are relative to the spec file`,
      {
        code: 'DATASET_MISSING',
        context: { field, path },
        cause: error,
      },
    );
  }
  return hash.digest('hex');
}
