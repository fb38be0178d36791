/**
 * OpenAPI generated from the routes' zod schemas, served at `/docs` (UI) and `/docs/json`.
 *
 * The document is tidied after generation: public routes (health, readiness, metrics,
 * docs) say they need no key; a schema whose request ("Input") and response forms are the
 * same appears once; only the schemas this app's routes use are listed (zod's registry is
 * process-wide); and every response has a description.
 */
import { isDeepStrictEqual } from 'node:util';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, jsonSchemaTransformObject } from '@fastify/type-provider-zod';
import type { FastifyInstance } from 'fastify';

export type DocsOptions = { title: string; description: string; version: string };

type Doc = {
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> } & Record<string, unknown>;
} & Record<string, unknown>;
type Operation = { responses?: Record<string, { description?: string; content?: unknown }> };

const RESPONSE_TEXT: Record<string, string> = {
  '200': 'OK',
  '204': 'Done, no content',
  '400': 'Invalid request: `validation_failed` (details name each field) or `bad_request`',
  '401': 'Missing or unknown API key',
  '404': 'Not found',
  '409': 'Conflict: the idempotency key belongs to another request, or one still running',
  '413': 'Payload too large',
  '414': 'A path segment over 1,024 characters',
  '415': 'Unsupported media type: JSON only',
  '429': 'Rate limited: retry after `Retry-After` seconds',
  '503': 'Unavailable (NATS unreachable, or overloaded): retry after `Retry-After` seconds',
};

export async function registerDocs(app: FastifyInstance, options: DocsOptions): Promise<void> {
  // The docs routes are public like health; everything else needs a key.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/docs')) route.config = { ...(route.config ?? {}), public: true };
  });
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: options.title, description: options.description, version: options.version },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from API_KEYS' },
        },
      },
      security: [{ apiKey: [] }],
    },
    transform: (arg) => {
      const out = jsonSchemaTransform(arg);
      const isPublic = (arg.route as { config?: { public?: boolean } }).config?.public === true;
      // An empty list overrides the document's security: no key needed.
      if (isPublic) out.schema = { ...out.schema, security: [] } as typeof out.schema;
      return out;
    },
    transformObject: (doc) => tidy(jsonSchemaTransformObject(doc) as Doc) as never,
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list' },
  });
}

/** See the module comment: one form per identical schema, only used ones, described responses. */
export function tidy(doc: Doc): Doc {
  const schemas = { ...(doc.components?.schemas ?? {}) };
  const renames = new Map<string, string>();
  for (const name of Object.keys(schemas)) {
    if (!name.endsWith('Input')) continue;
    const base = name.slice(0, -'Input'.length);
    if (base in schemas && isDeepStrictEqual(stripIds(schemas[name]), stripIds(schemas[base]))) {
      renames.set(name, base);
      delete schemas[name];
    }
  }
  const rewrite = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(rewrite);
    if (v === null || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') {
        const name = x.slice(x.lastIndexOf('/') + 1);
        out[k] = renames.has(name) ? `#/components/schemas/${renames.get(name)}` : x;
      } else out[k] = rewrite(x);
    }
    return out;
  };
  const paths = rewrite(doc.paths ?? {}) as NonNullable<Doc['paths']>;
  const rewritten = rewrite(schemas) as Record<string, unknown>;
  // Keep what the paths reach, following references between schemas.
  const used = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') {
        const name = x.slice(x.lastIndexOf('/') + 1);
        if (!used.has(name) && name in rewritten) {
          used.add(name);
          visit(rewritten[name]);
        }
      } else visit(x);
    }
  };
  visit(paths);
  let kept = Object.fromEntries(Object.entries(rewritten).filter(([n]) => used.has(n)));
  // A request form whose response form this app never uses takes the plain name.
  renames.clear();
  for (const name of Object.keys(kept)) {
    const base = name.slice(0, -'Input'.length);
    if (name.endsWith('Input') && !(base in kept)) renames.set(name, base);
  }
  if (renames.size > 0) {
    kept = Object.fromEntries(
      Object.entries(rewrite(kept) as Record<string, unknown>).map(([n, v]) => [
        renames.get(n) ?? n,
        v,
      ]),
    );
    return finish(doc, rewrite(paths) as NonNullable<Doc['paths']>, kept);
  }
  return finish(doc, paths, kept);
}

function finish(doc: Doc, paths: NonNullable<Doc['paths']>, kept: Record<string, unknown>): Doc {
  for (const ops of Object.values(paths)) {
    for (const op of Object.values(ops)) {
      for (const [code, r] of Object.entries(op.responses ?? {})) {
        if (r.description && r.description !== 'Default Response') continue;
        const ref = JSON.stringify(r.content ?? {}).match(
          /"\$ref":"#\/components\/schemas\/(\w+)"/,
        );
        r.description =
          code.startsWith('2') && ref && ref[1] !== 'Error'
            ? `${RESPONSE_TEXT[code] ?? 'OK'}: ${ref[1]}`
            : (RESPONSE_TEXT[code] ?? 'See the error shape');
      }
    }
  }
  return { ...doc, paths, components: { ...doc.components, schemas: kept } };
}

/** The registry's ids differ between the two forms; the shapes are what count. */
function stripIds(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripIds);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'id' || k === '$id') continue;
    if (k === '$ref' && typeof x === 'string') out[k] = x.replace(/Input$/, '');
    else out[k] = stripIds(x);
  }
  return out;
}
