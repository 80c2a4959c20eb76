/**
 * S3 key layout (DESIGN §5). Keys are immutable: a run, a feature digest or a model version
 * names its folder, and nothing under it is rewritten with different bytes.
 *
 *   datasets/<project>/<name>                      user input
 *   datasets/<project>/feedback/<sha256>.jsonl     labelled feedback rows (Prepare, content-addressed)
 *   features/<digest>/<name>                       embedded shards, cached by content digest
 *   runs/<runId>/manifest.json                     validated manifest from Prepare
 *   runs/<runId>/trials/<trialId>/<name>           trial weights, metrics
 *   runs/<runId>/<name>                            reports and other run files
 *   models/<project>/<version>/model.onnx|card.json
 *   models/<project>/<version>/live.json|spec.json|reference.json   what a live model needs once runs/ expired
 */
import { StoreError } from './errors.ts';

/** One path segment: non-empty, no slash, no `.`/`..`, so keys cannot escape their folder. */
function segment(label: string, value: string | number): string {
  const text = String(value);
  if (text === '' || text.includes('/') || text === '.' || text === '..') {
    throw new StoreError(`${label} ${JSON.stringify(text)} cannot be used in an S3 key: use a non-empty name without "/"`, {
      code: 'INVALID_KEY',
      context: { [label]: text },
    });
  }
  return text;
}

/** A relative file name under a folder; may contain "/" but no empty, `.` or `..` parts. */
function relative(label: string, value: string): string {
  for (const part of value.split('/')) segment(label, part);
  return value;
}

export const keys = {
  dataset: (project: string, name: string) => `datasets/${segment('project', project)}/${relative('name', name)}`,
  feedbackDataset: (project: string, sha256: string) => `datasets/${segment('project', project)}/feedback/${sha256}.jsonl`,
  featuresPrefix: (digest: string) => `features/${segment('digest', digest)}/`,
  features: (digest: string, name: string) => `features/${segment('digest', digest)}/${relative('name', name)}`,
  runPrefix: (runId: string) => `runs/${segment('runId', runId)}/`,
  runManifest: (runId: string) => `runs/${segment('runId', runId)}/manifest.json`,
  runFile: (runId: string, name: string) => `runs/${segment('runId', runId)}/${relative('name', name)}`,
  trialFile: (runId: string, trialId: string, name: string) =>
    `runs/${segment('runId', runId)}/trials/${segment('trialId', trialId)}/${relative('name', name)}`,
  modelPrefix: (project: string, version: number) => `models/${segment('project', project)}/${segment('version', version)}/`,
  model: (project: string, version: number) => `models/${segment('project', project)}/${segment('version', version)}/model.onnx`,
  modelCard: (project: string, version: number) => `models/${segment('project', project)}/${segment('version', version)}/card.json`,
  modelFile: (project: string, version: number, name: string) =>
    `models/${segment('project', project)}/${segment('version', version)}/${relative('name', name)}`,
} as const;
