import { describe, expect, it } from 'vitest';
import { CENSUS_COLUMNS, CENSUS_MISSING_SHARE, CENSUS_NUMERIC, censusCsv, censusTable, MISSING, SynthError, type CensusRow } from '#lib/domain/synth/index.ts';

const ROWS = 32_000;
const table = censusTable({ rows: ROWS, seed: 11 });
const share = (test: (row: CensusRow) => boolean) => table.filter(test).length / table.length;

describe('the census-like table for the quality bench', () => {
  it('is the same for the same seed and differs for another', () => {
    expect(censusCsv(censusTable({ rows: 500, seed: 11 }))).toBe(censusCsv(table.slice(0, 500)));
    expect(censusCsv(censusTable({ rows: 500, seed: 12 }))).not.toBe(censusCsv(table.slice(0, 500)));
  });

  it('has the rows, columns and the 40+-level categorical it promises', () => {
    expect(table).toHaveLength(ROWS);
    expect(Object.keys(table[0])).toEqual([...CENSUS_COLUMNS]);
    const countries = new Set(table.map((row) => row.native_country).filter((value) => value !== MISSING));
    expect(countries.size).toBeGreaterThanOrEqual(40);
    // One level dominates and the tail is thin: the rarest levels have a handful of rows.
    expect(share((row) => row.native_country === 'United-States')).toBeGreaterThan(0.85);
  });

  it('has mostly-zero, long-tailed numerics', () => {
    const skewness = (values: number[]) => {
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const moment = (k: number) => values.reduce((a, v) => a + (v - mean) ** k, 0) / values.length;
      return moment(3) / moment(2) ** 1.5;
    };
    for (const column of ['capital_gain', 'capital_loss'] as const) {
      const values = table.map((row) => Number(row[column]));
      const nonzero = values.filter((v) => v > 0).length / values.length;
      expect(nonzero, column).toBeLessThan(0.1);
      expect(nonzero, column).toBeGreaterThan(0.03);
      expect(skewness(values), column).toBeGreaterThan(3);
    }
    // Gains have a long tail of their own: the largest is many times the typical nonzero one.
    const gains = table
      .map((row) => Number(row.capital_gain))
      .filter((v) => v > 0)
      .sort((a, b) => a - b);
    expect(gains.at(-1)! / gains[Math.floor(gains.length / 2)]).toBeGreaterThan(10);
    expect(skewness(table.map((row) => Number(row.fnlwgt)))).toBeGreaterThan(1);
  });

  it('writes `?` for missing values in the promised shares, numeric columns otherwise numbers', () => {
    for (const [column, expected] of Object.entries(CENSUS_MISSING_SHARE)) {
      expect(
        share((row) => row[column as keyof CensusRow] === MISSING),
        column,
      ).toBeCloseTo(expected, 2);
    }
    for (const column of CENSUS_NUMERIC) {
      const bad = table.filter((row) => row[column] !== MISSING && !Number.isFinite(Number(row[column])));
      expect(bad, column).toEqual([]);
    }
  });

  it('has two string-labelled binary tasks, neither rare nor common', () => {
    expect(new Set(table.map((row) => row.income))).toEqual(new Set(['>50K', '<=50K']));
    expect(new Set(table.map((row) => row.loan_default))).toEqual(new Set(['yes', 'no']));
    expect(share((row) => row.income === '>50K')).toBeGreaterThan(0.15);
    expect(share((row) => row.income === '>50K')).toBeLessThan(0.4);
    expect(share((row) => row.loan_default === 'yes')).toBeGreaterThan(0.15);
    expect(share((row) => row.loan_default === 'yes')).toBeLessThan(0.4);
  });

  it('puts the signal in a threshold a linear term cannot draw: a gain above the cut-off means high income', () => {
    const high = table.filter((row) => Number(row.capital_gain) > 7000);
    const small = table.filter((row) => Number(row.capital_gain) > 0 && Number(row.capital_gain) <= 7000);
    const rate = (rows: CensusRow[]) => rows.filter((row) => row.income === '>50K').length / rows.length;
    expect(rate(high)).toBeGreaterThan(0.75);
    expect(rate(small)).toBeLessThan(rate(high) - 0.3);
  });

  it('writes CSV with a space after each comma, as the census file does', () => {
    const csv = censusCsv(table.slice(0, 2));
    expect(csv.split('\n')[0]).toBe(CENSUS_COLUMNS.join(', '));
    expect(csv.split('\n')).toHaveLength(4);
  });

  it('refuses a row count that is not a positive integer, naming it', () => {
    expect(() => censusTable({ rows: 0, seed: 1 })).toThrow(SynthError);
    expect(() => censusTable({ rows: 2.5, seed: 1 })).toThrow(/rows 2\.5 is not a positive integer/);
  });
});
