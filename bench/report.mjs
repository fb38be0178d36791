#!/usr/bin/env node
// Turns bench/results/latest.json into bench/results/latest.md, SVG charts
// (bench/results/*.svg, vega-lite rendered headless by vega's `view.toSVG()`) and the
// README's `## Performance` section between its bench markers. `node bench/report.mjs`
// redoes all three from the last full run; `npm run bench` calls it at the end.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import { compile } from 'vega-lite';

const results = new URL('./results/', import.meta.url);
const readmeUrl = new URL('../README.md', import.meta.url);
const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';
const SYSTEM_ORDER = ['socketio-redis', 'socketio-redis-sharded', 'switchboard'];

const f = (v, d = 2) =>
  v === null || v === undefined ? '–' : typeof v === 'number' ? v.toFixed(d) : String(v);
const n0 = (v) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : '–');

/** CPU per 1,000 delivered: Switchboard / each Redis design, per N. */
export function scalingRatios(scaling) {
  const out = [];
  for (const n of [...new Set(scaling.map((r) => r.nodes))]) {
    const get = (s) => scaling.find((r) => r.nodes === n && r.system === s)?.cpuMsPer1k;
    const sb = get('switchboard');
    const classic = get('socketio-redis');
    const sharded = get('socketio-redis-sharded');
    if (!sb) continue;
    const q = (a, b) => (a && b ? Number((a / b).toFixed(2)) : null);
    out.push({
      nodes: n,
      vsClassic: q(sb.total, classic?.total),
      vsSharded: q(sb.total, sharded?.total),
      vsClassicIdleAdjusted: q(sb.idleAdjusted, classic?.idleAdjusted),
      vsShardedIdleAdjusted: q(sb.idleAdjusted, sharded?.idleAdjusted),
    });
  }
  return out;
}

/** The scaling table (per role) and the ratios, in Markdown. */
export function scalingTable(scaling, { roles = true } = {}) {
  const roleNames = ['broker', 'api', 'presence', 'socket'];
  const head = roles ? ` ${roleNames.join(' | ')} |` : '';
  const lines = [
    `| N | system | CPU ms / 1k | idle-adjusted |${head} p50 ms | p99 ms | received / sent |`,
    `| ---: | --- | ---: | ---: |${roles ? roleNames.map(() => ' ---: |').join('') : ''} ---: | ---: | ---: |`,
  ];
  for (const r of scaling) {
    const byRole = roles
      ? ` ${roleNames.map((k) => f(r.cpuMsPer1k.byRole[k], 0)).join(' | ')} |`
      : '';
    const spread =
      r.spread?.cpuMsPer1kTotal && r.repeats > 1
        ? ` (${r.spread.cpuMsPer1kTotal.map((x) => f(x, 0)).join('–')})`
        : '';
    lines.push(
      `| ${r.nodes} | ${r.system} | ${f(r.cpuMsPer1k.total, 0)}${spread} | ${f(r.cpuMsPer1k.idleAdjusted, 0)} |${byRole} ${f(r.p50Ms)} | ${f(r.p99Ms)} | ${r.received} / ${r.sent}${r.valid ? '' : ' **invalid**'} |`,
    );
  }
  const ratios = scalingRatios(scaling);
  if (ratios.length > 0) {
    lines.push(
      '',
      '| N | switchboard ÷ socketio-redis | switchboard ÷ socketio-redis-sharded |',
      '| ---: | ---: | ---: |',
      ...ratios.map(
        (r) =>
          `| ${r.nodes} | ${f(r.vsClassic)}× (idle-adjusted ${f(r.vsClassicIdleAdjusted)}×) | ${f(r.vsSharded)}× (idle-adjusted ${f(r.vsShardedIdleAdjusted)}×) |`,
      ),
    );
  }
  return lines.join('\n');
}

function limitsTable(limits) {
  return [
    '| limit | CPU ms / 1k | p50 ms | p99 ms | received / sent |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...limits.map(
      (r) =>
        `| ${r.system} | ${f(r.cpuMsPer1k.total, 0)} (${Object.entries(r.cpuMsPer1k.byRole)
          .map(([k, v]) => `${k} ${f(v, 0)}`)
          .join(', ')}) | ${f(r.p50Ms)} | ${f(r.p99Ms)} | ${r.received} / ${r.sent} |`,
    ),
  ].join('\n');
}

function otherTables(out) {
  const parts = [];
  if (out.throughput) {
    parts.push(
      `**Throughput** (${out.throughput.nodes} socket servers, ${out.throughput.users} users; highest offered rate with ${out.throughput.criterion}; steps ${out.throughput.steps.join(', ')}/s):`,
      '',
      '| system | sustained messages/s |',
      '| --- | ---: |',
      ...out.throughput.results.map(
        (r) =>
          `| ${r.system} | ${r.maxRate === null ? `< ${out.throughput.steps[0]}` : n0(r.maxRate)}${r.capped ? ' (top step)' : ''} |`,
      ),
      '',
    );
  }
  if (out.multicast) {
    const m = out.multicast;
    parts.push(
      `**Multicast** (one request to ${n0(m.users)} users on ${m.nodes} socket servers, ${m.requests} requests offered at ${m.rate}/s):`,
      '',
      '| system | deliveries/s | first request reaches all, ms | CPU ms / 1k deliveries | received / sent |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...m.results.map(
        (r) =>
          `| ${r.system} | ${n0(r.deliveriesPerS)} | ${f(r.firstFanoutMs, 1)} | ${f(r.cpuMsPer1kDeliveries, 0)} | ${r.received} / ${r.sent}${r.valid ? '' : ' **invalid**'} |`,
      ),
      '',
    );
  }
  if (out.connectionStorm) {
    const s = out.connectionStorm;
    parts.push(
      `**Connection storm** (${n0(s.clients)} clients into one socket server, ${s.inFlight} handshakes in flight from ${s.clientProcesses} client processes):`,
      '',
      '| system | connects/s | all connected, s | all routable, s |',
      '| --- | ---: | ---: | ---: |',
      ...s.results.map(
        (r) =>
          `| ${r.system} | ${n0(r.connectsPerS)} | ${f(r.connectSeconds)} | ${f(r.routableSeconds)} |`,
      ),
      '',
    );
  }
  if (out.idleMemory) {
    const m = out.idleMemory;
    parts.push(
      `**Idle memory per connection** (${n0(m.clients)} idle clients on one socket server, after a full GC):`,
      '',
      '| system | socket server RSS, bytes | socket server heap, bytes | all server processes RSS, bytes |',
      '| --- | ---: | ---: | ---: |',
      ...m.results.map(
        (r) =>
          `| ${r.system} | ${n0(r.socketServerRssPerConnection)} | ${n0(r.socketServerHeapPerConnection)} | ${n0(r.allServersRssPerConnection)} |`,
      ),
      '',
    );
  }
  return parts.join('\n');
}

function existingTables(existing = {}) {
  const parts = [];
  for (const result of Object.values(existing)) {
    const cols = Object.keys(result.rows[0]);
    parts.push(
      `**${result.title}**`,
      '',
      `| ${cols.join(' | ')} |`,
      `| ${cols.map(() => '---').join(' | ')} |`,
      ...result.rows.map((row) => `| ${cols.map((c) => f(row[c])).join(' | ')} |`),
      '',
    );
  }
  return parts.join('\n');
}

/** A few sentences computed from the numbers, so the README never contradicts its tables. */
function reading(out) {
  const lines = [];
  const ratios = scalingRatios(out.scaling ?? []);
  if (ratios.length > 0) {
    const first = ratios[0];
    const last = ratios.at(-1);
    const word = (x) =>
      x === null ? '–' : x > 1.05 ? 'more' : x < 0.95 ? 'less' : 'about the same';
    lines.push(
      `Per delivered message, Switchboard used ${f(first.vsClassic)}× the server CPU of the classic Redis adapter at N = ${first.nodes} and ${f(last.vsClassic)}× at N = ${last.nodes} (${word(last.vsClassic)}); against the sharded adapter ${f(first.vsSharded)}× and ${f(last.vsSharded)}×.`,
    );
    const sb = (n) => out.scaling.find((r) => r.system === 'switchboard' && r.nodes === n);
    const top = sb(last.nodes);
    if (top) {
      const roles = Object.entries(top.cpuMsPer1k.byRole).sort((a, b) => b[1] - a[1]);
      lines.push(
        `Switchboard's cost at N = ${last.nodes} by role (CPU ms per 1,000): ${roles.map(([k, v]) => `${k} ${f(v, 0)}`).join(', ')}.`,
      );
    }
    const all = ratios.flatMap((r) => [r.vsClassic, r.vsSharded]).filter((x) => x !== null);
    if (all.length > 0 && all.every((x) => x > 1))
      lines.push(
        'Switchboard costs more server CPU per message than both Redis designs at every N measured here: it waits for the owning edge to answer with the outcome (a NATS request and its reply, 2 messages in and 2 out at nats-server, against one Redis publish), which is what buys per-recipient outcomes. The profile below shows where the time goes; [docs/performance.md](docs/performance.md#reading-the-results) reads these results role by role.',
      );
    const invalid = out.scaling.filter((r) => !r.valid);
    if (invalid.length > 0)
      lines.push(
        `Invalid runs (messages missing): ${invalid.map((r) => `${r.system} N=${r.nodes}`).join(', ')}.`,
      );
  }
  return lines.join(' ');
}

/** The profile's top functions per role, compactly, when `--profile` has been run. */
function profileSummary(profile, forReadme) {
  if (!profile) return '';
  const short = (where) => where.replace(/^node_modules\//, '').replace(/^apps\/|^packages\//, '');
  const lines = [
    `**Where the time goes** (\`node bench/run.mjs --profile\`, N = ${profile.nodes.join(', ')}, ${profile.settings.rate} messages/s; self time inside the send window, top functions per role with their share of the role's sampled time; full tables in [profile.md](${forReadme ? 'bench/results/profile.md' : 'profile.md'})):`,
    '',
    '| system | role | CPU ms / 1k (profiled run) | top self time |',
    '| --- | --- | ---: | --- |',
  ];
  for (const s of profile.systems) {
    for (const r of s.roles) {
      const top = r.top
        .slice(0, 4)
        .map(
          (f) =>
            `${f.function}${f.where ? ` (${short(f.where)})` : ''} ${(f.share * 100).toFixed(0)}%`,
        )
        .join(', ');
      lines.push(`| ${s.system} | ${r.role} | ${f(s.cpuMsPer1k.byRole[r.role], 0)} | ${top} |`);
    }
    if (s.cpuMsPer1k.byRole.broker !== undefined)
      lines.push(
        `| ${s.system} | broker | ${f(s.cpuMsPer1k.byRole.broker, 0)} | (not a Node process) |`,
      );
  }
  return `${lines.join('\n')}\n`;
}

function readProfile() {
  try {
    return JSON.parse(readFileSync(new URL('profile.json', results), 'utf8'));
  } catch {
    return null;
  }
}

export function markdown(out, { forReadme = false, profile = readProfile() } = {}) {
  const img = (name, alt) =>
    forReadme ? `![${alt}](bench/results/${name}.svg)` : `![${alt}](${name}.svg)`;
  const machine = `${out.machine.cores} cores (${out.machine.cpuModel}), Node ${out.versions.node}, socket.io ${out.versions['socket.io']}, nats-server ${out.versions['nats-server']}, redis-server ${out.versions['redis-server']}`;
  const s = out.scalingSettings;
  const lines = [];
  if (!forReadme) lines.push('# Benchmark results', '');
  lines.push(
    `${forReadme ? '' : `Run ${out.at} (${out.mode}, ${out.durationSeconds} s) on `}${forReadme ? `Last run (\`npm run bench${out.mode === 'quick' ? ' -- --quick' : ''}\`, ${out.at.slice(0, 10)}) on ` : ''}${machine}. Shared machine: read the ratios within one run, not the absolute numbers across runs. Method and caveats: [docs/performance.md](${forReadme ? 'docs/performance.md' : '../../docs/performance.md'}).`,
    '',
  );
  if (out.scaling) {
    lines.push(
      `**Scaling with nodes**: ${s.users} users over N socket servers, ${s.rate} single-recipient messages/s for ${s.sendSeconds} s per measurement, median of ${s.repeats}${s.repeats > 1 ? ' (CPU range in brackets)' : ''}. Server CPU ms per 1,000 delivered messages, summed over every server process (broker, API, presence, socket servers) from /proc; idle-adjusted subtracts each process's idle CPU rate measured just before. Latency is POST to receipt at the client.`,
      '',
      scalingTable(out.scaling, { roles: !forReadme }),
      '',
      img('scaling-cpu', 'CPU ms per 1,000 delivered messages by number of socket servers'),
      img('scaling-roles', 'CPU ms per 1,000 delivered messages by role'),
      '',
      reading(out),
      '',
    );
    if (out.limits?.length) {
      lines.push(
        `Limits at the same rate (the floor each hop could cost): a raw Socket.IO emit loop in one process, NATS core pub/sub (publisher, broker, subscriber), a Fastify hello-world POST.`,
        '',
        limitsTable(out.limits),
        '',
      );
    }
  }
  lines.push(profileSummary(profile, forReadme));
  lines.push(otherTables(out));
  if (out.throughput || out.multicast)
    lines.push(
      img('throughput', 'Sustained messages/s'),
      img('multicast', 'Multicast deliveries/s'),
      '',
    );
  if (out.idleMemory) lines.push(img('memory', 'Idle memory per connection'), '');
  if (!forReadme && out.existing)
    lines.push(
      '## Earlier benchmarks (each beside its own baseline)',
      '',
      existingTables(out.existing),
    );
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()}\n`;
}

async function svg(spec) {
  const { spec: compiled } = compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { font: 'sans-serif', view: { stroke: null } },
    ...spec,
  });
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  return view.toSVG();
}

const systemColor = {
  field: 'system',
  type: 'nominal',
  sort: [...SYSTEM_ORDER, 'limit-socketio-emit', 'limit-nats-pubsub', 'limit-fastify-hello'],
  scale: { scheme: 'tableau10' },
};

async function charts(out) {
  const files = {};
  if (out.scaling) {
    files['scaling-cpu'] = await svg({
      title: 'Server CPU ms per 1,000 delivered messages',
      width: 420,
      height: 260,
      data: {
        values: out.scaling.flatMap((r) => [
          { system: r.system, nodes: r.nodes, ms: r.cpuMsPer1k.total, kind: 'total' },
          {
            system: r.system,
            nodes: r.nodes,
            ms: r.cpuMsPer1k.idleAdjusted,
            kind: 'idle-adjusted',
          },
        ]),
      },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'nodes', type: 'ordinal', title: 'socket servers (N)' },
        y: { field: 'ms', type: 'quantitative', title: 'CPU ms / 1,000 messages' },
        color: systemColor,
        strokeDash: { field: 'kind', type: 'nominal', title: null },
      },
    });
    files['scaling-roles'] = await svg({
      title: 'Where the CPU goes, per role (ms per 1,000 messages)',
      data: {
        values: out.scaling.flatMap((r) =>
          Object.entries(r.cpuMsPer1k.byRole).map(([role, ms]) => ({
            system: r.system.replace('socketio-redis', 'redis'),
            nodes: `N = ${r.nodes}`,
            role,
            ms,
          })),
        ),
      },
      mark: 'bar',
      width: 110,
      height: 220,
      encoding: {
        column: {
          field: 'nodes',
          type: 'ordinal',
          title: null,
          sort: out.scaling.map((r) => `N = ${r.nodes}`),
        },
        x: { field: 'system', type: 'nominal', title: null, axis: { labelAngle: -40 } },
        y: { field: 'ms', type: 'quantitative', title: 'CPU ms / 1,000 messages' },
        color: { field: 'role', type: 'nominal', scale: { scheme: 'set2' } },
      },
    });
  }
  const bar = (title, values, field, axis) =>
    svg({
      title,
      width: 360,
      height: 24 * values.length,
      data: { values },
      mark: 'bar',
      encoding: {
        y: { field: 'system', type: 'nominal', title: null, sort: systemColor.sort },
        x: { field, type: 'quantitative', title: axis },
        color: { ...systemColor, legend: null },
      },
    });
  if (out.throughput)
    files.throughput = await bar(
      'Highest rate with p99 < 50 ms',
      out.throughput.results.map((r) => ({ system: r.system, rate: r.maxRate ?? 0 })),
      'rate',
      'messages/s',
    );
  if (out.multicast)
    files.multicast = await bar(
      `Multicast to ${out.multicast.users} users on ${out.multicast.nodes} nodes`,
      out.multicast.results.map((r) => ({ system: r.system, d: r.deliveriesPerS })),
      'd',
      'deliveries/s',
    );
  if (out.idleMemory)
    files.memory = await bar(
      'Socket server RSS per idle connection',
      out.idleMemory.results.map((r) => ({ system: r.system, b: r.socketServerRssPerConnection })),
      'b',
      'bytes',
    );
  if (out.connectionStorm)
    files.storm = await bar(
      'Connection storm into one socket server',
      out.connectionStorm.results.map((r) => ({ system: r.system, c: r.connectsPerS })),
      'c',
      'connects/s',
    );
  return files;
}

/** Markdown as Biome formats it, so that `npm run lint` stays clean on the README. */
function formatMarkdown(text) {
  const biome = fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url));
  return execFileSync(biome, ['format', '--stdin-file-path=performance.md'], {
    input: text,
    encoding: 'utf8',
  });
}

/** Replaces (or inserts, before `## Repository map`) the README's Performance section. */
export function updateReadme(out) {
  const readme = readFileSync(readmeUrl, 'utf8');
  const body = formatMarkdown(`## Performance\n\n${markdown(out, { forReadme: true })}`);
  const section = `${START}\n${body.trimEnd()}\n${END}`;
  let next;
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a >= 0 && b > a) next = readme.slice(0, a) + section + readme.slice(b + END.length);
  else {
    const at = readme.indexOf('## Repository map');
    if (at < 0) throw new Error('README.md has no "## Repository map" section to insert before');
    next = `${readme.slice(0, at)}${section}\n\n${readme.slice(at)}`;
  }
  if (next !== readme) writeFileSync(readmeUrl, next);
}

export async function writeReport(out, { readme = true } = {}) {
  for (const [name, text] of Object.entries(await charts(out)))
    writeFileSync(new URL(`${name}.svg`, results), text);
  writeFileSync(new URL('latest.md', results), formatMarkdown(markdown(out)));
  if (readme) updateReadme(out);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = JSON.parse(readFileSync(new URL('latest.json', results), 'utf8'));
  await writeReport(out, { readme: !process.argv.includes('--no-readme') });
  console.log('wrote bench/results/latest.md, the charts and the README section');
}
