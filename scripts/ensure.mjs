#!/usr/bin/env node
// Installs what `npm start`, `npm test` and `npm run bench` need and is missing:
// npm dependencies (when node_modules is absent or older than package-lock.json) and
// nats-server (through apt-get when running as root on Debian/Ubuntu). Node built-ins only:
// this runs before anything is installed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`\n✗ ${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

export function ensureNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 11)) {
    console.error(
      `✗ Node ${process.versions.node} is too old: Switchboard needs Node 20.11 or newer.`,
    );
    process.exit(1);
  }
}

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const isAlive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Runs `fn` holding `.install.lock` at the repository root, so that two commands started
 * together (a test run and a bench) never run `npm ci` over each other. A lock left by a
 * process that is gone is taken over.
 */
function withInstallLock(fn) {
  const lock = join(root, '.install.lock');
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(lock, 'utf8'));
      if (!holder || !isAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        console.error(`✗ another install (pid ${holder}) holds ${lock} for over 10 minutes`);
        process.exit(1);
      }
      sleepSync(500);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

export function ensureDependencies() {
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.switchboard-lock-hash');
  const want = existsSync(lock)
    ? createHash('sha256').update(readFileSync(lock)).digest('hex')
    : 'no-lock';
  const current = () =>
    (existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '') === want &&
    existsSync(join(root, 'node_modules', '.bin', 'turbo'));
  if (current()) return;
  withInstallLock(() => {
    // Another command may have installed while this one waited for the lock.
    if (current()) return;
    console.log('• installing npm dependencies…');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    run(
      npm,
      existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'],
    );
    writeFileSync(stamp, `${want}\n`);
  });
}

/** `bin` from `envVar`, else the first of PATH and the usual system folders that has it. */
function findBinary(bin, envVar) {
  const fromEnv = process.env[envVar];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/bin',
    '/usr/sbin',
    '/usr/local/sbin',
    '/usr/local/bin',
  ];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return null;
}

/**
 * Finds `bin`, or installs Debian's `pkg` with apt-get when running as root on Debian or
 * Ubuntu; otherwise prints `hint` and exits 1.
 */
function ensureBinary({ bin, envVar, pkg, why, hint }) {
  const found = findBinary(bin, envVar);
  if (found) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    console.log(`• installing ${pkg} with apt-get${why ? ` (${why})` : ''}…`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-qq'], { env });
    run('apt-get', ['install', '-y', '-qq', pkg], { env });
    const installed = findBinary(bin, envVar);
    if (installed) return installed;
  }
  console.error(
    [`✗ ${bin} is not installed, and this script cannot install it here.`, ...hint].join('\n'),
  );
  process.exit(1);
}

export const findNatsServer = () => findBinary('nats-server', 'NATS_SERVER_BIN');

export function ensureNatsServer() {
  return ensureBinary({
    bin: 'nats-server',
    envVar: 'NATS_SERVER_BIN',
    pkg: 'nats-server',
    hint: [
      '  Debian/Ubuntu:  sudo apt-get install -y nats-server',
      '  macOS:          brew install nats-server',
      '  Or download a release from https://github.com/nats-io/nats-server/releases',
      '  and put it on PATH (or set NATS_SERVER_BIN). Any version from 2.9 on works.',
    ],
  });
}

export const findRedisServer = () => findBinary('redis-server', 'REDIS_SERVER_BIN');

/** redis-server (7 or newer, for sharded pub/sub) for the benchmark's Socket.IO + Redis baselines. */
export function ensureRedisServer() {
  return ensureBinary({
    bin: 'redis-server',
    envVar: 'REDIS_SERVER_BIN',
    pkg: 'redis-server',
    why: 'for the benchmark baselines',
    hint: [
      '  Debian/Ubuntu:  sudo apt-get install -y redis-server',
      '  macOS:          brew install redis',
      '  Or put redis-server (7 or newer) on PATH, or set REDIS_SERVER_BIN.',
    ],
  });
}

/** Debian's Chromium for the browser end-to-end test (headless, driven by playwright-core). */
export function findChromium() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

export function ensureChromium() {
  if (findChromium()) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    console.log('• installing chromium with apt-get (for the browser test)…');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    // The package lists may be stale on a fresh machine: update once if the first try fails.
    const install = () =>
      spawnSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env })
        .status === 0;
    if (!install()) {
      run('apt-get', ['update', '-qq'], { env });
      install();
    }
    if (findChromium()) return;
  }
  console.error(
    [
      '✗ Chromium is not installed (the browser end-to-end test needs it).',
      '  Debian/Ubuntu:  sudo apt-get install -y chromium',
      '  Or set CHROMIUM_PATH to a Chromium or Chrome binary.',
    ].join('\n'),
  );
  process.exit(1);
}

/** Debian's prometheus (with promtool) and haproxy, for the operations tests of `npm test`. */
export function ensureOpsTools() {
  for (const [bin, pkg] of [
    ['prometheus', 'prometheus'],
    ['haproxy', 'haproxy'],
  ])
    ensureBinary({
      bin,
      envVar: `${bin.toUpperCase()}_BIN`,
      pkg,
      why: 'for the operations tests',
      hint: [
        `  Debian/Ubuntu:  sudo apt-get install -y ${pkg}`,
        `  Or set ${bin.toUpperCase()}_BIN.`,
      ],
    });
}

export function ensureAll({ nats = true, chromium = false, ops = false } = {}) {
  ensureNode();
  ensureDependencies();
  if (nats) ensureNatsServer();
  if (chromium) ensureChromium();
  if (ops) ensureOpsTools();
}

export function build() {
  run(join(root, 'node_modules', '.bin', 'turbo'), ['run', 'build', '--output-logs=errors-only']);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // `node scripts/ensure.mjs --browser` (npm test) also makes sure Chromium, Prometheus and
  // HAProxy are there.
  const full = process.argv.includes('--browser');
  ensureAll({ chromium: full, ops: full });
}
