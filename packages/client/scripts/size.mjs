#!/usr/bin/env node
// The client's size as a browser app ships it: `node packages/client/scripts/size.mjs [--write]`.
// Bundles src/index.ts with esbuild (ESM, browser, minified), once with socket.io-client in
// the bundle and once with it left external, and gzips each with node:zlib (level 9).
// --write puts the table in packages/client/README.md between the size markers.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');

async function measure(label, options) {
  const result = await build({
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent',
    ...options,
  });
  const code = result.outputFiles[0].contents;
  return { label, min: code.length, gzip: gzipSync(code, { level: 9 }).length };
}

const rows = [
  await measure('`@switchboard/client` + socket.io-client (one bundle)', {
    entryPoints: [join(pkg, 'src/index.ts')],
  }),
  await measure('`@switchboard/client` alone (socket.io-client external)', {
    entryPoints: [join(pkg, 'src/index.ts')],
    external: ['socket.io-client'],
  }),
  await measure('socket.io-client alone (`io` only)', {
    stdin: { contents: "export { io } from 'socket.io-client';", resolveDir: pkg },
  }),
];

const esbuildVersion = JSON.parse(
  readFileSync(join(pkg, '../../node_modules/esbuild/package.json'), 'utf8'),
).version;
const sioVersion = JSON.parse(
  readFileSync(join(pkg, '../../node_modules/socket.io-client/package.json'), 'utf8'),
).version;
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
/** A Markdown table padded the way Biome formats it (so --write leaves the README clean). */
function markdownTable(head, body, rightAligned) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const cell = (v, i) => (rightAligned[i] ? v.padStart(widths[i]) : v.padEnd(widths[i]));
  const line = (cells) => `| ${cells.map(cell).join(' | ')} |`;
  const rule = widths.map((w, i) => (rightAligned[i] ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w)));
  return [line(head), `| ${rule.join(' | ')} |`, ...body.map(line)].join('\n');
}
const table = markdownTable(
  ['bundle', 'minified', 'minified + gzip'],
  rows.map((r) => [r.label, kb(r.min), kb(r.gzip)]),
  [false, true, true],
);
const text = `${table}\n\nMeasured by \`node packages/client/scripts/size.mjs\` (esbuild ${esbuildVersion}, ESM, platform browser, target es2022, minified; gzip level 9; socket.io-client ${sioVersion}).`;
console.log(text);

if (process.argv.includes('--write')) {
  const readme = join(pkg, 'README.md');
  const before = readFileSync(readme, 'utf8');
  const start = '<!-- size:start -->';
  const end = '<!-- size:end -->';
  const i = before.indexOf(start);
  const j = before.indexOf(end);
  if (i === -1 || j === -1) throw new Error(`README.md has no ${start} … ${end} block`);
  writeFileSync(readme, `${before.slice(0, i + start.length)}\n\n${text}\n\n${before.slice(j)}`);
  console.log(`\nwritten to ${readme}`);
}
