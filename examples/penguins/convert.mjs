// Rebuilds penguins.jsonl from the Palmer penguins data as published in the npm package
// vega-datasets (data/penguins.json): `npm pack vega-datasets && tar xzf vega-datasets-*.tgz`,
// then `node convert.mjs package/data/penguins.json > penguins.jsonl`.
import { readFileSync } from 'node:fs';

const rows = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const number = (value) => (typeof value === 'number' && Number.isFinite(value) ? value : null);
for (const row of rows) {
  const sex = row.Sex === 'MALE' ? 1 : row.Sex === 'FEMALE' ? 0 : null;
  process.stdout.write(
    `${JSON.stringify({
      island: row.Island,
      bill_length_mm: number(row['Beak Length (mm)']),
      bill_depth_mm: number(row['Beak Depth (mm)']),
      flipper_length_mm: number(row['Flipper Length (mm)']),
      species: row.Species,
      male: sex,
      body_mass_g: number(row['Body Mass (g)']),
    })}\n`,
  );
}
