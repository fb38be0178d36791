#!/usr/bin/env node
/**
 * Bundles an app's compiled entry (`dist/main.js`, from tsc) and everything it imports into
 * that one file, so a process loads one module instead of ~470 (the edge: 0.8 s of CPU to
 * load its modules unbundled, 0.4 s bundled). Run by each app's `build` after tsc, from the
 * app's folder. Left out, loaded from node_modules at run time: what finds files of its own
 * package by path (pino, whose transports such as pino-pretty run in a worker that loads
 * them by name; Swagger UI's static files) and the native add-ons ws may use.
 */
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/main.js'],
  outfile: 'dist/main.js',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  external: ['pino', '@fastify/swagger-ui', 'bufferutil', 'utf-8-validate'],
  // CommonJS dependencies bundled into ESM still call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __switchboardRequire } from 'node:module'; const require = __switchboardRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
