import { CsvError, parse, type Info } from 'csv-parse';
import { DatasetError, formatProblem, type DatasetProblem } from '#lib/domain/datasets/errors.ts';
import { renderValue } from '#lib/domain/spec/index.ts';
import type { DatasetFormat } from '#lib/domain/spec/index.ts';

/** Bytes as they come from a file, an S3 `GetObject` body or a test: chunks of bytes or text. */
export type ByteSource = AsyncIterable<Uint8Array | string> | NodeJS.ReadableStream;

export interface SourceRecord {
  /** 1-based physical line where the record starts (CSV records may span lines). */
  line: number;
  record: Record<string, unknown>;
}

export interface ReadRecordsOptions {
  format: DatasetFormat;
  /** Names the file in problems. */
  file: string;
  /**
   * Receives lines that cannot be read as a record (bad JSON, a CSV row with the wrong number of
   * fields), and reading goes on. Without it the first such line throws a `DatasetError`.
   */
  onProblem?: (problem: DatasetProblem) => void;
  /**
   * CSV only: drop the spaces around unquoted values (`a, churned` reads as `churned`), as many
   * public CSVs put one after each comma. Quoted values keep theirs. Default true.
   */
  trim?: boolean;
  /** JSONL: the longest line read (a longer one is a problem, and reading goes on after it). Default `DEFAULT_MAX_LINE_BYTES`, 64 MiB. */
  maxLineBytes?: number;
}

/**
 * Streams records from JSONL (one object a line, blank lines skipped) or CSV (header row, RFC 4180
 * quoting, BOM tolerated). Holds one line or one CSV record at a time, never the whole file.
 */
export function readRecords(source: ByteSource, options: ReadRecordsOptions): AsyncGenerator<SourceRecord> {
  const onProblem =
    options.onProblem ??
    ((problem: DatasetProblem) => {
      throw new DatasetError(formatProblem(problem), { code: 'DATASET_INVALID', file: problem.file, problems: [problem] });
    });
  return options.format === 'csv'
    ? readCsv(source, { file: options.file, trim: options.trim ?? true }, onProblem)
    : readJsonl(source, options.file, onProblem, options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
}

/** The longest JSONL line read by default: far past any sensible record, well short of V8's string limit. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * Lines are cut from the bytes (a newline byte is never part of a multi-byte UTF-8 character) and
 * each chunk is searched once: a line that spans many chunks is kept as their list and joined once
 * at its end, so reading is linear in its length, not quadratic. A line past `maxLineBytes` is
 * reported and skipped.
 */
async function* readJsonl(source: ByteSource, file: string, onProblem: (problem: DatasetProblem) => void, maxLineBytes: number): AsyncGenerator<SourceRecord> {
  let line = 0;
  let pieces: Buffer[] = [];
  let pendingBytes = 0;
  /** The current line passed the limit: it was reported, and its bytes are dropped up to its end. */
  let skipping = false;
  const parseLine = (bytes: Buffer): SourceRecord | undefined => {
    line += 1;
    let body = bytes.toString('utf8', 0, bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length);
    if (line === 1 && body.startsWith('\uFEFF')) body = body.slice(1);
    if (body.trim() === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      onProblem({
        file,
        line,
        value: body.length > 80 ? `${body.slice(0, 79)}…` : body,
        message: `is not valid JSON (${reason}); each line must be one JSON object`,
      });
      return undefined;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      onProblem({ file, line, value, message: `${renderValue(value)} is not a JSON object; each line must be one object such as {"text": "…"}` });
      return undefined;
    }
    return { line, record: value as Record<string, unknown> };
  };
  const tooLong = (head: Buffer): void => {
    skipping = true;
    onProblem({
      file,
      line: line + 1,
      value: `${head.toString('utf8', 0, Math.min(head.length, 40))}…`,
      message: `is longer than ${maxLineBytes} bytes (${formatBytes(maxLineBytes)}), the most one line may hold; JSONL holds one record a line — split the data into more records, or keep large values in their own files`,
    });
  };
  for await (const chunk of readChunks(source, file)) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    for (let newline = bytes.indexOf(0x0a); newline >= 0; newline = bytes.indexOf(0x0a, start)) {
      const tail = bytes.subarray(start, newline);
      start = newline + 1;
      if (skipping || pendingBytes + tail.length > maxLineBytes) {
        if (!skipping) tooLong(pieces[0] ?? tail);
        line += 1;
        skipping = false;
        pieces = [];
        pendingBytes = 0;
        continue;
      }
      const whole = pieces.length === 0 ? tail : Buffer.concat([...pieces, tail], pendingBytes + tail.length);
      pieces = [];
      pendingBytes = 0;
      const parsed = parseLine(whole);
      if (parsed) yield parsed;
    }
    if (start < bytes.length && !skipping) {
      const rest = bytes.subarray(start);
      if (pendingBytes + rest.length > maxLineBytes) {
        tooLong(pieces[0] ?? rest);
        pieces = [];
        pendingBytes = 0;
      } else {
        // Copied: the source may reuse its chunk's memory once the next one is asked for.
        pieces.push(Buffer.from(rest));
        pendingBytes += rest.length;
      }
    }
  }
  if (skipping) return;
  if (pendingBytes > 0) {
    const parsed = parseLine(Buffer.concat(pieces, pendingBytes));
    if (parsed) yield parsed;
  }
}

function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

async function* readCsv(
  source: ByteSource,
  options: { file: string; trim: boolean },
  onProblem: (problem: DatasetProblem) => void,
): AsyncGenerator<SourceRecord> {
  const { file } = options;
  /*
   * The parser is driven chunk by chunk rather than iterated as a stream: a stream that errors
   * (an unclosed quote at the end) throws away the records it had buffered, and those still
   * deserve checking. Only one chunk's records are held at a time.
   */
  const parser = parse({ bom: true, info: true, relax_column_count: true, skip_empty_lines: true, trim: options.trim });
  const parsed: { record: string[]; info: Info }[] = [];
  let syntaxError: (Error & { code: string }) | undefined;
  let otherError: unknown;
  parser.on('data', (item: { record: string[]; info: Info }) => parsed.push(item));
  parser.on('error', (error: unknown) => {
    if (isCsvSyntaxError(error)) syntaxError ??= error;
    else otherError ??= error;
  });
  const ended = new Promise<void>((resolve) => parser.once('end', resolve).once('close', resolve));

  let header: string[] | undefined;
  let lastLine = 0;
  function* drain(): Generator<SourceRecord> {
    for (const { record, info } of parsed.splice(0)) {
      lastLine = info.lines;
      // `info.lines` is the line where the record ends; quoted newlines inside it moved it down.
      const line = info.lines - record.reduce((count, field) => count + countNewlines(field), 0);
      if (header === undefined) {
        header = record.map((name) => name.trim());
        reportHeaderProblems(header, file, line, onProblem);
        continue;
      }
      if (record.length !== header.length) {
        onProblem({
          file,
          line,
          value: record.join(',').slice(0, 80),
          message: `has ${record.length} fields but the header has ${header.length}; quote values that contain commas`,
        });
        continue;
      }
      const values: Record<string, unknown> = {};
      header.forEach((name, index) => {
        values[name] = record[index];
      });
      yield { line, record: values };
    }
  }

  try {
    for await (const chunk of readChunks(source, file)) {
      if (syntaxError !== undefined || otherError !== undefined) break;
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      await new Promise<void>((resolve) => parser.write(buffer, () => resolve()));
      yield* drain();
    }
    if (syntaxError === undefined && otherError === undefined) {
      parser.end();
      await ended;
    }
    yield* drain();
  } finally {
    parser.destroy();
  }
  if (otherError !== undefined) throw unreadable(file, otherError);
  if (syntaxError !== undefined) {
    // A malformed quote leaves the rest of the file ambiguous, so it ends the read.
    onProblem({
      file,
      line: lastLine + 1,
      value: undefined,
      message: `cannot be parsed as CSV (${syntaxError.message}); check the quotes in the record starting on this line`,
    });
  }
}

/** What csv-parse reports about the text (not every code starts with CSV_: `INVALID_OPENING_QUOTE` does not). */
function isCsvSyntaxError(error: unknown): error is Error & { code: string } {
  if (error instanceof CsvError) return true;
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('CSV_');
}

function reportHeaderProblems(header: string[], file: string, line: number, onProblem: (problem: DatasetProblem) => void): void {
  header.forEach((name, index) => {
    if (name === '') {
      onProblem({ file, line, field: name, value: name, message: `header column ${index + 1} has no name; name every column` });
    } else if (header.indexOf(name) !== index) {
      onProblem({ file, line, field: name, value: name, message: `header names column "${name}" twice; column names must be unique` });
    }
  });
}

function countNewlines(text: string): number {
  let count = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) count += 1;
  return count;
}

/** Iterates the source, turning a failure of the source itself into `DATASET_UNREADABLE`. */
async function* readChunks(source: ByteSource, file: string): AsyncGenerator<Uint8Array | string> {
  try {
    for await (const chunk of source as AsyncIterable<Uint8Array | string>) yield chunk;
  } catch (error) {
    throw unreadable(file, error);
  }
}

function unreadable(file: string, cause: unknown): DatasetError {
  if (cause instanceof DatasetError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new DatasetError(`${file}: cannot be read (${reason}); check that the file exists and is readable`, {
    code: 'DATASET_UNREADABLE',
    file,
    cause,
  });
}
