/**
 * Static shapes: numbers for known dims, strings for symbolic ones (`'batch'`). Two symbolic
 * dims are equal only when their names are equal, so every broadcast is decided at build time.
 */
export type Dim = number | string;
export type Shape = readonly Dim[];

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The number of elements when every dim is known, else undefined. */
export function staticSize(shape: Shape): number | undefined {
  let size = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return undefined;
    size *= d;
  }
  return size;
}

export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

/**
 * Numpy broadcasting of two shapes; returns a reason string when they are incompatible.
 * A symbolic dim broadcasts against 1 and against itself only: `'batch'` against 3 is refused
 * because it would only hold for batches of exactly 3 rows.
 */
export function broadcastShapes(a: Shape, b: Shape): { shape: Dim[] } | { reason: string } {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i += 1) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
    if (da === db) out.push(da);
    else if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else return { reason: `dims ${String(da)} and ${String(db)} at axis ${i - rank} differ and neither is 1` };
  }
  return { shape: out };
}

/** Normalizes a possibly negative axis against a rank; undefined when out of range. */
export function normalizeAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return Number.isInteger(a) && a >= 0 && a < rank ? a : undefined;
}

/** Product of dims as a dim: a number when all are known, else a derived symbolic name. */
export function productDim(dims: readonly Dim[]): Dim {
  const size = staticSize(dims);
  if (size !== undefined) return size;
  const known = dims.filter((d) => typeof d === 'number').reduce((p: number, d) => p * (d as number), 1);
  const symbols = dims.filter((d) => typeof d === 'string');
  if (known === 1 && symbols.length === 1) return symbols[0];
  return `(${[...symbols, ...(known === 1 ? [] : [String(known)])].join('*')})`;
}
