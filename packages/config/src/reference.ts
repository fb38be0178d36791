/**
 * The configuration reference (`docs/configuration.md`), read off the apps' environment
 * shapes (`edgeEnv`, `pushApiEnv`, …): one row per variable with the apps that read it, its
 * default (from the schema, or `defaultText` when loadConfig supplies it) and its meaning
 * (the schema's `.meta({ description })`, plus the accepted range of numbers and enums).
 * `scripts/config-reference.mjs` writes and checks the file.
 */
import { z } from 'zod';

/** App name → the shape it passes to `readEnv`, in the order the apps' groups are listed. */
export type AppShapes = ReadonlyArray<readonly [app: string, shape: z.ZodRawShape]>;

export type ReferenceRow = {
  variable: string;
  /** The apps that read it, in app order. */
  apps: string[];
  /** `shared` when more than one app reads it, else the app. */
  group: string;
  /** Markdown: a value, `required`, `–`, or the schema's `defaultText`. */
  default: string;
  /** Markdown: the description, and what values are accepted. */
  meaning: string;
};

export const SHARED_GROUP = 'shared';

type Schema = z.core.$ZodType;

type Described = { description?: string; defaultText?: string };

const metaOf = (schema: Schema): Described => (z.globalRegistry.get(schema) ?? {}) as Described;

/** Rows grouped shared first, then each app's own, each group in declaration order. */
export function referenceRows(apps: AppShapes): ReferenceRow[] {
  const seen = new Map<string, { app: string; schema: Schema }[]>();
  for (const [app, shape] of apps) {
    for (const [variable, schema] of Object.entries(shape)) {
      const list = seen.get(variable) ?? [];
      list.push({ app, schema });
      seen.set(variable, list);
    }
  }
  const problems: string[] = [];
  const rows: ReferenceRow[] = [];
  for (const [variable, readers] of seen) {
    const texts = readers.map(({ app, schema }) => {
      const meta = metaOf(schema);
      if (!meta.description)
        problems.push(
          `${variable} (${app}) has no description: end its schema with .meta({ description })`,
        );
      return {
        app,
        description: meta.description ?? '',
        defaultCell: meta.defaultText ?? defaultCell(variable, schema),
        accepted: accepted(variable, schema),
      };
    });
    const first = texts[0]!;
    for (const t of texts.slice(1)) {
      if (t.description !== first.description || t.accepted !== first.accepted)
        problems.push(
          `${variable} means different things in ${first.app} and ${t.app}: share one schema (packages/config/src/fields.ts)`,
        );
    }
    const defaults = new Set(texts.map((t) => t.defaultCell));
    rows.push({
      variable,
      apps: readers.map((r) => r.app),
      group: readers.length > 1 ? SHARED_GROUP : first.app,
      default:
        defaults.size === 1
          ? first.defaultCell
          : texts.map((t) => `${t.defaultCell} (${t.app})`).join(', '),
      meaning: first.accepted ? `${first.description}; ${first.accepted}` : first.description,
    });
  }
  if (problems.length > 0) throw new Error(`configuration reference:\n  ${problems.join('\n  ')}`);
  const order = [SHARED_GROUP, ...apps.map(([app]) => app)];
  // Array.prototype.sort is stable: declaration order within a group.
  return rows.sort((a, b) => order.indexOf(a.group) - order.indexOf(b.group));
}

/** What an unset (or empty) variable comes to, as `readEnv` would parse it. */
function defaultCell(variable: string, schema: Schema): string {
  const parsed = z.safeParse(schema, undefined);
  if (!parsed.success) return 'required';
  const value: unknown = parsed.data;
  if (value === undefined) return '–';
  if (Array.isArray(value)) return code(value.join(','));
  if (typeof value === 'number') {
    const unit = unitOf(variable);
    const human = unit === 'ms' ? humanMs(value) : unit === 'bytes' ? humanBytes(value) : '';
    return `${code(String(value))}${unit === 'ms' ? ' ms' : ''}${human ? ` (${human})` : ''}`;
  }
  return code(String(value));
}

/** The values a number or an enum accepts: `range 1000–300000 ms`, `one of \`a\`, \`b\``. */
function accepted(variable: string, schema: Schema): string {
  const inner = unwrap(schema);
  const def = inner._zod.def as {
    type: string;
    entries?: Record<string, string>;
    checks?: { _zod: { def: { check: string; value?: number; inclusive?: boolean } } }[];
  };
  if (def.type === 'enum' && def.entries) {
    return `one of ${Object.values(def.entries).map(code).join(', ')}`;
  }
  if (def.type !== 'number') return '';
  let min: number | undefined;
  let max: number | undefined;
  for (const check of def.checks ?? []) {
    const c = check._zod.def;
    if (c.value === undefined) continue;
    // Every number here is an integer: an exclusive bound is the next integer.
    if (c.check === 'greater_than') min = c.inclusive ? c.value : c.value + 1;
    if (c.check === 'less_than') max = c.inclusive ? c.value : c.value - 1;
  }
  const unit = unitOf(variable) === 'ms' ? ' ms' : '';
  if (min !== undefined && max !== undefined) return `range ${min}–${max}${unit}`;
  if (min !== undefined) return `at least ${min}${unit}`;
  if (max !== undefined) return `at most ${max}${unit}`;
  return '';
}

function unwrap(schema: Schema): Schema {
  let s = schema;
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: Schema };
    if ((def.type === 'default' || def.type === 'optional') && def.innerType) s = def.innerType;
    else return s;
  }
}

const unitOf = (variable: string): 'ms' | 'bytes' | undefined =>
  variable.endsWith('_MS') ? 'ms' : variable.endsWith('_BYTES') ? 'bytes' : undefined;

function humanMs(ms: number): string {
  if (ms === 0) return '';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1_000 === 0) return `${ms / 1_000} s`;
  return '';
}

function humanBytes(n: number): string {
  if (n === 0) return '';
  if (n % 1_048_576 === 0) return `${n / 1_048_576} MiB`;
  if (n % 1_024 === 0) return `${n / 1_024} KiB`;
  return '';
}

const code = (s: string): string => `\`${s}\``;

/** Markdown table cell: no pipes or line breaks. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** The whole `docs/configuration.md`. */
export function renderReference(rows: readonly ReferenceRow[]): string {
  const header = ['variable', 'apps', 'default', 'meaning'];
  const body = rows.map((r) =>
    [code(r.variable), r.apps.join(', '), r.default, r.meaning].map(cell),
  );
  // Padded as Biome formats Markdown tables (`npm run lint` checks this file too).
  const widths = header.map((h, i) => Math.max(3, h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const table = [
    line(header),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...body.map(line),
  ];
  const apps = [...new Set(rows.flatMap((r) => r.apps))];
  const own = apps.filter((app) => rows.some((r) => r.group === app));
  const sharedOnly = apps.filter((app) => !own.includes(app));
  const groups =
    (own.length > 0 ? own.join(', ') : 'none') +
    (sharedOnly.length > 0 ? ` (${sharedOnly.join(', ')}: shared ones only)` : '');
  return `${[
    '# Configuration',
    '',
    '<!-- Generated by `node scripts/config-reference.mjs` from the schemas in apps/*/src/config.ts',
    "and packages/config/src/fields.ts: edit a schema's .meta({ description }), build, run the",
    'script. packages/config/test/reference.test.ts fails while this file is stale. -->',
    '',
    'Each app is `node apps/<app>/dist/main.js`, configured by environment variables that are',
    'checked at start: a bad value stops the app with a message naming the variable (never its',
    'value). An empty variable (`FOO=`) counts as unset. Numbers are whole numbers; durations',
    '(`*_MS`) are milliseconds; ranges are inclusive.',
    '',
    `Variables read by more than one app come first, then those of one app only: ${groups}.`,
    '',
    ...table,
  ].join('\n')}\n`;
}
