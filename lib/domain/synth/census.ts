import { SynthError } from '#lib/domain/synth/errors.ts';
import { deriveSeed, Random } from '#lib/domain/random/index.ts';

/**
 * A census-like table with the properties that make public tabular data hard for a neural head
 * and easy for gradient-boosted trees (UCI Adult is the model): numeric columns that are mostly
 * zero with a long tail (capital gains and losses), a heavily skewed weight, `?` for missing
 * values in categoricals and in one numeric column, a categorical of 40+ levels dominated by one
 * (country), and two binary tasks whose log-odds hold thresholds and interactions (a gain over
 * a cut-off, a loss band, marriage × sex × hours, occupation × workclass), not sums of smooth terms.
 * Labels are strings (`>50K` / `<=50K`, `yes` / `no`), as public files write them.
 */
export const CENSUS_NUMERIC = ['age', 'fnlwgt', 'education_num', 'capital_gain', 'capital_loss', 'hours_per_week'] as const;
export const CENSUS_CATEGORICAL = ['workclass', 'education', 'marital_status', 'occupation', 'relationship', 'race', 'sex', 'native_country'] as const;
export const CENSUS_COLUMNS = [...CENSUS_NUMERIC, ...CENSUS_CATEGORICAL, 'income', 'loan_default'] as const;
export type CensusColumn = (typeof CENSUS_COLUMNS)[number];
export type CensusRow = Record<CensusColumn, string>;

export const MISSING = '?';

export interface CensusOptions {
  rows: number;
  seed: number;
}

const WORKCLASS = ['Private', 'Self-emp-not-inc', 'Self-emp-inc', 'Federal-gov', 'Local-gov', 'State-gov', 'Without-pay', 'Never-worked'];
const WORKCLASS_WEIGHTS = [0.74, 0.08, 0.035, 0.03, 0.065, 0.04, 0.005, 0.005];
const EDUCATION = [
  'Preschool',
  '1st-4th',
  '5th-6th',
  '7th-8th',
  '9th',
  '10th',
  '11th',
  '12th',
  'HS-grad',
  'Some-college',
  'Assoc-voc',
  'Assoc-acdm',
  'Bachelors',
  'Masters',
  'Prof-school',
  'Doctorate',
];
const EDUCATION_WEIGHTS = [0.002, 0.005, 0.01, 0.02, 0.016, 0.029, 0.036, 0.013, 0.32, 0.22, 0.042, 0.033, 0.165, 0.054, 0.018, 0.013];
const MARITAL = ['Married-civ-spouse', 'Never-married', 'Divorced', 'Separated', 'Widowed', 'Married-spouse-absent', 'Married-AF-spouse'];
const MARITAL_WEIGHTS = [0.46, 0.33, 0.136, 0.031, 0.03, 0.012, 0.001];
const OCCUPATION = [
  'Prof-specialty',
  'Craft-repair',
  'Exec-managerial',
  'Adm-clerical',
  'Sales',
  'Other-service',
  'Machine-op-inspct',
  'Transport-moving',
  'Handlers-cleaners',
  'Farming-fishing',
  'Tech-support',
  'Protective-serv',
  'Priv-house-serv',
  'Armed-Forces',
];
const OCCUPATION_WEIGHTS = [0.135, 0.133, 0.132, 0.122, 0.118, 0.106, 0.065, 0.052, 0.045, 0.032, 0.03, 0.021, 0.005, 0.004];
/** Log-odds of the income task per occupation (professional and managerial work pays). */
const OCCUPATION_INCOME = [0.9, 0.0, 1.1, -0.5, 0.2, -1.3, -0.6, -0.3, -1.1, -0.8, 0.4, 0.4, -2.0, 0.0];
const RACE = ['White', 'Black', 'Asian-Pac-Islander', 'Amer-Indian-Eskimo', 'Other'];
const RACE_WEIGHTS = [0.855, 0.096, 0.031, 0.01, 0.008];
/** 41 countries, United-States most of the rows as in the census, the rest a long tail. */
const COUNTRIES = [
  'United-States',
  'Mexico',
  'Philippines',
  'Germany',
  'Canada',
  'Puerto-Rico',
  'El-Salvador',
  'India',
  'Cuba',
  'England',
  'Jamaica',
  'South',
  'China',
  'Italy',
  'Dominican-Republic',
  'Vietnam',
  'Guatemala',
  'Japan',
  'Poland',
  'Columbia',
  'Taiwan',
  'Haiti',
  'Iran',
  'Portugal',
  'Nicaragua',
  'Peru',
  'France',
  'Greece',
  'Ecuador',
  'Ireland',
  'Hong',
  'Cambodia',
  'Trinadad&Tobago',
  'Laos',
  'Thailand',
  'Yugoslavia',
  'Outlying-US',
  'Hungary',
  'Honduras',
  'Scotland',
  'Holand-Netherlands',
];
/** United-States ~90%; the others fall off as 1/rank (Zipf), so the tail levels have a handful of rows each. */
const COUNTRY_WEIGHTS = COUNTRIES.map((_, i) => (i === 0 ? 0.9 : 0.1 / (i * harmonic(COUNTRIES.length - 1))));
/** A per-country income effect drawn once from a fixed stream, so rare countries carry signal trees can find and a linear model cannot pool. */
const COUNTRY_INCOME = (() => {
  const random = new Random(deriveSeed(7, 'country-effects'));
  return COUNTRIES.map((_, i) => (i === 0 ? 0 : 0.9 * random.normal()));
})();

/** Missing shares: `?` as public census files write it. */
export const CENSUS_MISSING_SHARE = { workclass: 0.056, occupation: 0.057, native_country: 0.018, hours_per_week: 0.02 } as const;

function harmonic(n: number): number {
  let sum = 0;
  for (let k = 1; k <= n; k++) sum += 1 / k;
  return sum;
}

function pick(random: Random, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let u = random.uniform() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return weights.length - 1;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const clamp = (x: number, low: number, high: number) => Math.min(high, Math.max(low, x));

/** The table's rows, deterministic in (rows, seed): the same seed gives the same bytes on every machine. */
export function censusTable(options: CensusOptions): CensusRow[] {
  const { rows, seed } = options;
  if (!Number.isInteger(rows) || rows < 1)
    throw new SynthError(`censusTable: rows ${rows} is not a positive integer; pass a row count such as 32000`, { option: 'rows', value: rows });
  const random = new Random(deriveSeed(seed, 'census'));
  const table: CensusRow[] = [];
  for (let i = 0; i < rows; i++) {
    const sex = random.uniform() < 0.67 ? 'Male' : 'Female';
    const age = Math.round(clamp(17 + Math.abs(random.normal() * 15 + 20 * random.uniform()), 17, 90));
    const educationIndex = pick(random, EDUCATION_WEIGHTS);
    const educationNum = educationIndex + 1;
    const marital = age < 22 && random.uniform() < 0.85 ? 1 : pick(random, MARITAL_WEIGHTS);
    const married = marital === 0 || marital === 6;
    const relationship = married
      ? sex === 'Male'
        ? 'Husband'
        : 'Wife'
      : ['Not-in-family', 'Own-child', 'Unmarried', 'Other-relative'][pick(random, [0.45, 0.3, 0.18, 0.07])];
    const occupation = pick(
      random,
      OCCUPATION_WEIGHTS.map((w, k) => w * (educationNum >= 13 && (k === 0 || k === 2) ? 3 : 1)),
    );
    const workclass = pick(random, WORKCLASS_WEIGHTS);
    const race = pick(random, RACE_WEIGHTS);
    const country = pick(random, COUNTRY_WEIGHTS);
    // Hours peak hard at 40; the self-employed and managers work longer.
    const longHours = workclass === 1 || workclass === 2 || occupation === 2 ? 8 : 0;
    const hours = Math.round(clamp(random.uniform() < 0.45 ? 40 : 40 + longHours + random.normal() * 12, 1, 99));
    // Weights of census records: lognormal, a few very large.
    const fnlwgt = Math.round(Math.exp(12 + 0.5 * random.normal()));
    // Mostly zero, then a long tail; larger gains are more likely for the educated and self-employed.
    const gainOdds = -3.2 + 0.25 * (educationNum - 9) + (workclass === 2 ? 1.2 : 0) + (married ? 0.6 : 0);
    const capitalGain = random.uniform() < sigmoid(gainOdds) ? Math.round(Math.min(99999, Math.exp(7 + 1.6 * Math.abs(random.normal())))) : 0;
    const capitalLoss = capitalGain === 0 && random.uniform() < 0.047 ? Math.round(clamp(1900 + 350 * random.normal(), 150, 4356)) : 0;

    const income =
      -3.4 +
      2.6 * (married ? 1 : 0) +
      // Schooling pays, and pays more inside a marriage (two earners): an interaction, not a sum.
      (married ? 0.6 : 0.3) * (educationNum - 10) +
      // Earnings rise with age to the fifties and fall after.
      -0.003 * (age - 50) ** 2 +
      1.0 +
      1.3 * OCCUPATION_INCOME[occupation] +
      COUNTRY_INCOME[country] +
      // A gain above the cut-off all but settles it; a small one says little.
      (capitalGain > 7000 ? 6 : capitalGain > 0 ? 0.4 : 0) +
      // Losses in a band (deductions of higher earners) mean high income; others do not.
      (capitalLoss >= 1800 && capitalLoss <= 2300 ? 2.8 : capitalLoss > 0 ? -0.4 : 0) +
      // Long hours pay for married men, much less for anyone else.
      (married && sex === 'Male' ? 0.05 : 0.01) * (hours - 40) +
      (sex === 'Female' && !married ? -0.8 : 0) +
      (workclass === 2 ? 0.9 : 0) +
      // The young earn little whatever their schooling: education pays only from the late twenties.
      (age < 28 ? -1.8 - 0.3 * (educationNum - 10) : 0) +
      0.3 * random.normal();
    const loan =
      -2.2 +
      // Young and old borrowers default more; the middle-aged least.
      0.003 * (age - 42) ** 2 +
      // Long hours on a low-paid job is strain; long hours in management is not.
      (hours > 50 ? (OCCUPATION_INCOME[occupation] < 0 ? 2.2 : -0.8) : 0) +
      (workclass === 1 && occupation === 9 ? 2.5 : 0) +
      (capitalLoss > 0 ? 1.8 : 0) +
      (capitalGain > 7000 ? -2.5 : 0) +
      (married ? -1.2 : 0.5) +
      -0.25 * (educationNum - 10) +
      0.3 * random.normal();

    const missing = (column: keyof typeof CENSUS_MISSING_SHARE) => random.uniform() < CENSUS_MISSING_SHARE[column];
    table.push({
      age: String(age),
      fnlwgt: String(fnlwgt),
      education_num: String(educationNum),
      capital_gain: String(capitalGain),
      capital_loss: String(capitalLoss),
      hours_per_week: missing('hours_per_week') ? MISSING : String(hours),
      workclass: missing('workclass') ? MISSING : WORKCLASS[workclass],
      education: EDUCATION[educationIndex],
      marital_status: MARITAL[marital],
      occupation: missing('occupation') ? MISSING : OCCUPATION[occupation],
      relationship,
      race: RACE[race],
      sex,
      native_country: missing('native_country') ? MISSING : COUNTRIES[country],
      income: random.uniform() < sigmoid(income) ? '>50K' : '<=50K',
      loan_default: random.uniform() < sigmoid(loan) ? 'yes' : 'no',
    });
  }
  return table;
}

/** The rows as CSV with a header, written the way the census file is: a space after each comma. */
export function censusCsv(rows: readonly CensusRow[]): string {
  const lines = [CENSUS_COLUMNS.join(', ')];
  for (const row of rows) lines.push(CENSUS_COLUMNS.map((column) => row[column]).join(', '));
  return `${lines.join('\n')}\n`;
}
