import { createHash } from 'node:crypto';
import type { Spec } from '#lib/domain/spec/schema.ts';

/**
 * JSON with object keys sorted at every depth and `undefined` fields dropped, so equal values
 * always serialize to the same bytes whatever order their keys were written in.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : sortKeys(item)));
  if (value === null || typeof value !== 'object') return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== undefined) sorted[key] = sortKeys(item);
  }
  return sorted;
}

/** sha256 (hex) of the parsed spec's canonical JSON: equal specs, defaults included, share a digest. */
export function specDigest(spec: Spec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}
