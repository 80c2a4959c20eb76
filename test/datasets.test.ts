import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  DatasetError,
  assertValidDataset,
  formatProblem,
  formatProblems,
  ProblemSummary,
  readRecords,
  splitOf,
  validateDataset,
  validateInputs,
  validateRecord,
  type DatasetProblem,
  type SourceRecord,
} from '#lib/domain/datasets/index.ts';
import { parseSpec, parseSpecJson, type SpecInput } from '#lib/domain/spec/index.ts';

const tasks: SpecInput['tasks'] = [
  { name: 'urgent', type: 'binary' },
  { name: 'team', type: 'multiclass', classes: ['billing', 'technical', 'account'] },
  { name: 'hours', type: 'regression' },
];
const textSpec = parseSpec({ project: 'demo', baseModel: { kind: 'text' }, datasets: { train: 'train.jsonl' }, tasks });
const tabularSpec = parseSpec({
  project: 'demo',
  baseModel: { kind: 'tabular', numeric: ['age', 'spend'], categorical: ['plan'] },
  datasets: { train: 'train.csv' },
  tasks,
});
const featuresSpec = parseSpec({
  project: 'demo',
  baseModel: { kind: 'features', dimension: 3 },
  datasets: { train: 'train.jsonl' },
  tasks: [{ name: 'urgent', type: 'binary' }],
});

/** Bytes cut into small chunks, so records and multi-byte characters straddle chunk edges. */
async function* chunked(text: string, size = 7): AsyncGenerator<Uint8Array> {
  const bytes = Buffer.from(text, 'utf8');
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}

async function readAll(text: string, format: 'jsonl' | 'csv', file = `train.${format}`) {
  const records: SourceRecord[] = [];
  const problems: DatasetProblem[] = [];
  for await (const record of readRecords(chunked(text), { format, file, onProblem: (problem) => problems.push(problem) })) {
    records.push(record);
  }
  return { records, problems };
}

const at = { file: 'train.jsonl', line: 812 };

describe('readRecords (JSONL)', () => {
  it('yields each object with its line number, skipping blank lines and tolerating CRLF and a BOM', async () => {
    const text = '\uFEFF{"text":"a"}\r\n\n{"text":"é ü — ok"}\r\n   \n{"text":"c"}';
    const { records, problems } = await readAll(text, 'jsonl');
    expect(problems).toEqual([]);
    expect(records).toEqual([
      { line: 1, record: { text: 'a' } },
      { line: 3, record: { text: 'é ü — ok' } },
      { line: 5, record: { text: 'c' } },
    ]);
  });

  it('reports bad JSON and non-object lines with their line numbers and keeps reading', async () => {
    const { records, problems } = await readAll('{"text":"a"}\n{"text": oops}\n[1,2]\n{"text":"d"}\n', 'jsonl');
    expect(records.map((record) => record.line)).toEqual([1, 4]);
    expect(problems.map((problem) => [problem.line, problem.value])).toEqual([
      [2, '{"text": oops}'],
      [3, [1, 2]],
    ]);
    expect(problems[0].message).toMatch(/^is not valid JSON \(.+\); each line must be one JSON object$/);
    expect(problems[1].message).toBe('[1,2] is not a JSON object; each line must be one object such as {"text": "…"}');
  });

  it('throws a DatasetError at the first unreadable line when no onProblem is given', async () => {
    const read = async () => {
      for await (const record of readRecords(chunked('{"a":1}\nnot json\n'), { format: 'jsonl', file: 'train.jsonl' })) void record;
    };
    await expect(read()).rejects.toThrow(DatasetError);
    await expect(read()).rejects.toThrow(/^train.jsonl line 2: is not valid JSON/);
  });

  it('turns a failing source into DATASET_UNREADABLE with the cause kept', async () => {
    const failure = new Error('connection reset');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('{"a":1}\n');
      throw failure;
    }
    let caught: unknown;
    try {
      for await (const record of readRecords(failing(), { format: 'jsonl', file: 's3://b/train.jsonl' })) void record;
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DatasetError);
    expect((caught as DatasetError).code).toBe('DATASET_UNREADABLE');
    expect((caught as DatasetError).cause).toBe(failure);
    expect((caught as DatasetError).message).toMatch(/^s3:\/\/b\/train.jsonl: cannot be read \(connection reset\)/);
  });

  it('turns a failing source into DATASET_UNREADABLE for CSV too', async () => {
    const failure = new Error('connection reset');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('text,urgent\na,1\n');
      throw failure;
    }
    const read = async () => {
      for await (const record of readRecords(failing(), { format: 'csv', file: 'train.csv' })) void record;
    };
    await expect(read()).rejects.toMatchObject({ name: 'DatasetError', code: 'DATASET_UNREADABLE', cause: failure });
  });

  it('reads a Node stream', async () => {
    const records: SourceRecord[] = [];
    for await (const record of readRecords(Readable.from([Buffer.from('{"a":1}\n{"a":2}\n')]), { format: 'jsonl', file: 'x.jsonl' })) {
      records.push(record);
    }
    expect(records.map((record) => record.record)).toEqual([{ a: 1 }, { a: 2 }]);
  });
});

describe('readRecords (CSV)', () => {
  it('handles a BOM, a quoted comma, a quoted newline, blank lines and a last line without newline', async () => {
    const text = '\uFEFFtext,urgent\n"late, again",1\n\n"first line\nsecond line\nthird",0\nplain,1\n"x ""quoted""",0';
    const { records, problems } = await readAll(text, 'csv');
    expect(problems).toEqual([]);
    expect(records).toEqual([
      { line: 2, record: { text: 'late, again', urgent: '1' } },
      { line: 4, record: { text: 'first line\nsecond line\nthird', urgent: '0' } },
      { line: 7, record: { text: 'plain', urgent: '1' } },
      { line: 8, record: { text: 'x "quoted"', urgent: '0' } },
    ]);
  });

  it('reports rows with the wrong number of fields and keeps reading', async () => {
    const { records, problems } = await readAll('text,urgent\nlate, again,1\nok,0\n', 'csv');
    expect(records).toEqual([{ line: 3, record: { text: 'ok', urgent: '0' } }]);
    expect(problems).toEqual([
      { file: 'train.csv', line: 2, value: 'late,again,1', message: 'has 3 fields but the header has 2; quote values that contain commas' },
    ]);
  });

  it('reports a quote that is never closed and stops there', async () => {
    const { records, problems } = await readAll('text,urgent\nok,1\n"never closed,0\nmore,1\n', 'csv');
    expect(records).toEqual([{ line: 2, record: { text: 'ok', urgent: '1' } }]);
    expect(problems).toHaveLength(1);
    expect(problems[0].line).toBe(3);
    expect(problems[0].message).toMatch(/^cannot be parsed as CSV \(Quote Not Closed.*\); check the quotes in the record starting on this line$/);
  });

  it('reports a stray quote in the middle of a file, keeping the records before it', async () => {
    const rows = Array.from({ length: 50 }, (_, index) => `row ${index},1`);
    const text = `text,urgent\n${rows.join('\n')}\n"bad"quote,1\nafter,0\n`;
    const { records, problems } = await readAll(text, 'csv');
    expect(records).toHaveLength(50);
    expect(records.at(-1)).toEqual({ line: 51, record: { text: 'row 49', urgent: '1' } });
    expect(problems.map((problem) => problem.line)).toEqual([52]);
    expect(problems[0].message).toMatch(/^cannot be parsed as CSV \(Invalid Closing Quote/);
  });

  it('reports duplicate and empty header names', async () => {
    const { problems } = await readAll('text,urgent,text,\na,1,b,c\n', 'csv');
    expect(problems.map((problem) => [problem.line, problem.message])).toEqual([
      [1, 'header names column "text" twice; column names must be unique'],
      [1, 'header column 4 has no name; name every column'],
    ]);
  });
});

describe('validateRecord', () => {
  it('coerces labels: binary to 0/1, multiclass to the class index, regression to a number', () => {
    expect(validateRecord({ text: 'help', urgent: true, team: 'account', hours: 2.5 }, textSpec, at)).toEqual({
      row: { input: { text: 'help' }, labels: { urgent: 1, team: 2, hours: 2.5 } },
      problems: [],
    });
  });

  it.each([
    [true, 1],
    [false, 0],
    [1, 1],
    [0, 0],
    ['1', 1],
    ['0', 0],
    ['true', 1],
    [' FALSE ', 0],
  ])('accepts the binary label %j as %d', (value, label) => {
    expect(validateRecord({ text: 'x', urgent: value }, textSpec, at).row?.labels.urgent).toBe(label);
  });

  it('masks missing labels (absent, null or empty) but keeps the row', () => {
    const result = validateRecord({ text: 'x', urgent: null, team: '', hours: 4 }, textSpec, at);
    expect(result).toEqual({ row: { input: { text: 'x' }, labels: { urgent: null, team: null, hours: 4 } }, problems: [] });
  });

  it.each([
    [{ text: 'x', urgent: 'maybe' }, 'urgent', 'maybe', 'label "maybe" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"'],
    [{ text: 'x', urgent: 2 }, 'urgent', 2, 'label 2 is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"'],
    [{ text: 'x', team: 'sales' }, 'team', 'sales', 'label "sales" is not one of billing | technical | account'],
    [{ text: 'x', team: 'Billing' }, 'team', 'Billing', 'label "Billing" is not one of billing | technical | account; did you mean "billing"?'],
    [{ text: 'x', team: ['billing'] }, 'team', ['billing'], 'label ["billing"] (an array) is not one of billing | technical | account'],
    [{ text: 'x', hours: 'soon' }, 'hours', 'soon', 'label "soon" is not a finite number'],
    [{ text: 'x', hours: '0x10' }, 'hours', '0x10', 'label "0x10" is not a finite number'],
    [{ text: 'x', hours: 'Infinity' }, 'hours', 'Infinity', 'label "Infinity" is not a finite number'],
  ])('reports a bad label in %j', (record, task, value, message) => {
    const result = validateRecord(record, textSpec, at);
    expect(result.row).toBeUndefined();
    expect(result.problems).toEqual([{ file: 'train.jsonl', line: 812, task, field: task, value, message }]);
  });

  it('renders a label problem as file, line, task and message', () => {
    const [problem] = validateRecord({ text: 'x', urgent: 'maybe' }, textSpec, at).problems;
    expect(formatProblem(problem)).toBe(
      'train.jsonl line 812, task "urgent": label "maybe" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
    );
  });

  it('reports a row with no label for any task', () => {
    expect(validateRecord({ text: 'x', urgent: '', team: null }, textSpec, at).problems).toEqual([
      { file: 'train.jsonl', line: 812, value: undefined, message: 'has no label for any task (urgent, team, hours); every row needs at least one label' },
    ]);
  });

  it('reports every problem of a row at once', () => {
    const result = validateRecord({ text: '  ', urgent: 'maybe', team: 'sales', hours: 'x' }, textSpec, at);
    expect(result.problems.map((problem) => problem.field)).toEqual(['text', 'urgent', 'team', 'hours']);
  });

  it.each([
    [{ urgent: 1 }, undefined, 'field "text" is missing; every row needs the text the base model reads'],
    [{ text: '', urgent: 1 }, '', 'field "text" is empty; every row needs the text the base model reads'],
    [{ text: 42, urgent: 1 }, 42, 'field "text" is 42, expected text'],
  ])('reports a bad text input in %j', (record, value, message) => {
    expect(validateRecord(record, textSpec, at).problems).toEqual([{ file: 'train.jsonl', line: 812, field: 'text', value, message }]);
  });

  it('coerces tabular CSV strings: numbers parsed, empty numeric values left for imputation', () => {
    const result = validateRecord({ age: ' 42 ', spend: '', plan: 'pro', urgent: '1', team: 'billing', hours: '1.5e1' }, tabularSpec, {
      file: 'train.csv',
      line: 2,
    });
    expect(result).toEqual({ row: { input: { age: 42, spend: null, plan: 'pro' }, labels: { urgent: 1, team: 0, hours: 15 } }, problems: [] });
  });

  it('treats JSONL numbers and CSV strings alike for tabular columns', () => {
    const fromJson = validateRecord({ age: 42, spend: 10.5, plan: 3, hours: 1 }, tabularSpec, at).row;
    const fromCsv = validateRecord({ age: '42', spend: '10.5', plan: '3', hours: '1' }, tabularSpec, at).row;
    expect(fromJson).toEqual(fromCsv);
  });

  it('reports a non-numeric value in a numeric column', () => {
    expect(validateRecord({ age: 'forty', plan: 'pro', urgent: 1 }, tabularSpec, { file: 'train.csv', line: 9 }).problems).toEqual([
      { file: 'train.csv', line: 9, field: 'age', value: 'forty', message: 'column "age" is "forty", not a number; leave it empty (or ?, NA) if unknown' },
    ]);
  });

  it.each([
    [[1, 2, 3], undefined],
    ['[1, 2, 3]', undefined],
    [[1, 2], 'field "features" has 2 values, expected 3 (baseModel.dimension)'],
    [[1, 'x', 3], 'field "features" item 1 is "x", not a finite number'],
    ['1 2 3', 'field "features" is "1 2 3", expected an array of 3 numbers'],
    ['[1, 2', 'field "features" is not a JSON array of numbers; write it as [0.1, 0.2, …]'],
    [undefined, 'field "features" is missing; every row needs a vector of 3 numbers'],
  ])('checks a feature vector %j', (features, message) => {
    const result = validateRecord({ features, urgent: 0 }, featuresSpec, at);
    if (message === undefined) expect(result.row?.input).toEqual({ features: [1, 2, 3] });
    else expect(result.problems.map((problem) => problem.message)).toEqual([message]);
  });

  it('reads a packed vector {"b64": little-endian float32} as the same values, and names what is wrong with a bad one', () => {
    const pack = (values: number[]) => Buffer.from(Float32Array.from(values).buffer).toString('base64');
    const result = validateRecord({ features: { b64: pack([1, 2.5, -3]) }, urgent: 0 }, featuresSpec, at);
    expect(result.row?.input.features).toBeInstanceOf(Float32Array);
    expect(Array.from(result.row?.input.features as Float32Array)).toEqual([1, 2.5, -3]);
    // Unpadded and URL-safe base64 are base64 too.
    const urlSafe = validateRecord({ features: { b64: Buffer.from(Float32Array.of(1, 2.5, -3).buffer).toString('base64url') }, urgent: 0 }, featuresSpec, at);
    expect(Array.from(urlSafe.row?.input.features as Float32Array)).toEqual([1, 2.5, -3]);
    const problem = (features: unknown) => validateRecord({ features, urgent: 0 }, featuresSpec, at).problems.map((p) => p.message);
    expect(problem({ b64: pack([1, 2]) })).toEqual([
      expect.stringMatching(/^field "features".b64 holds 8 bytes \(2 float32 values\), expected 12 bytes for 3 values/),
    ]);
    expect(problem({ b64: pack([1, Number.POSITIVE_INFINITY, 3]) })).toEqual(['field "features".b64 item 1 is Infinity, not a finite number']);
    expect(problem({ b64: 42 })).toEqual([expect.stringMatching(/^field "features".b64 is 42, not base64 text/)]);
  });

  // Node's decoder skips characters outside the alphabet, stops at "=" and reads "ī" (U+012B) as "+":
  // a text of about the right length with one of them can still fill the vector, so each must be caught.
  it.each([
    ['a character outside the alphabet', (text: string) => `${text.slice(0, 5)}!${text.slice(6)}`],
    ['one more character, outside the alphabet', (text: string) => `${text.slice(0, 5)}!${text.slice(5)}`],
    ['a space', (text: string) => `${text.slice(0, 5)} ${text.slice(6)}`],
    ['a "=" inside', (text: string) => `${text.slice(0, 5)}=${text.slice(6)}`],
    ['a character above U+00FF whose low byte is "+"', (text: string) => `${text.slice(0, 5)}\u012b${text.slice(6)}`],
    ['a Latin-1 letter', (text: string) => `${text.slice(0, 5)}é${text.slice(6)}`],
    ['padding where none belongs', (text: string) => `${text}=`],
  ])('refuses a packed vector of about the right length with %s as not base64', (_, spoil) => {
    const text = Buffer.from(Float32Array.of(1, 2.5, -3).buffer).toString('base64');
    const spoilt = spoil(text);
    const result = validateRecord({ features: { b64: spoilt }, urgent: 0 }, featuresSpec, at);
    expect(result.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^field "features".b64 (is .*, not base64 text|holds 11 bytes)/)]);
  });

  it.each([0, 1, 2, 3, 4])('names a NaN or an infinity at item %i of a packed vector', (position) => {
    const spec = parseSpec({
      project: 'demo',
      baseModel: { kind: 'features', dimension: 5 },
      datasets: { train: 'train.jsonl' },
      tasks: [{ name: 'urgent', type: 'binary' }],
    });
    for (const bad of [Number.NaN, Number.NEGATIVE_INFINITY]) {
      const values = [1, -0, 3e38, -2.5, 1e-45].map((v, i) => (i === position ? bad : v));
      const b64 = Buffer.from(Float32Array.from(values).buffer).toString('base64');
      expect(validateRecord({ features: { b64 }, urgent: 0 }, spec, at).problems.map((p) => p.message)).toEqual([
        `field "features".b64 item ${position} is ${bad}, not a finite number`,
      ]);
    }
  });

  it('reads a packed vector with its padding, a shortened one or none, and one with a needless trailing character, as the same values', () => {
    const spec = parseSpec({
      project: 'demo',
      baseModel: { kind: 'features', dimension: 4 },
      datasets: { train: 'train.jsonl' },
      tasks: [{ name: 'urgent', type: 'binary' }],
    });
    const padded = Buffer.from(Float32Array.of(1, 2.5, -3, 4).buffer).toString('base64');
    expect(padded).toMatch(/[^=]==$/);
    for (const b64 of [padded, padded.slice(0, -1), padded.slice(0, -2)]) {
      expect(Array.from(validateRecord({ features: { b64 }, urgent: 0 }, spec, at).row?.input.features as Float32Array)).toEqual([1, 2.5, -3, 4]);
    }
    // 17 characters hold 12 bytes and 6 bits to spare, which base64 drops.
    const longer = `${Buffer.from(Float32Array.of(1, 2.5, -3).buffer).toString('base64')}A`;
    expect(Array.from(validateRecord({ features: { b64: longer }, urgent: 0 }, featuresSpec, at).row?.input.features as Float32Array)).toEqual([1, 2.5, -3]);
  });
});

describe('validateDataset', () => {
  const jsonl = [
    '{"text":"charged twice","urgent":1,"team":"billing","hours":3}',
    '{"text":"app crashes","urgent":"0","team":"technical"}',
    '',
    '{"text":"cannot log in","urgent":"maybe","team":"account","hours":1}',
    '{"text":"reset password","team":"account","hours":"2"}',
    '{"text":"refund","team":"sales","hours":4}',
    '{"text":"no labels at all"}',
    '{"text":"sync stopped","urgent":true,"team":"technical","hours":"lots"}',
  ].join('\n');

  it('counts rows, labels per task and classes, and reports each problem with its line', async () => {
    const report = await validateDataset(chunked(jsonl), textSpec, { file: 'train.jsonl', format: 'jsonl' });
    expect(report).toMatchObject({
      file: 'train.jsonl',
      format: 'jsonl',
      rows: 7,
      validRows: 3,
      labelledPerTask: { urgent: 2, team: 3, hours: 2 },
      classCounts: { urgent: { '0': 1, '1': 1 }, team: { billing: 1, technical: 1, account: 1 } },
      problemCount: 4,
      truncatedProblems: false,
      sizeBytes: Buffer.byteLength(jsonl),
    });
    expect(formatProblems(report.problems)).toBe(
      [
        'train.jsonl line 4, task "urgent": label "maybe" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
        'train.jsonl line 6, task "team": label "sales" is not one of billing | technical | account',
        'train.jsonl line 7: has no label for any task (urgent, team, hours); every row needs at least one label',
        'train.jsonl line 8, task "hours": label "lots" is not a finite number',
      ].join('\n'),
    );
  });

  it('reports CSV problems at the physical line, past quoted newlines', async () => {
    const csv = 'text,urgent,team,hours\n"two\nlines",1,billing,2\n"three\nline\ntext",yes,billing,2\nok,0,account,\n';
    const report = await validateDataset(chunked(csv, 5), textSpec, { file: 'train.csv', format: 'csv' });
    expect(report.rows).toBe(3);
    expect(report.problems).toEqual([
      {
        file: 'train.csv',
        line: 4,
        task: 'urgent',
        field: 'urgent',
        value: 'yes',
        message: 'label "yes" is not 0 or 1 (true/false also accepted); name the value that means 1 with "positive"',
      },
    ]);
    expect(report.labelledPerTask).toEqual({ urgent: 2, team: 2, hours: 1 });
  });

  it('keeps at most maxProblems problems but counts them all', async () => {
    const lines = Array.from({ length: 30 }, (_, index) => JSON.stringify({ text: `t${index}`, urgent: 'maybe' }));
    lines.push(JSON.stringify({ text: 'fine', urgent: 1 }), JSON.stringify({ text: 'fine', urgent: 0, team: 'billing', hours: 1 }));
    const report = await validateDataset(chunked(lines.join('\n')), textSpec, { file: 'train.jsonl', format: 'jsonl', maxProblems: 5 });
    expect(report.problems.map((problem) => problem.line)).toEqual([1, 2, 3, 4, 5]);
    expect(report.problemCount).toBe(30);
    expect(report.truncatedProblems).toBe(true);
    expect(report.validRows).toBe(2);
    expect(formatProblems(report.problems, { total: report.problemCount }).split('\n').at(-1)).toBe('… and 25 more problems');
  });

  it('reports whole-file problems: a task nobody labelled and a binary task with one class', async () => {
    const text = ['{"text":"a","urgent":1,"team":"billing"}', '{"text":"b","urgent":1}'].join('\n');
    const report = await validateDataset(chunked(text), textSpec, { file: 'train.jsonl', format: 'jsonl' });
    expect(formatProblems(report.problems)).toBe(
      [
        'train.jsonl, task "urgent": every labelled row is 1; a binary task needs examples of both 0 and 1',
        'train.jsonl, task "hours": no valid row has a label in column "hours"; check the label column name or remove the task',
      ].join('\n'),
    );
  });

  it('reports an empty file', async () => {
    const report = await validateDataset(chunked('\n\n'), textSpec, { file: 'train.jsonl', format: 'jsonl' });
    expect(report.problems).toEqual([
      { file: 'train.jsonl', value: undefined, message: 'has no data rows; check that the file is not empty and has the right format' },
    ]);
  });

  it('digests the exact bytes: stable across chunk sizes, different for different bytes', async () => {
    const expected = createHash('sha256').update(jsonl).digest('hex');
    const small = await validateDataset(chunked(jsonl, 3), textSpec, { file: 'train.jsonl', format: 'jsonl' });
    const large = await validateDataset(chunked(jsonl, 4096), textSpec, { file: 'train.jsonl', format: 'jsonl' });
    const changed = await validateDataset(chunked(`${jsonl}\n`), textSpec, { file: 'train.jsonl', format: 'jsonl' });
    expect(small.digest).toBe(expected);
    expect(large.digest).toBe(expected);
    expect(changed.digest).not.toBe(expected);
  });

  it('assertValidDataset throws a DatasetError listing the problems', async () => {
    const report = await validateDataset(chunked(jsonl), textSpec, { file: 'train.jsonl', format: 'jsonl' });
    expect(() => assertValidDataset(report)).toThrow(/^train.jsonl: 4 problems:\ntrain.jsonl line 4, task "urgent"/);
    let caught: unknown;
    try {
      assertValidDataset(report);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DatasetError);
    expect((caught as DatasetError).code).toBe('DATASET_INVALID');
    expect((caught as DatasetError).problems).toHaveLength(4);
  });

  it.each([
    ['support-triage', 'train.jsonl', { urgent: 185, category: 200, hours: 178 }],
    ['tabular', 'train.csv', { churned: 60, spend: 52 }],
  ])('validates examples/%s/%s with masked labels and no problems', async (example, file, labelled) => {
    const spec = parseSpecJson(readFileSync(`examples/${example}/spec.json`, 'utf8'));
    const report = await validateDataset(createReadStream(`examples/${example}/${file}`), spec, { file, format: spec.datasets.format });
    expect(report.problems).toEqual([]);
    expect(report.validRows).toBe(report.rows);
    expect(report.labelledPerTask).toEqual(labelled);
  });
});

describe('binary labels with positive', () => {
  const specWith = (positive: string | string[]) =>
    parseSpec({
      project: 'demo',
      baseModel: { kind: 'text' },
      datasets: { train: 'train.jsonl' },
      tasks: [
        { name: 'churn', type: 'binary', positive },
        { name: 'spend', type: 'regression' },
      ],
    });
  const labelOf = (spec: ReturnType<typeof specWith>, value: unknown) => validateRecord({ text: 'x', churn: value, spend: 1 }, spec, at).row?.labels.churn;

  it.each([
    ['churned', 'churned', 1],
    ['churned', ' churned ', 1],
    ['churned', 'stayed', 0],
    ['churned', 'Churned', 0],
    ['churned', '1', 0],
    [['churned', 'left'], 'left', 1],
    [['churned', 'left'], 'churned', 1],
    [['churned', 'left'], 'stayed', 0],
    [['yes', 'true'], true, 1],
    ['1', 1, 1],
    ['1', 0, 0],
  ])('with positive %j reads the label %j as %d', (positive, value, label) => {
    expect(labelOf(specWith(positive), value)).toBe(label);
  });

  it.each([[undefined], [null], [''], ['?'], [' NA ']])('leaves the label %j unlabelled, never 0', (value) => {
    expect(labelOf(specWith('churned'), value)).toBeNull();
  });

  it('keeps a missing word that the task names as its own value', () => {
    expect(labelOf(specWith('NA'), 'NA')).toBe(1);
    const regions = parseSpec({
      project: 'demo',
      baseModel: { kind: 'text' },
      datasets: { train: 'train.jsonl' },
      tasks: [{ name: 'region', type: 'multiclass', classes: ['EU', 'NA'] }],
    });
    expect(validateRecord({ text: 'x', region: 'NA' }, regions, at).row?.labels.region).toBe(1);
  });

  it('reports a label that cannot be compared, naming the positive values', () => {
    expect(validateRecord({ text: 'x', churn: ['churned'] }, specWith('churned'), at).problems[0].message).toBe(
      'label ["churned"] (an array) is not a value to compare with "positive" ("churned"); give a string, number or boolean',
    );
  });
});

describe('CSV trimming and missing numbers', () => {
  it('trims the spaces around unquoted values by default, keeps quoted ones, and reads them as given with trim off', async () => {
    const read = async (text: string, trim?: boolean) => {
      const records: Record<string, unknown>[] = [];
      for await (const { record } of readRecords(chunked(text), { format: 'csv', file: 'train.csv', ...(trim === undefined ? {} : { trim }) }))
        records.push(record);
      return records;
    };
    expect(await read('age, plan, churn\n42, pro, churned\n7, " basic ", stayed \n')).toEqual([
      { age: '42', plan: 'pro', churn: 'churned' },
      { age: '7', plan: ' basic ', churn: 'stayed' },
    ]);
    expect(await read('age, plan, churn\n42, pro, churned\n', false)).toEqual([{ age: '42', plan: ' pro', churn: ' churned' }]);
  });

  it('follows datasets.csv.trim in validateDataset', async () => {
    const specOf = (trim: boolean) =>
      parseSpec({
        project: 'demo',
        baseModel: { kind: 'tabular', numeric: ['age'] },
        datasets: { train: 'train.csv', csv: { trim } },
        tasks: [{ name: 'churn', type: 'binary', positive: 'churned' }],
      });
    const text = 'age, churn\n42, churned\n7, stayed\n';
    expect((await validateDataset(chunked(text), specOf(true), { file: 'train.csv', format: 'csv' })).classCounts.churn).toEqual({ '0': 1, '1': 1 });
    // Header names are always trimmed, and positive is compared after trimming the label.
    const untrimmedHeader = await validateDataset(chunked('age,churn\n42, churned\n7, stayed\n'), specOf(false), { file: 'train.csv', format: 'csv' });
    expect(untrimmedHeader.classCounts.churn).toEqual({ '0': 1, '1': 1 });
  });

  it.each([['?'], ['NA'], ['N/A'], ['NaN'], [' ? '], ['null'], ['']])('reads %j in a numeric column as missing', (value) => {
    expect(validateRecord({ age: value, plan: 'pro', urgent: '1' }, tabularSpec, at).row?.input.age).toBeNull();
  });
});

describe('ProblemSummary', () => {
  const problem = (line: number, extra: Partial<DatasetProblem> = {}): DatasetProblem => ({
    file: 'train.csv',
    line,
    value: 'x',
    message: `bad ${line}`,
    ...extra,
  });

  it('groups problems by file, task or column and kind, with a count, the first three and every line in the full list', () => {
    const summary = new ProblemSummary();
    for (let line = 2; line < 12; line += 1) summary.add(problem(line, { task: 'churn', field: 'status' }));
    summary.add(problem(5, { field: 'age' }));
    summary.add({ file: 'valid.csv', value: undefined, message: 'has no data rows' });

    expect(
      summary.groups().map(({ file, task, field, kind, count, examples }) => ({ file, task, field, kind, count, lines: examples.map((e) => e.line) })),
    ).toEqual([
      { file: 'train.csv', task: 'churn', field: 'status', kind: 'label', count: 10, lines: [2, 3, 4] },
      { file: 'train.csv', task: undefined, field: 'age', kind: 'input', count: 1, lines: [5] },
      { file: 'valid.csv', task: undefined, field: undefined, kind: 'file', count: 1, lines: [undefined] },
    ]);
    expect(summary.format({ fullListAt: 'problems.txt' }).split('\n')).toEqual([
      'train.csv, task "churn": 10 problems, the first 3:',
      '  line 2: bad 2',
      '  line 3: bad 3',
      '  line 4: bad 4',
      'train.csv, column "age": 1 problem:',
      '  line 5: bad 5',
      'valid.csv: 1 problem:',
      '  has no data rows',
      'every problem, one a line: problems.txt',
    ]);
    expect(summary.fullText().trimEnd().split('\n')).toHaveLength(12);
  });

  it('escapes control characters from the data in the summary, so a binary file cannot drive the terminal', () => {
    const summary = new ProblemSummary({ tasks: tabularSpec.tasks });
    summary.add({ file: 'train.csv', line: 2, task: 'urgent', field: 'urgent', value: '\u001b[2J', message: 'label "\u001b[2J\n" is not 0 or 1' });

    expect(summary.format()).toBe('train.csv, task "urgent": 1 problem:\n  line 2: label "\\u001b[2J\\u000a" is not 0 or 1');
  });

  it('suggests the classes to add when multiclass labels fall outside them, most frequent first', () => {
    const summary = new ProblemSummary({ tasks: tabularSpec.tasks });
    ['sales', 'sales', 'legal'].forEach((value, i) =>
      summary.add({
        file: 'train.csv',
        line: i + 2,
        task: 'team',
        field: 'team',
        value,
        message: `label "${value}" is not one of billing | technical | account`,
      }),
    );

    expect(summary.groups()[0].fix).toBe('add "sales", "legal" to "classes" of task "team", or correct those labels (values seen: "sales" 2, "legal" 1)');
  });

  it('stays within a screenful however many columns go wrong, and counts what the full list leaves out past its cap', () => {
    const summary = new ProblemSummary({ maxListedProblems: 500 });
    for (let line = 2; line < 100_002; line += 1) summary.add(problem(line, { field: `c${line % 40}`, message: 'x'.repeat(500) }));

    const lines = summary.format().split('\n');
    expect(lines.length).toBeLessThanOrEqual(30);
    expect(Math.max(...lines.map((line) => line.length))).toBeLessThanOrEqual(200);
    expect(lines.at(-1)).toBe('… and 85,000 more problems of 34 other kinds');
    const full = summary.fullText().trimEnd().split('\n');
    expect(full).toHaveLength(501);
    expect(full.at(-1)).toBe('… and 99,500 more problems, not listed');
  });
});

describe('splitOf', () => {
  const options = { validationFraction: 0.15, holdoutFraction: 0.15, seed: 1 };

  it('puts about the configured fraction of rows in each split', () => {
    const counts = { train: 0, validation: 0, holdout: 0 };
    for (let row = 0; row < 20000; row += 1) counts[splitOf(row, options)] += 1;
    expect(counts.validation / 20000).toBeCloseTo(0.15, 1);
    expect(counts.holdout / 20000).toBeCloseTo(0.15, 1);
    expect(Math.abs(counts.holdout / 20000 - 0.15)).toBeLessThan(0.01);
    expect(Math.abs(counts.validation / 20000 - 0.15)).toBeLessThan(0.01);
  });

  it('is deterministic, agrees for an index and the same key as a string, and depends on the seed', () => {
    const first = Array.from({ length: 200 }, (_, row) => splitOf(row, options));
    const again = Array.from({ length: 200 }, (_, row) => splitOf(String(row), options));
    const reseeded = Array.from({ length: 200 }, (_, row) => splitOf(row, { ...options, seed: 2 }));
    expect(again).toEqual(first);
    expect(reseeded).not.toEqual(first);
  });

  it('sends everything to train when both fractions are 0', () => {
    const splits = new Set(Array.from({ length: 500 }, (_, row) => splitOf(`ticket-${row}`, { ...options, validationFraction: 0, holdoutFraction: 0 })));
    expect([...splits]).toEqual(['train']);
  });
});

describe('validateInputs', () => {
  it('checks and coerces only the base-model inputs of a record that carries no labels', () => {
    const baseModels = [
      { kind: 'tabular' as const, numeric: ['age'], categorical: ['plan'], maxCategories: 5 },
      { kind: 'features' as const, field: 'vec', dimension: 2 },
    ];

    const good = validateInputs({ age: '41', plan: 'pro', vec: [1, 2] }, baseModels, { file: 'request', line: 0 });
    const bad = validateInputs({ age: 'old', plan: 'pro', vec: [1] }, baseModels, { file: 'request', line: 3 });

    expect(good).toEqual({ input: { age: 41, plan: 'pro', vec: [1, 2] }, problems: [] });
    expect(bad.input).toBeUndefined();
    expect(bad.problems.map((p) => [p.line, p.field])).toEqual([
      [3, 'age'],
      [3, 'vec'],
    ]);
  });
});
