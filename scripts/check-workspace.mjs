#!/usr/bin/env node
/**
 * The workspace's shape, checked (run by `npm test` and `npm run lint`):
 *   - a library (packages/*) exports its entry points by name: ".", its src/index.ts, and
 *     any other only as an explicit path (no "./*": a file is not public by being there);
 *   - an app (apps/*) exports nothing: it is run (dist/main.js), not imported;
 *   - nothing imports an app: not a library, not another app, not an app's tests
 *     (tests that need another app start it as a process, see packages/testkit);
 *   - every package imported by a package's src/ is in its dependencies, and by its test/
 *     in its dependencies or devDependencies (npm workspaces would find an undeclared
 *     one through hoisting, and turbo would then build in the wrong order); the root's
 *     devDependencies (vitest, the tooling every package's tests share) count for tests.
 * Prints each problem and exits 1, or prints a one-line summary.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const builtins = new Set(builtinModules);
const problems = [];

const dirs = ['apps', 'packages'].flatMap((group) =>
  readdirSync(join(root, group))
    .map((name) => join(root, group, name))
    .filter((dir) => existsSync(join(dir, 'package.json'))),
);
const manifests = new Map(
  dirs.map((dir) => [dir, JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))]),
);
const rootDevDeps = Object.keys(
  JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies ?? {},
);
const appNames = new Set(
  [...manifests].filter(([dir]) => relative(root, dir).startsWith('apps/')).map(([, m]) => m.name),
);

function* sourceFiles(dir) {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (entry !== 'node_modules' && entry !== 'dist') yield* sourceFiles(path);
    } else if (/\.(ts|mts|js|mjs)$/.test(entry)) yield path;
  }
}

/** The package a bare specifier names (`@scope/name/sub` → `@scope/name`), or null. */
function packageOf(specifier) {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:'))
    return null;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  return builtins.has(name) ? null : name;
}

const importPattern =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

for (const [dir, manifest] of manifests) {
  const where = relative(root, dir);
  const isApp = appNames.has(manifest.name);
  const exportsField = manifest.exports;
  if (isApp) {
    if (exportsField !== undefined)
      problems.push(`${where}: an app exports nothing (remove "exports")`);
  } else {
    const keys = exportsField && typeof exportsField === 'object' ? Object.keys(exportsField) : [];
    if (!keys.includes('.') || keys.some((k) => k.includes('*')))
      problems.push(
        `${where}: a library exports "." and named entry points only, no patterns (has ${JSON.stringify(keys)})`,
      );
  }
  const deps = new Set(Object.keys(manifest.dependencies ?? {}));
  const devDeps = new Set([
    ...deps,
    ...Object.keys(manifest.devDependencies ?? {}),
    ...rootDevDeps,
  ]);
  for (const [folder, allowed] of [
    ['src', deps],
    ['test', devDeps],
  ]) {
    for (const file of sourceFiles(join(dir, folder))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(importPattern)) {
        const specifier = m[1] ?? m[2];
        const rel = relative(root, file);
        if (
          /(^|\/)\.\.\/(\.\.\/)*apps\//.test(specifier) ||
          /\.\.\/\.\.\/(edge|push-api|presence|os-push)\//.test(specifier)
        )
          problems.push(`${rel}: imports another app by path (${specifier})`);
        const name = packageOf(specifier);
        if (name === null || name === manifest.name) continue;
        if (appNames.has(name)) problems.push(`${rel}: imports the app ${name}`);
        else if (!allowed.has(name))
          problems.push(
            `${rel}: imports ${name}, not in ${folder === 'src' ? 'dependencies' : 'dependencies or devDependencies'} of ${where}/package.json`,
          );
      }
    }
  }
}

if (problems.length > 0) {
  const unique = [...new Set(problems)];
  console.error(`workspace shape: ${unique.length} problem(s)\n  ${unique.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `workspace shape: ${manifests.size} packages, ${appNames.size} apps exporting nothing, every import declared`,
);
