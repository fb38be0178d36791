#!/usr/bin/env node
/**
 * Writes docs/configuration.md from the apps' environment schemas (the built
 * apps/<app>/dist/config.js, each exporting `<app>Env`, e.g. `pushApiEnv` for push-api).
 *
 *   node scripts/config-reference.mjs           # (re)write the file
 *   node scripts/config-reference.mjs --check   # exit 1, with a diff hint, when it is stale
 *
 * Build first: npx turbo run build --output-logs=errors-only
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const REFERENCE_PATH = join(root, 'docs', 'configuration.md');

/** The apps, in the order of their groups in the table (after the shared variables). */
export const APPS = ['edge', 'push-api', 'presence', 'os-push'];

const exportName = (app) => `${app.replace(/-([a-z])/g, (_, c) => c.toUpperCase())}Env`;

async function load(path) {
  if (!existsSync(path)) {
    throw new Error(
      `${relative(root, path)} is missing: build first (npx turbo run build --output-logs=errors-only)`,
    );
  }
  return import(pathToFileURL(path).href);
}

/** The reference as it should read now. */
export async function generate() {
  const unlisted = readdirSync(join(root, 'apps'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, 'apps', d.name, 'src', 'config.ts')))
    .map((d) => d.name)
    .filter((app) => !APPS.includes(app));
  if (unlisted.length > 0) {
    throw new Error(`apps not in scripts/config-reference.mjs APPS: ${unlisted.join(', ')}`);
  }
  const { referenceRows, renderReference } = await load(
    join(root, 'packages', 'config', 'dist', 'reference.js'),
  );
  const shapes = [];
  for (const app of APPS) {
    const mod = await load(join(root, 'apps', app, 'dist', 'config.js'));
    const env = mod[exportName(app)];
    if (typeof env !== 'function') {
      throw new Error(`apps/${app}/src/config.ts does not export ${exportName(app)}()`);
    }
    shapes.push([app, env()]);
  }
  return renderReference(referenceRows(shapes));
}

/** A short hint of what differs: lines only in the file (-) and only in the schemas (+). */
function diffHint(current, expected) {
  const a = current.split('\n');
  const b = expected.split('\n');
  const inA = new Set(a);
  const inB = new Set(b);
  const out = [
    ...a.filter((l) => !inB.has(l)).map((l) => `- ${l}`),
    ...b.filter((l) => !inA.has(l)).map((l) => `+ ${l}`),
  ];
  const shown = out.slice(0, 20);
  if (out.length > shown.length) shown.push(`… ${out.length - shown.length} more lines`);
  return shown.join('\n');
}

async function main() {
  const check = process.argv.includes('--check');
  const expected = await generate();
  const path = relative(process.cwd(), REFERENCE_PATH);
  const current = existsSync(REFERENCE_PATH) ? readFileSync(REFERENCE_PATH, 'utf8') : '';
  if (!check) {
    if (current !== expected) writeFileSync(REFERENCE_PATH, expected);
    console.log(`${path}: ${current === expected ? 'already current' : 'written'}`);
    return;
  }
  if (current === expected) return;
  console.error(
    `${path} is not current with the config schemas (apps/*/src/config.ts, packages/config/src/fields.ts).\n` +
      'Rebuild and regenerate: npx turbo run build --output-logs=errors-only && node scripts/config-reference.mjs\n' +
      `(- in the file, + from the schemas)\n${current ? diffHint(current, expected) : '(the file is missing)'}`,
  );
  process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 2;
  });
}
