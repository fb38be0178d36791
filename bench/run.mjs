#!/usr/bin/env node
// `npm run bench [-- options] [scenario...]`: Switchboard measured side by side with the
// Socket.IO + Redis designs it replaces, and with the raw limits, in one run.
//
//   node bench/run.mjs                   everything (< 15 min); writes bench/results/latest.*
//   node bench/run.mjs --quick           everything, shorter (< 3 min)
//   node bench/run.mjs scaling --quick   one scenario (here < 2 min); bench/results/scaling.json
//   node bench/run.mjs scaling --nodes 1,4 --rate 400 --repeats 3
//   node bench/run.mjs --profile [--nodes 4]   CPU profile per role: bench/results/profile.md
//
// Scenarios: scaling, throughput, multicast, storm (connection storm and idle memory), and
// the earlier benchmarks latency, presence, push-api, os-push. This machine is shared:
// compare ratios from the same run, not absolute numbers across runs.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { findNatsServer } from '@switchboard/testkit';
import { ensureRedisServer } from '../scripts/ensure.mjs';
import { scalingRatios, scalingTable, writeReport } from './report.mjs';
import { redisVersion } from './support/redis-server.mjs';

const COMPARISON = ['scaling', 'throughput', 'multicast', 'storm'];
const EXISTING = ['latency', 'presence', 'push-api', 'os-push'];
const ALL = [...COMPARISON, ...EXISTING];

function parseArgs(argv) {
  const opts = { names: [], quick: false, profile: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--profile') opts.profile = true;
    else if (a === '--nodes') opts.nodes = value().split(',').map(Number);
    else if (a === '--rate') opts.rate = Number(value());
    else if (a === '--repeats') opts.repeats = Number(value());
    else if (a === 'memory') opts.names.push('storm');
    else if (ALL.includes(a)) opts.names.push(a);
    else throw new Error(`unknown argument ${a}; scenarios: ${ALL.join(', ')}`);
  }
  if (opts.nodes?.some((n) => !Number.isInteger(n) || n < 1 || n > 16))
    throw new Error('--nodes takes a comma-separated list of 1..16');
  return opts;
}

const results = new URL('./results/', import.meta.url);
const pkgVersion = (name) => {
  try {
    return JSON.parse(
      readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url)),
    ).version;
  } catch {
    return null;
  }
};

export function environment() {
  const nats = execFileSync(findNatsServer(), ['--version']).toString().trim();
  return {
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      platform: `${process.platform} ${process.arch}`,
    },
    versions: {
      node: process.versions.node,
      'socket.io': pkgVersion('socket.io'),
      'socket.io-client': pkgVersion('socket.io-client'),
      '@socket.io/redis-adapter': pkgVersion('@socket.io/redis-adapter'),
      '@socket.io/redis-emitter': pkgVersion('@socket.io/redis-emitter'),
      redis: pkgVersion('redis'),
      fastify: pkgVersion('fastify'),
      '@nats-io/transport-node': pkgVersion('@nats-io/transport-node'),
      'nats-server': nats.replace(/^nats-server:\s*v?/, ''),
      'redis-server': redisVersion(),
    },
  };
}

const f = (v, d = 2) =>
  v === null || v === undefined ? '–' : typeof v === 'number' ? v.toFixed(d) : String(v);

function printExisting(result) {
  console.log(`\n## ${result.title}`);
  const cols = Object.keys(result.rows[0]);
  console.log(`| ${cols.join(' | ')} |\n| ${cols.map(() => '---').join(' | ')} |`);
  for (const row of result.rows) console.log(`| ${cols.map((c) => f(row[c])).join(' | ')} |`);
}

async function runExisting(name, quick) {
  // Shorter durations in quick mode, through the knobs each benchmark reads at import.
  if (quick) {
    const knobs = {
      BENCH_MESSAGES: '100',
      BENCH_CONNECTS: '1000',
      BENCH_LOOKUPS: '4000',
      BENCH_DURATION_S: '2',
      BENCH_FALLBACKS: '500',
    };
    for (const [k, v] of Object.entries(knobs)) process.env[k] ??= v;
  }
  const result = await (await import(`./${name}.mjs`)).run();
  printExisting(result);
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  ensureRedisServer();
  mkdirSync(results, { recursive: true });
  const t0 = Date.now();
  const log = (line) => console.log(line);

  if (opts.profile) {
    const profile = await import('./scenarios/profile.mjs');
    const p = await profile.run({ nodes: opts.nodes ?? [4], log });
    writeFileSync(new URL('profile.md', results), profile.toMarkdown(p));
    writeFileSync(new URL('profile.json', results), `${JSON.stringify(p, null, 2)}\n`);
    console.log(`\nwrote bench/results/profile.md in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return;
  }

  const full = opts.names.length === 0;
  const names = full ? ALL : opts.names;
  const out = {
    at: new Date().toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    ...environment(),
  };
  const timings = {};
  for (const name of names) {
    const started = Date.now();
    console.log(`\n# ${name}${opts.quick ? ' (quick)' : ''}`);
    try {
      if (name === 'scaling') {
        const { run } = await import('./scenarios/scaling.mjs');
        const r = await run({
          quick: opts.quick,
          nodes: opts.nodes,
          rate: opts.rate,
          repeats: opts.repeats,
          log,
        });
        out.scalingSettings = r.settings;
        out.scaling = r.scaling;
        out.scalingRatios = scalingRatios(r.scaling);
        out.limits = r.limits;
        console.log(`\n${scalingTable(r.scaling)}`);
      } else if (name === 'throughput') {
        out.throughput = await (await import('./scenarios/throughput.mjs')).run({
          quick: opts.quick,
          log,
        });
      } else if (name === 'multicast') {
        out.multicast = await (await import('./scenarios/multicast.mjs')).run({
          quick: opts.quick,
          log,
        });
      } else if (name === 'storm') {
        const r = await (await import('./scenarios/storm.mjs')).run({ quick: opts.quick, log });
        out.connectionStorm = {
          clients: r.clients,
          clientProcesses: r.clientProcesses,
          inFlight: r.inFlight,
          results: r.results.map(({ memory, ...rest }) => rest),
        };
        out.idleMemory = {
          clients: r.clients,
          method: r.memoryMethod,
          results: r.results.map((x) => ({
            system: x.system,
            connected: x.connected,
            ...x.memory,
          })),
        };
      } else {
        out.existing ??= {};
        out.existing[name] = await runExisting(name, opts.quick);
      }
    } catch (err) {
      // One broken scenario does not throw away the others' results.
      console.error(`${name} failed:`, err);
      out.errors = { ...out.errors, [name]: String(err?.stack ?? err).slice(0, 2000) };
    }
    timings[name] = Math.round((Date.now() - started) / 1000);
    console.log(`(${name}: ${timings[name]} s)`);
  }
  out.durationSeconds = Math.round((Date.now() - t0) / 1000);
  out.secondsPerScenario = timings;
  const file = full ? 'latest.json' : `${names.join('+')}.json`;
  writeFileSync(new URL(file, results), `${JSON.stringify(out, null, 2)}\n`);
  if (full) await writeReport(out, { readme: false });
  console.log(`\nwrote bench/results/${file} in ${out.durationSeconds} s`);
  if (full) console.log('`node bench/report.mjs` puts these results into the README');
  if (out.errors) throw new Error(`scenarios failed: ${Object.keys(out.errors).join(', ')}`);
}

try {
  await main();
  process.exit(0);
} catch (err) {
  console.error(err);
  process.exit(1);
}
