// Child processes of the benchmark and what the kernel says about them: CPU time from
// /proc/<pid>/stat (utime + stime, in clock ticks), resident memory from /proc/<pid>/status.
// Every process started here is killed when the benchmark exits, also on an error or Ctrl-C.
import { execFileSync, fork, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const live = new Set();
const killAll = () => {
  for (const p of live) p.kill('SIGKILL');
};
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Registers a child so that it dies with the benchmark. */
export function track(proc) {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  return proc;
}

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU milliseconds (user + system) a process has used so far, or NaN once it is gone. */
export function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** CPU ms of each process, keyed by pid. */
export const sampleCpu = (procs) => new Map(procs.map((p) => [p.pid, cpuMs(p.pid)]));

/**
 * The pid of the direct child started with `BENCH_TAG=<tag>` in its environment. testkit's
 * AppProcess does not expose its pid, so the benchmark finds its apps this way.
 */
export function pidByTag(tag) {
  const want = `BENCH_TAG=${tag}`;
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    for (const pid of children) {
      try {
        const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        if (env.includes(want)) return Number(pid);
      } catch {
        // exited meanwhile
      }
    }
  }
  throw new Error(`no child process with ${want}`);
}

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
export const GC_ON_SIGNAL = here('./gc-on-signal.cjs');

/**
 * Forks a bench script (path relative to bench/) and resolves with the first IPC message
 * that satisfies `ready` (e.g. `{ port }`). stderr is kept for error messages.
 */
export async function forkScript(path, { env = {}, args = [], execArgv = [], ready } = {}) {
  const proc = track(
    fork(fileURLToPath(new URL(`../${path}`, import.meta.url)), args, {
      env: { ...process.env, ...env },
      execArgv,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    }),
  );
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-8192);
  });
  const first = ready
    ? await new Promise((resolve, reject) => {
        const onMessage = (m) => {
          if (!ready(m)) return;
          proc.off('exit', onExit);
          proc.off('message', onMessage);
          resolve(m);
        };
        const onExit = (code) => reject(new Error(`${path} exited with ${code}: ${stderr}`));
        proc.on('message', onMessage);
        proc.once('exit', onExit);
      })
    : undefined;
  return { proc, pid: proc.pid, first, stderr: () => stderr };
}

/** Asks a forked child something over IPC and resolves with the first matching answer. */
export function ask(proc, message, match, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.off('message', onMessage);
      reject(new Error(`no answer to ${JSON.stringify(message).slice(0, 80)}`));
    }, timeoutMs);
    const onMessage = (m) => {
      if (!match(m)) return;
      clearTimeout(timer);
      proc.off('message', onMessage);
      resolve(m);
    };
    proc.on('message', onMessage);
    proc.send(message);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(proc, graceMs = 10_000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Starts a binary and keeps its stderr for errors. */
export function spawnBinary(bin, args) {
  const proc = track(spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-8192);
  });
  return { proc, pid: proc.pid, stderr: () => stderr };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check()` is truthy, polling; throws after `timeoutMs`. */
export async function until(check, { timeoutMs = 15_000, intervalMs = 50, what = 'condition' }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export const fileExists = existsSync;
