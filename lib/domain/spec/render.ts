/** How a user's value appears in a message: strings quoted, long structures cut short. */
export function renderValue(value: unknown, maxLength = 60): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function' || typeof value === 'symbol') return String(value);
  const text = boundedJson(value, maxLength + 1);
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text;
}

/**
 * `JSON.stringify(value)` up to about `limit` characters: a message shows ~60 of them, and a value
 * from a request may be 100,000 levels deep (JSON.stringify overflows the stack on it, and so does
 * String) or megabytes long. Every level writes a bracket first, so the recursion stops by
 * itself once it is `limit` levels deep.
 */
function boundedJson(value: unknown, limit: number): string {
  let text = '';
  const write = (item: unknown): void => {
    if (text.length >= limit) return;
    if (item !== null && typeof item === 'object' && typeof (item as { toJSON?: unknown }).toJSON === 'function')
      item = (item as { toJSON: () => unknown }).toJSON();
    if (typeof item === 'string') {
      text += JSON.stringify(item.length > limit ? item.slice(0, limit) : item);
    } else if (typeof item === 'number') {
      text += Number.isFinite(item) ? String(item) : 'null';
    } else if (typeof item === 'boolean' || item === null) {
      text += String(item);
    } else if (Array.isArray(item)) {
      text += '[';
      for (let i = 0; i < item.length && text.length < limit; i += 1) {
        if (i > 0) text += ',';
        const element: unknown = item[i];
        if (element === undefined || typeof element === 'function' || typeof element === 'symbol') text += 'null';
        else write(element);
      }
      text += ']';
    } else if (typeof item === 'object') {
      text += '{';
      let first = true;
      for (const key of Object.keys(item)) {
        if (text.length >= limit) break;
        const field: unknown = (item as Record<string, unknown>)[key];
        if (field === undefined || typeof field === 'function' || typeof field === 'symbol') continue;
        text += `${first ? '' : ','}${JSON.stringify(key.length > limit ? key.slice(0, limit) : key)}:`;
        first = false;
        write(field);
      }
      text += '}';
    } else if (typeof item === 'bigint') {
      text += `${item}n`;
    }
  };
  write(value);
  return text;
}

/** What kind of JSON value this is, in words: `a string`, `an array`, `null`. */
export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' && !Number.isFinite(value)) return 'a non-finite number';
  return typeof value === 'undefined' ? 'missing' : `a ${typeof value}`;
}

/** `['tasks', 1, 'type']` → `tasks[1].type`; keys that are not identifiers are bracketed. */
export function pathToString(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) text += text === '' ? key : `.${key}`;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text;
}

/** The value at `path` inside `root`, or `undefined` when any step is absent. */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key as string];
  }
  return current;
}

/** The closest candidate by edit distance, when it is close enough to be a plausible typo. */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length];
}
