// Regenerates the example datasets deterministically: `node examples/generate.mjs`.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// support-triage: ticket text → urgent (binary), category (multiclass), hours to resolve (regression).
{
  const random = mulberry32(42);
  const pick = (items) => items[Math.floor(random() * items.length)];
  const topics = {
    billing: {
      phrases: [
        'I was charged twice',
        'my invoice shows the wrong amount',
        'please refund my last payment',
        'the card payment failed',
        'why did my bill go up',
      ],
      hours: 6,
    },
    technical: {
      phrases: [
        'the app crashes on startup',
        'I get an error 500 when saving',
        'the sync stopped working',
        'the page will not load',
        'export to pdf is broken',
      ],
      hours: 20,
    },
    account: {
      phrases: [
        'I cannot log in',
        'please reset my password',
        'how do I change my email address',
        'I want to close my account',
        'two factor codes do not arrive',
      ],
      hours: 4,
    },
    shipping: {
      phrases: [
        'my parcel has not arrived',
        'the tracking number does not work',
        'the package arrived damaged',
        'can I change the delivery address',
        'the order shipped to the wrong city',
      ],
      hours: 30,
    },
  };
  const urgentCues = ['urgent', 'asap', 'this is blocking our whole team', 'we are losing customers', 'immediately please'];
  const calmCues = ['no rush', 'when you have a moment', 'just wondering', 'thanks in advance', 'not urgent'];
  const lines = [];
  for (let i = 0; i < 200; i += 1) {
    const category = pick(Object.keys(topics));
    const urgent = random() < 0.35 ? 1 : 0;
    const text = `${pick(topics[category].phrases)}, ${pick(urgent ? urgentCues : calmCues)}`;
    const hours = Math.round(topics[category].hours * (urgent ? 0.5 : 1) * (0.6 + 0.8 * random()) * 10) / 10;
    const row = { id: `t${String(i).padStart(4, '0')}`, text, urgent: urgent === 1, category, hours };
    // Some tickets were closed before anyone logged a resolution time, some never got triaged
    // for urgency: their labels are missing and the losses mask them.
    if (i % 9 === 4) delete row.hours;
    if (i % 13 === 7) row.urgent = null;
    lines.push(JSON.stringify(row));
  }
  writeFileSync(join(here, 'support-triage/train.jsonl'), `${lines.join('\n')}\n`);
}

// tabular: customer attributes → churned (binary), monthly spend next quarter (regression).
{
  const random = mulberry32(7);
  const pick = (items) => items[Math.floor(random() * items.length)];
  const rows = [['customer', 'tenure_months', 'monthly_charges', 'support_calls', 'plan', 'region', 'churned', 'next_quarter_spend']];
  for (let i = 0; i < 60; i += 1) {
    const tenure = Math.floor(1 + random() * 72);
    const plan = pick(['basic', 'standard', 'premium']);
    const charges = Math.round({ basic: 20, standard: 45, premium: 90 }[plan] * (0.8 + 0.4 * random()) * 100) / 100;
    const calls = Math.floor(random() * 6);
    const region = pick(['north', 'south', 'east, coastal', 'west']);
    const churnScore = 0.6 * (calls / 5) + 0.4 * (1 - tenure / 72) + (random() - 0.5) * 0.3;
    const churned = churnScore > 0.45 ? 1 : 0;
    const spend = churned ? 0 : Math.round(charges * 3 * (0.9 + 0.2 * random()) * 100) / 100;
    rows.push([
      `c${String(i).padStart(3, '0')}`,
      String(tenure),
      i % 11 === 5 ? '' : String(charges), // missing values are imputed by the base model
      String(calls),
      plan,
      region,
      String(churned),
      i % 8 === 3 ? '' : String(spend), // unknown future spend: masked label
    ]);
  }
  const quote = (value) => (/[",\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value);
  writeFileSync(join(here, 'tabular/train.csv'), `${rows.map((row) => row.map(quote).join(',')).join('\n')}\n`);
}
