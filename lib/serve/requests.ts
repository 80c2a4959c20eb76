import * as z from 'zod';
import { pathToString, renderValue } from '#lib/domain/spec/index.ts';
import { badRequest } from './errors.ts';

const PROJECT = /^[a-z0-9][a-z0-9-]{0,39}$/;

/** Whether `value` is a project name as `projectField` accepts it. */
export function isProjectName(value: unknown): value is string {
  return typeof value === 'string' && PROJECT.test(value);
}

export const projectField = z.string({ error: (issue) => `is ${renderValue(issue.input)}; give the project name as a string` }).regex(PROJECT, {
  error: (issue) => `${renderValue(issue.input)} is not a project name; use the spec's project (1-40 lowercase letters, digits or dashes)`,
});

/** Turns zod issues into one 400 naming each field, its value and the fix. */
export function parseRequest<T>(schema: z.ZodType<T>, body: unknown, example: string): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest(`the body is ${renderValue(body)}; send a JSON object such as ${example}`, { body: renderValue(body) });
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => `"${k}"`).join(', ')}; the body looks like ${example}`;
    }
    const path = pathToString(issue.path);
    const input = issue.path.reduce<unknown>((value, key) => (value as Record<PropertyKey, unknown> | undefined)?.[key], body);
    if (input === undefined && issue.code === 'invalid_type') return `${path} is missing; the body looks like ${example}`;
    return `${path}: ${issue.message}`;
  });
  throw badRequest(problems.join('; '), { problems });
}
