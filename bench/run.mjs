#!/usr/bin/env node
// `npm run bench`: runs each benchmark (or those named on the command line), prints a table
// per benchmark with the ratios to its baseline, and writes bench/results/<name>.json.
import { mkdirSync, writeFileSync } from 'node:fs';

const all = {
  latency: () => import('./latency.mjs'),
  presence: () => import('./presence.mjs'),
  'push-api': () => import('./push-api.mjs'),
  'os-push': () => import('./os-push.mjs'),
};
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(all);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });

const fmt = (v) =>
  typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v);
for (const name of names) {
  const load = all[name];
  if (!load) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(all).join(', ')}`);
    process.exit(2);
  }
  const result = await (await load()).run();
  console.log(`\n## ${result.title}`);
  const cols = Object.keys(result.rows[0]);
  console.log(`| ${cols.join(' | ')} |\n| ${cols.map(() => '---').join(' | ')} |`);
  for (const row of result.rows) console.log(`| ${cols.map((c) => fmt(row[c])).join(' | ')} |`);
  if (!cols.includes('ratio')) {
    const ratios = Object.entries(result.ratios).map(([k, v]) => `${k} ${v.toFixed(2)}x`);
    console.log(`ratios (switchboard / baseline): ${ratios.join(', ')}`);
  }
  if (result.extra) console.log(JSON.stringify(result.extra, null, 2));
  writeFileSync(
    new URL(`./results/${name}.json`, import.meta.url),
    `${JSON.stringify({ ...result, at: new Date().toISOString() }, null, 2)}\n`,
  );
}
