/**
 * docs/configuration.md is generated from the apps' env schemas (scripts/config-reference.mjs):
 * these tests fail while it is stale, and when an app reads a variable it does not document.
 * They read the built apps (run after `npx turbo run build`, as `npm test` does).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { durationMs, port } from '../src/fields.js';
import { referenceRows, renderReference } from '../src/reference.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const REFERENCE = join(root, 'docs', 'configuration.md');

const NAME = '[A-Z][A-Z0-9_]*';

/**
 * Environment variables a source file reads: `process.env.X`, `env.X`, `env['X']`, keys of an
 * object literal given to `readEnv`, and, in a config.ts, the parsed `e.X` and variable names
 * quoted on their own (`fail('APNS_KEY_ID', …)`).
 */
function envReads(source: string, isConfigFile: boolean): Set<string> {
  const found = new Set<string>();
  const add = (re: RegExp) => {
    for (const m of source.matchAll(re)) found.add(m[1]!);
  };
  add(new RegExp(`\\benv(?:\\?\\.|\\.)(${NAME})\\b`, 'g'));
  add(new RegExp(`\\benv\\[\\s*['"\`](${NAME})['"\`]\\s*\\]`, 'g'));
  for (const m of source.matchAll(/\breadEnv\s*\(\s*\{/g)) {
    const start = m.index + m[0].length - 1;
    let depth = 0;
    let end = start;
    for (; end < source.length; end++) {
      if (source[end] === '{') depth++;
      else if (source[end] === '}' && --depth === 0) break;
    }
    const literal = source.slice(start, end + 1);
    for (const k of literal.matchAll(new RegExp(`[{,\\s](${NAME})\\s*:`, 'g'))) found.add(k[1]!);
  }
  if (isConfigFile) {
    add(new RegExp(`\\be(?:\\?\\.|\\.)(${NAME})\\b`, 'g'));
    // Not backticks: descriptions quote names in Markdown (`PUSH_FALLBACK_DLQ`).
    add(/['"]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)['"]/g);
  }
  return found;
}

/** apps/*\/src and the src of every workspace package an app depends on (at run time). */
function appSources(): string[] {
  const workspaces = new Map<string, string>();
  for (const group of ['apps', 'packages']) {
    for (const dir of readdirSync(join(root, group))) {
      const pkg = join(root, group, dir, 'package.json');
      if (existsSync(pkg))
        workspaces.set(JSON.parse(readFileSync(pkg, 'utf8')).name, join(root, group, dir));
    }
  }
  const dirs = new Set<string>();
  const visit = (dir: string) => {
    if (dirs.has(dir)) return;
    dirs.add(dir);
    const deps = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).dependencies ?? {};
    for (const name of Object.keys(deps)) {
      const d = workspaces.get(name);
      if (d) visit(d);
    }
  };
  for (const app of readdirSync(join(root, 'apps'))) {
    if (existsSync(join(root, 'apps', app, 'package.json'))) visit(join(root, 'apps', app));
  }
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts'))
        files.push(p);
    }
  };
  for (const dir of dirs) if (existsSync(join(dir, 'src'))) walk(join(dir, 'src'));
  return files;
}

/** The variables docs/configuration.md has a row for. */
function documented(): Set<string> {
  const text = readFileSync(REFERENCE, 'utf8');
  return new Set([...text.matchAll(/^\| `([A-Z][A-Z0-9_]*)` +\|/gm)].map((m) => m[1]!));
}

describe('configuration reference', () => {
  it('reference - docs/configuration.md is what the config schemas generate (--check)', () => {
    const r = spawnSync(
      process.execPath,
      [join(root, 'scripts', 'config-reference.mjs'), '--check'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('reference - the generated file is as Biome formats it (npm run lint passes)', () => {
    const text = readFileSync(REFERENCE, 'utf8');
    const r = spawnSync(
      join(root, 'node_modules', '.bin', 'biome'),
      ['format', '--stdin-file-path=docs/configuration.md'],
      { cwd: root, input: text, encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(text);
  });

  it('reference - every variable an app reads (its own sources and its packages) is documented', () => {
    const docs = documented();
    expect(docs.size).toBeGreaterThan(40);
    const missing: string[] = [];
    const files = appSources();
    expect(files.some((f) => f.endsWith(join('apps', 'edge', 'src', 'config.ts')))).toBe(true);
    expect(files.some((f) => f.endsWith(join('packages', 'logger', 'src', 'logger.ts')))).toBe(
      true,
    );
    for (const file of files) {
      const reads = envReads(readFileSync(file, 'utf8'), file.endsWith('config.ts'));
      for (const v of reads) if (!docs.has(v)) missing.push(`${v} (${relative(root, file)})`);
    }
    expect(missing).toEqual([]);
  });

  it('reference - the source scan finds each way of reading a variable', () => {
    const source = [
      "const a = process.env.FOO_BAR ?? env['BAZ'];",
      'const s = readEnv({ QUX: z.string(), NESTED: obj({ a: 1 }), AFTER: port(1) }, env);',
      "if (!e.PARSED) fail('QUOTED_NAME', 'is required');",
      'const lower = env.lowercase; const edgeEnv = { NOT_READ: 1 };',
    ].join('\n');
    expect([...envReads(source, true)].sort()).toEqual(
      ['AFTER', 'BAZ', 'FOO_BAR', 'NESTED', 'PARSED', 'QUOTED_NAME', 'QUX'].sort(),
    );
    expect([...envReads(source, false)].sort()).toEqual(
      ['AFTER', 'BAZ', 'FOO_BAR', 'NESTED', 'QUX'].sort(),
    );
  });

  it('reference - rows: shared first, defaults per app, required and unset, ms and ranges', () => {
    const a = {
      PORT: port(3000).meta({ description: 'port' }),
      ONLY_A: z.string().meta({ description: 'needed' }),
      WAIT_MS: durationMs(90_000, 1_000, 3_600_000).meta({ description: 'wait' }),
    };
    const b = {
      PORT: port(3001).meta({ description: 'port' }),
      MODE: z.enum(['x', 'y']).default('x').meta({ description: 'mode' }),
      URL_OPT: z.url().optional().meta({ description: 'url', defaultText: 'computed' }),
      PLAIN: z.string().optional().meta({ description: 'plain' }),
    };
    const rows = referenceRows([
      ['a', a],
      ['b', b],
    ]);
    expect(rows.map((r) => [r.variable, r.group, r.apps.join(' '), r.default, r.meaning])).toEqual([
      ['PORT', 'shared', 'a b', '`3000` (a), `3001` (b)', 'port; range 0–65535'],
      ['ONLY_A', 'a', 'a', 'required', 'needed'],
      ['WAIT_MS', 'a', 'a', '`90000` ms (90 s)', 'wait; range 1000–3600000 ms'],
      ['MODE', 'b', 'b', '`x`', 'mode; one of `x`, `y`'],
      ['URL_OPT', 'b', 'b', 'computed', 'url'],
      ['PLAIN', 'b', 'b', '–', 'plain'],
    ]);
    const md = renderReference(rows);
    expect(md).toContain('| `WAIT_MS` ');
    expect(md).toMatch(/then those of one app only: a, b\./);
  });

  it('reference - a variable without a description, or described two ways, is refused', () => {
    expect(() => referenceRows([['a', { NO_DOC: z.string() }]])).toThrow(
      /NO_DOC \(a\) has no description/,
    );
    // .meta() must be the last call: .optional() makes a new schema without it.
    expect(() =>
      referenceRows([['a', { LATE: z.string().meta({ description: 'x' }).optional() }]]),
    ).toThrow(/LATE \(a\) has no description/);
    expect(() =>
      referenceRows([
        ['a', { TWICE: z.string().meta({ description: 'one' }) }],
        ['b', { TWICE: z.string().meta({ description: 'two' }) }],
      ]),
    ).toThrow(/TWICE means different things in a and b/);
  });

  it('reference - a pipe in a description does not break the table', () => {
    const md = renderReference(
      referenceRows([['a', { P: z.string().optional().meta({ description: 'a | b' }) }]]),
    );
    expect(md).toContain('a \\| b');
  });
});
