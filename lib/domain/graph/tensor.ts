/**
 * Tensor dtypes and literals: what both the graph builder and the model encoder need, in a module
 * of its own so the two do not import each other.
 */
import { GraphError } from './errors.ts';
import { formatShape, staticSize } from './shape.ts';

export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool' | 'string';

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['float32', 'float64', 'float16']);

export type TensorValues = Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | readonly string[];

/** A concrete tensor: constants, initializers and baked weights. `bool` is stored as Uint8Array. */
export interface TensorLiteral {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorValues;
}

const TYPED_ARRAY_DTYPE = new Map<unknown, DType>([
  [Float32Array, 'float32'],
  [Float64Array, 'float64'],
  [BigInt64Array, 'int64'],
  [Int32Array, 'int32'],
  [Int8Array, 'int8'],
  [Uint8Array, 'uint8'],
]);

/** The dtype a typed array (or string list) stands for. */
export function dtypeOfValues(values: TensorValues): DType | undefined {
  if (Array.isArray(values)) return 'string';
  return TYPED_ARRAY_DTYPE.get((values as object).constructor);
}

/** Builds a tensor literal from JS numbers, typed arrays or strings for the given dtype. */
export function tensorLiteral(
  values: number | readonly number[] | readonly bigint[] | TensorValues,
  options: { dtype?: DType; shape?: readonly number[] } = {},
): TensorLiteral {
  const inferred =
    typeof values === 'number'
      ? undefined
      : Array.isArray(values)
        ? typeof values[0] === 'string'
          ? 'string'
          : typeof values[0] === 'bigint'
            ? 'int64'
            : undefined
        : TYPED_ARRAY_DTYPE.get((values as object).constructor);
  const dtype: DType = options.dtype ?? inferred ?? 'float32';
  const list = typeof values === 'number' ? [values] : values;
  const length = (list as ArrayLike<unknown>).length;
  const shape = options.shape ?? (typeof values === 'number' ? [] : [length]);
  if (staticSize(shape) !== length) {
    throw new GraphError(`constant: ${length} values do not fill shape ${formatShape(shape)}; pass a shape whose product is ${length}`, {
      code: 'GRAPH_SHAPE',
      context: { length, shape },
    });
  }
  const data = convertValues(list as ArrayLike<number | bigint | string>, dtype);
  return { dtype, shape: [...shape], data };
}

function convertValues(list: ArrayLike<number | bigint | string>, dtype: DType): TensorValues {
  const array = Array.from(list as ArrayLike<unknown>);
  switch (dtype) {
    case 'float32':
      return list instanceof Float32Array ? list : Float32Array.from(array, Number);
    case 'float64':
      return list instanceof Float64Array ? list : Float64Array.from(array, Number);
    case 'int64':
      return list instanceof BigInt64Array ? list : BigInt64Array.from(array, (v) => BigInt(v as number));
    case 'int32':
      return list instanceof Int32Array ? list : Int32Array.from(array, Number);
    case 'int8':
      return Int8Array.from(array, Number);
    case 'uint8':
    case 'bool':
      return list instanceof Uint8Array ? list : Uint8Array.from(array, (v) => (dtype === 'bool' ? (v ? 1 : 0) : Number(v)));
    case 'string':
      return array.map(String);
    case 'float16':
      throw new GraphError('constant: float16 literals are not supported; build the constant in float32 and g.cast it', {
        code: 'GRAPH_DTYPE',
      });
  }
}

const DTYPE_CODES: Readonly<Record<DType, number>> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
};

/** The ONNX `TensorProto.DataType` code of a dtype. */
export function dtypeCode(dtype: DType): number {
  return DTYPE_CODES[dtype];
}

export function dtypeFromCode(code: number): DType | undefined {
  return (Object.keys(DTYPE_CODES) as DType[]).find((d) => DTYPE_CODES[d] === code);
}
