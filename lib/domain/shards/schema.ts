import { Dictionary, Field, FixedSizeList, Float32, Int8, Int32, List, Schema, Type, Uint8, Utf8, type DataType } from 'apache-arrow';
import { ShardError } from '#lib/domain/shards/errors.ts';

export type ShardTaskType = 'binary' | 'multiclass' | 'regression';

export interface ShardTask {
  name: string;
  type: ShardTaskType;
  /** Class names for multiclass tasks; labels are indices into this list. */
  classes?: string[];
}

/**
 * `dense`: a `features` column of FixedSizeList<Float32>[dim]. `sparse`: per row an `indices`
 * List<Int32> (ascending columns < dim) and a `values` List<Float32> of the same length, the
 * other columns being 0 (a TF-IDF row holds a few hundred of 20k).
 */
export type FeatureLayout = 'dense' | 'sparse';

export interface ShardMetadata {
  formatVersion: number;
  /** Length of every feature vector (for a sparse shard, the vocabulary size the indices address). */
  dim: number;
  layout: FeatureLayout;
  tasks: ShardTask[];
  /** Digest of the base-model graph that produced the features; shards from another encoder do not mix. */
  encoderDigest: string;
  /** Whether the shard carries a `split` column. */
  hasSplit: boolean;
}

/** The split names, in the order of the codes the reader and writer use. */
export const SPLITS = ['train', 'validation', 'holdout'] as const;
export type SplitName = (typeof SPLITS)[number];

/** Dense shards keep version 1, byte for byte as before; sparse columns came with version 2. */
export const SHARD_FORMAT_VERSION = 1;
export const SPARSE_SHARD_FORMAT_VERSION = 2;

/** Schema-level metadata keys; plain strings so pyarrow's `schema.metadata` shows them as they are. */
export const METADATA_KEYS = {
  format: 'agentflow.format',
  version: 'agentflow.version',
  dim: 'agentflow.dim',
  tasks: 'agentflow.tasks',
  encoderDigest: 'agentflow.encoder_digest',
  /** `sparse` on sparse shards; absent on dense ones (as every version 1 shard is). */
  layout: 'agentflow.layout',
} as const;
const FORMAT_NAME = 'agentflow-feature-shard';

export const COLUMNS = {
  row: 'row',
  features: 'features',
  indices: 'indices',
  values: 'values',
  split: 'split',
  label: (task: string) => `label.${task}`,
  mask: (task: string) => `mask.${task}`,
} as const;

/** Dictionary id of the split column; every batch shares one dictionary so it is written once. */
const SPLIT_DICTIONARY_ID = 0;

export function splitType(): Dictionary<Utf8, Int8> {
  return new Dictionary(new Utf8(), new Int8(), SPLIT_DICTIONARY_ID, false);
}

export function validateTasks(tasks: readonly ShardTask[], where: string): ShardTask[] {
  const fail = (message: string, value: unknown): never => {
    throw new ShardError(`${where}: ${message}`, { code: where === 'metadata' ? 'SHARD_METADATA_INVALID' : 'SHARD_OPTIONS_INVALID', context: { value } });
  };
  if (!Array.isArray(tasks) || tasks.length === 0) fail('tasks must be a non-empty list of { name, type, classes? }', tasks);
  const names = new Set<string>();
  return tasks.map((task, i) => {
    if (typeof task?.name !== 'string' || task.name.length === 0 || names.has(task.name)) {
      fail(`tasks[${i}].name ${JSON.stringify(task?.name)} is empty, not a string or repeated`, task?.name);
    }
    names.add(task.name);
    if (task.type !== 'binary' && task.type !== 'multiclass' && task.type !== 'regression') {
      fail(`task "${task.name}": type ${JSON.stringify(task.type)} is not binary, multiclass or regression`, task.type);
    }
    if (task.type === 'multiclass') {
      const classes = task.classes;
      if (!Array.isArray(classes) || classes.length < 2 || !classes.every((c) => typeof c === 'string')) {
        fail(`task "${task.name}": a multiclass task needs classes, a list of at least two names (got ${JSON.stringify(classes)})`, classes);
      }
      return { name: task.name, type: task.type, classes: [...classes!] };
    }
    return task.classes === undefined ? { name: task.name, type: task.type } : { name: task.name, type: task.type, classes: [...task.classes] };
  });
}

export function buildSchema(metadata: ShardMetadata): Schema {
  const fields: Field[] = [new Field(COLUMNS.row, new Int32(), false)];
  if (metadata.layout === 'sparse') {
    fields.push(new Field(COLUMNS.indices, new List(new Field('item', new Int32(), false)), false));
    fields.push(new Field(COLUMNS.values, new List(new Field('item', new Float32(), false)), false));
  } else {
    fields.push(new Field(COLUMNS.features, new FixedSizeList(metadata.dim, new Field('item', new Float32(), false)), false));
  }
  for (const task of metadata.tasks) {
    fields.push(new Field(COLUMNS.label(task.name), new Float32(), false));
    fields.push(new Field(COLUMNS.mask(task.name), new Uint8(), false));
  }
  if (metadata.hasSplit) fields.push(new Field(COLUMNS.split, splitType(), false));
  const keyValues = new Map<string, string>([
    [METADATA_KEYS.format, FORMAT_NAME],
    [METADATA_KEYS.version, String(metadata.formatVersion)],
    [METADATA_KEYS.dim, String(metadata.dim)],
    [METADATA_KEYS.tasks, JSON.stringify(metadata.tasks)],
    [METADATA_KEYS.encoderDigest, metadata.encoderDigest],
    ...(metadata.layout === 'sparse' ? [[METADATA_KEYS.layout, 'sparse'] as [string, string]] : []),
  ]);
  return new Schema(fields, keyValues);
}

export interface ShardExpectations {
  /** The dimension the caller's model consumes; a shard of another dimension is refused. */
  dim?: number;
  encoderDigest?: string;
}

function describeType(type: DataType): string {
  return String(type);
}

/**
 * Reads and checks our metadata and columns from an Arrow schema. Accepts what other writers of
 * the format (pyarrow, polars) naturally produce: masks as Uint8 or Bool, `row` as Int32 or Int64,
 * `split` as Utf8 or a dictionary of Utf8.
 */
export function parseShardMetadata(schema: Schema, expected: ShardExpectations = {}): ShardMetadata {
  const meta = schema.metadata;
  if (meta.get(METADATA_KEYS.format) !== FORMAT_NAME) {
    throw new ShardError(
      `not an agentflow feature shard: schema metadata "${METADATA_KEYS.format}" is ${JSON.stringify(meta.get(METADATA_KEYS.format) ?? null)}, ` +
        `expected "${FORMAT_NAME}"; write shards with ShardWriter (columns: ${schema.fields.map((f) => f.name).join(', ') || 'none'})`,
      { code: 'SHARD_NOT_AGENTFLOW', context: { columns: schema.fields.map((f) => f.name) } },
    );
  }
  const version = Number(meta.get(METADATA_KEYS.version));
  if (version !== SHARD_FORMAT_VERSION && version !== SPARSE_SHARD_FORMAT_VERSION) {
    throw new ShardError(
      `shard format version ${meta.get(METADATA_KEYS.version)} is not supported (this build reads versions ${SHARD_FORMAT_VERSION} and ${SPARSE_SHARD_FORMAT_VERSION}); re-run Embed to rewrite the shards`,
      {
        code: 'SHARD_VERSION_UNSUPPORTED',
        context: { version: meta.get(METADATA_KEYS.version) },
      },
    );
  }
  const dim = Number(meta.get(METADATA_KEYS.dim));
  if (!Number.isInteger(dim) || dim < 1) {
    throw new ShardError(`shard metadata "${METADATA_KEYS.dim}" is ${JSON.stringify(meta.get(METADATA_KEYS.dim))}, not a positive integer`, {
      code: 'SHARD_METADATA_INVALID',
      context: { dim: meta.get(METADATA_KEYS.dim) },
    });
  }
  let rawTasks: unknown;
  try {
    rawTasks = JSON.parse(meta.get(METADATA_KEYS.tasks) ?? '');
  } catch (cause) {
    throw new ShardError(`shard metadata "${METADATA_KEYS.tasks}" is not JSON: ${JSON.stringify(meta.get(METADATA_KEYS.tasks) ?? null)}`, {
      code: 'SHARD_METADATA_INVALID',
      context: { tasks: meta.get(METADATA_KEYS.tasks) },
      cause,
    });
  }
  const tasks = validateTasks(rawTasks as ShardTask[], 'metadata');
  const encoderDigest = meta.get(METADATA_KEYS.encoderDigest) ?? '';

  const column = (name: string): Field => {
    const field = schema.fields.find((f) => f.name === name);
    if (!field) {
      throw new ShardError(
        `shard is missing column "${name}" (it has ${schema.fields.map((f) => f.name).join(', ')}); the file was not written by ShardWriter or is truncated`,
        {
          code: 'SHARD_COLUMN_MISSING',
          context: { column: name },
        },
      );
    }
    return field;
  };
  const badType = (name: string, type: DataType, wanted: string): never => {
    throw new ShardError(`shard column "${name}" has type ${describeType(type)}, expected ${wanted}`, {
      code: 'SHARD_COLUMN_TYPE',
      context: { column: name, type: describeType(type) },
    });
  };

  const layoutValue = meta.get(METADATA_KEYS.layout) ?? 'dense';
  if (layoutValue !== 'dense' && layoutValue !== 'sparse') {
    throw new ShardError(`shard metadata "${METADATA_KEYS.layout}" is ${JSON.stringify(layoutValue)}, not "dense" or "sparse"`, {
      code: 'SHARD_METADATA_INVALID',
      context: { layout: layoutValue },
    });
  }
  const layout: FeatureLayout = layoutValue;
  if (layout === 'sparse') {
    const indices = column(COLUMNS.indices).type;
    if (!isListOf(indices, (t) => t.typeId === Type.Int && (t as Int32).bitWidth === 32 && (t as Int32).isSigned))
      badType(COLUMNS.indices, indices, 'List<Int32>');
    const values = column(COLUMNS.values).type;
    if (!isListOf(values, (t) => t.typeId === Type.Float && (t as Float32).precision === new Float32().precision))
      badType(COLUMNS.values, values, 'List<Float32>');
  } else {
    const features = column(COLUMNS.features).type;
    if (features.typeId !== Type.FixedSizeList || (features as FixedSizeList).valueType.typeId !== Type.Float) {
      badType(COLUMNS.features, features, `FixedSizeList<Float32>[${dim}]`);
    }
    const listType = features as FixedSizeList<Float32>;
    if ((listType.valueType as Float32).precision !== new Float32().precision) badType(COLUMNS.features, features, `FixedSizeList<Float32>[${dim}]`);
    if (listType.listSize !== dim) {
      throw new ShardError(`shard features have ${listType.listSize} values per row but the metadata says dim ${dim}; the file is inconsistent, rewrite it`, {
        code: 'SHARD_DIM_MISMATCH',
        context: { listSize: listType.listSize, dim },
      });
    }
  }
  if (expected.dim !== undefined && expected.dim !== dim) {
    throw new ShardError(
      `shard has feature dimension ${dim} but ${expected.dim} was expected; these shards come from another encoder, re-run Embed for this model`,
      {
        code: 'SHARD_DIM_MISMATCH',
        context: { dim, expected: expected.dim },
      },
    );
  }
  if (expected.encoderDigest !== undefined && expected.encoderDigest !== encoderDigest) {
    throw new ShardError(
      `shard was embedded by encoder ${encoderDigest || '(none)'} but ${expected.encoderDigest} was expected; re-run Embed for this encoder`,
      {
        code: 'SHARD_METADATA_INVALID',
        context: { encoderDigest, expected: expected.encoderDigest },
      },
    );
  }

  const row = column(COLUMNS.row).type;
  if (row.typeId !== Type.Int || ![32, 64].includes((row as Int32).bitWidth)) badType(COLUMNS.row, row, 'Int32 or Int64');
  for (const task of tasks) {
    const label = column(COLUMNS.label(task.name)).type;
    if (label.typeId !== Type.Float || (label as Float32).precision !== new Float32().precision) badType(COLUMNS.label(task.name), label, 'Float32');
    const mask = column(COLUMNS.mask(task.name)).type;
    const isUint8 = mask.typeId === Type.Int && (mask as Uint8).bitWidth === 8 && !(mask as Uint8).isSigned;
    if (!isUint8 && mask.typeId !== Type.Bool) badType(COLUMNS.mask(task.name), mask, 'Uint8 or Bool');
  }
  const splitField = schema.fields.find((f) => f.name === COLUMNS.split);
  if (splitField) {
    const t = splitField.type;
    const ok = t.typeId === Type.Utf8 || (t.typeId === Type.Dictionary && (t as Dictionary).dictionary.typeId === Type.Utf8);
    if (!ok) badType(COLUMNS.split, t, 'Utf8 or Dictionary<Utf8>');
  }
  return { formatVersion: version, dim, layout, tasks, encoderDigest, hasSplit: splitField !== undefined };
}

function isListOf(type: DataType, item: (t: DataType) => boolean): boolean {
  return type.typeId === Type.List && item((type as List).valueType);
}
