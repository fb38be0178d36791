// Where a CPU profile's call frame comes from in the sources. Each app runs as one bundle
// (apps/<app>/dist/main.js, scripts/bundle-app.mjs): a frame in it is mapped back through
// the bundle's source map to the file it was bundled from (a package's src/ file or a
// node_modules file), so profiles still attribute time per package and per function.
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const maps = new Map();

function mapOf(path) {
  if (!maps.has(path)) {
    const file = `${path}.map`;
    maps.set(path, existsSync(file) ? new SourceMap(JSON.parse(readFileSync(file, 'utf8'))) : null);
  }
  return maps.get(path);
}

/**
 * `{ url, lineNumber }` of the source `frame` (a .cpuprofile call frame, 0-based positions)
 * was bundled from, or the frame's own when it is not in a bundle with a source map. The
 * url is a path (file:// urls are turned into paths either way).
 */
export function originalFrame(frame) {
  const path = frame.url.startsWith('file://') ? fileURLToPath(frame.url) : frame.url;
  const own = { url: path, lineNumber: frame.lineNumber };
  if (!path.endsWith('/dist/main.js') || frame.lineNumber < 0) return own;
  const entry = mapOf(path)?.findEntry(frame.lineNumber, frame.columnNumber);
  if (!entry?.originalSource) return own;
  return { url: resolve(dirname(path), entry.originalSource), lineNumber: entry.originalLine };
}
