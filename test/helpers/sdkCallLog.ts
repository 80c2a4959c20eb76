import { readFileSync } from 'node:fs';
import type { RecordedSdkCall } from '#lib/adapters/config/index.ts';

/** The calls an AGENTFLOW_SDK_CALL_LOG file holds, one JSON line each; none while the file does not exist. */
export function readSdkCallLog(path: string): RecordedSdkCall[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RecordedSdkCall);
}
