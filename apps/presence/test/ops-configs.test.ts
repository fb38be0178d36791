/**
 * The deployment files in infra/ checked with the tools that run them and against each
 * other: `nats-server -t`, `haproxy -c`, `promtool check rules|config` and `promtool test
 * rules`; the compose file, `.env.example`, the Kubernetes manifests and the example Secret
 * parsed, cross-checked (every variable and key defined where it is used, probes on
 * /readyz, grace periods that cover the stop deadline, a PodDisruptionBudget per
 * Deployment), and each app's environment run through that app's own configuration check
 * with NODE_ENV=production. The Grafana dashboard and the alert rules are checked for
 * shape here; apps/presence/test/ops-prometheus.test.ts runs them against the live stack.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AppName,
  checkAppConfig,
  findHaproxy,
  findNatsServer,
  promtool,
  runCommand,
} from '@switchboard/testkit';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const infra = join(root, 'infra');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
// biome-ignore lint/suspicious/noExplicitAny: parsed YAML and JSON are checked field by field.
type Any = any;

/**
 * Each app: the variables it reads and its default port, from docs/configuration.md (generated
 * from the apps' schemas; packages/config/test/reference.test.ts fails while it is stale).
 * Whether an environment passes is the app's own `--check-config`.
 */
const APPS: Record<string, { vars: string[]; defaultPort: number }> = (() => {
  const apps: Record<string, { vars: string[]; defaultPort: number }> = {};
  for (const m of read('docs/configuration.md').matchAll(
    /^\| `([A-Z0-9_]+)` +\| ([a-z, -]+?) +\|/gm,
  ))
    for (const app of m[2]!.split(', ')) {
      apps[app] ??= { vars: [], defaultPort: 0 };
      apps[app].vars.push(m[1]!);
    }
  const portRow = read('docs/configuration.md').match(/^\| `PORT` .*$/m)?.[0] ?? '';
  for (const [, port, app] of portRow.matchAll(/`(\d+)` \(([a-z-]+)\)/g))
    apps[app!]!.defaultPort = Number(port);
  return apps;
})();
/** The port an app listens on with `env`. */
const portOf = (app: string, env: Record<string, string>) =>
  env.PORT === undefined ? APPS[app]!.defaultPort : Number(env.PORT);
/** `node apps/<app>/dist/main.js --check-config` with `env`: exit 0, or what it said. */
const configCheck = async (app: string, env: Record<string, string>) => {
  const r = await checkAppConfig(app as AppName, env);
  return r.ok ? 'configuration ok' : r.output;
};
const appOfCommand = (command: string[]) =>
  command.join(' ').match(/apps\/([a-z-]+)\/dist\/main\.js/)?.[1];

/** The stop deadline every app's `runService` enforces (packages/runtime/src/service.ts). */
const STOP_DEADLINE_S = (() => {
  const m = read('packages/runtime/src/service.ts').match(/stopTimeoutMs \?\? ([\d_]+)/);
  if (!m) throw new Error('stop deadline not found in packages/runtime/src/service.ts');
  return Number(m[1]!.replaceAll('_', '')) / 1000;
})();
/** What a grace period must leave beyond the pre-stop pause and the stop deadline. */
const GRACE_MARGIN_S = 5;

/** `KEY=value` lines of an env file (comments and blanks skipped, quotes removed). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^([A-Z][A-Z0-9_]*)=(.*)$/);
    if (!m) continue;
    env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return env;
}
const dotenv = parseEnvFile(read('infra/.env.example'));

/** Compose's interpolation: `${VAR}`, `${VAR:-default}`, `${VAR:?error}`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_, name, op, arg) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (op === '-') return arg;
    throw new Error(`compose needs ${name}${op === '?' ? ` (${arg})` : ''}`);
  });
}

const seconds = (d: string | number) => {
  if (typeof d === 'number') return d;
  const m = d.match(/^(\d+)(ms|s|m)$/);
  if (!m) throw new Error(`not a duration: ${d}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] as 'ms' | 's' | 'm'];
};

describe('operations: NATS, HAProxy and Prometheus configs pass their own tools', () => {
  const natsEnv = Object.fromEntries(
    Object.entries(dotenv).filter(([k]) => k.endsWith('_NATS_PASSWORD')),
  );

  it('nats-server -t accepts every infra/nats config (passwords from .env.example)', async () => {
    const confs = readdirSync(join(infra, 'nats')).filter((f) => f.endsWith('.conf'));
    expect(confs.length).toBeGreaterThanOrEqual(5);
    for (const conf of confs) {
      const r = await runCommand(findNatsServer(), ['-c', conf, '-t'], {
        cwd: join(infra, 'nats'),
        env: natsEnv,
      });
      expect({ conf, code: r.code, out: r.stdout + r.stderr }).toMatchObject({ conf, code: 0 });
    }
  });

  it('nats-server -t refuses the cluster config when a NATS password is missing', async () => {
    const env = { ...natsEnv };
    delete env.OS_PUSH_NATS_PASSWORD;
    // `env -u`: unset even if this process's environment has it.
    const unset = await runCommand(
      '/usr/bin/env',
      ['-u', 'OS_PUSH_NATS_PASSWORD', findNatsServer(), '-c', 'cluster-n1.conf', '-t'],
      { cwd: join(infra, 'nats'), env },
    );
    expect(unset.code).not.toBe(0);
    expect(unset.stdout + unset.stderr).toMatch(/OS_PUSH_NATS_PASSWORD/);
  });

  it('every password variable accounts.conf reads is in .env.example, and every NATS user an app uses exists', () => {
    const accounts = read('infra/nats/accounts.conf');
    const vars = [...accounts.matchAll(/password: \$([A-Z_]+)/g)].map((m) => m[1]!);
    const users = [...accounts.matchAll(/user: ([a-z_]+)/g)].map((m) => m[1]!);
    expect(vars.sort()).toEqual(Object.keys(natsEnv).sort());
    const compose = parse(read('infra/compose.yaml'), { merge: true }) as Any;
    const k8s = k8sDocs();
    const used = new Set<string>();
    for (const s of Object.values(compose.services) as Any[])
      if (s.environment?.NATS_USER) used.add(s.environment.NATS_USER);
    for (const d of k8s.filter((x) => x.kind === 'Deployment'))
      for (const e of d.spec.template.spec.containers[0].env)
        if (e.name === 'NATS_USER') used.add(e.value);
    expect([...used].sort()).toEqual([...users].sort());
  });

  it('haproxy -c accepts infra/lb/haproxy.cfg (only the compose host names may not resolve here)', async () => {
    const r = await runCommand(findHaproxy(), ['-c', '-f', join(infra, 'lb/haproxy.cfg')]);
    const out = r.stdout + r.stderr;
    expect({ code: r.code, out }).toMatchObject({ code: 0 });
    expect(out).toMatch(/Configuration file is valid/);
    const warnings = out.split('\n').filter((l) => /\[(WARNING|ALERT)\]/.test(l));
    for (const w of warnings) expect(w).toMatch(/could not resolve address 'edge-\d'/);
  });

  it('promtool check rules infra/prometheus/*.yml', async () => {
    const files = readdirSync(join(infra, 'prometheus'))
      .filter((f) => f.endsWith('.yml'))
      .map((f) => join(infra, 'prometheus', f));
    expect(files.length).toBeGreaterThan(0);
    const r = await promtool(['check', 'rules', ...files]);
    expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
  });

  it('promtool test rules: every alert fires when it should and stays quiet when it should', async () => {
    const r = await promtool(['test', 'rules', 'alerts.test.yml'], {
      cwd: join(infra, 'prometheus/tests'),
    });
    expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
  });

  it('promtool check config: the compose Prometheus configuration and the rules it loads', async () => {
    const r = await promtool(['check', 'config', 'prometheus.yml'], {
      cwd: join(infra, 'prometheus/config'),
    });
    expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
    expect(r.stdout + r.stderr).toMatch(/1 rule files found/);
  });
});

describe('operations: alert rules and dashboard', () => {
  const rules = (parse(read('infra/prometheus/alerts.yml')) as Any).groups.flatMap(
    (g: Any) => g.rules,
  ) as Any[];
  const docs = read('docs/operations.md');

  it('every alert has a severity, a summary and a runbook section in docs/operations.md', () => {
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Switchboard[A-Za-z]+$/);
      expect(['critical', 'warning']).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.runbook).toBe(`docs/operations.md#${r.alert.toLowerCase()}`);
      expect(docs, `docs/operations.md has no "### ${r.alert}"`).toMatch(
        new RegExp(`^### ${r.alert}$`, 'm'),
      );
    }
  });

  it("the issue's six alerts exist: no live edge, fallback queue growing, DLQ not empty, delivery failure ratio, NATS disconnected, lease flapping", () => {
    const names = rules.map((r) => r.alert);
    for (const a of [
      'SwitchboardNoLiveEdge',
      'SwitchboardFallbackQueueGrowing',
      'SwitchboardDeadLetters',
      'SwitchboardDeliveryFailureRatio',
      'SwitchboardNatsDisconnected',
      'SwitchboardLeaseFlapping',
    ])
      expect(names).toContain(a);
  });

  it('every alert has a promtool unit test in which it fires', () => {
    const tests = (parse(read('infra/prometheus/tests/alerts.test.yml')) as Any).tests as Any[];
    const firing = new Set(
      tests.flatMap((t) =>
        (t.alert_rule_test ?? [])
          .filter((a: Any) => (a.exp_alerts ?? []).length > 0)
          .map((a: Any) => a.alertname),
      ),
    );
    for (const r of rules) expect(firing, `${r.alert} never fires in a test`).toContain(r.alert);
  });

  it('the dashboard: unique ids, every panel on the datasource variable with queries, within the grid', () => {
    const d = JSON.parse(read('infra/grafana/switchboard.json')) as Any;
    expect(d.uid).toBe('switchboard');
    expect(
      d.templating.list.some((v: Any) => v.name === 'datasource' && v.type === 'datasource'),
    ).toBe(true);
    const ids = d.panels.map((p: Any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of d.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type === 'row') continue;
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '$' + '{datasource}' });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) {
        expect(t.expr, p.title).toMatch(/\S/);
        expect(t.refId, p.title).toMatch(/^[A-Z]$/);
      }
      const pending = /^Pending metric: /m.test(p.description ?? '');
      expect(
        /\(.*pending metric/.test(p.title),
        `${p.title}: pending mark in title and description`,
      ).toBe(pending);
    }
  });
});

/** Every document of the manifests `kubectl apply -f infra/k8s` applies. */
function k8sDocs(): Any[] {
  return readdirSync(join(infra, 'k8s'))
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(infra, 'k8s', f), 'utf8')).map((doc) => {
        if (doc.errors.length > 0) throw new Error(`${f}: ${doc.errors[0]!.message}`);
        return doc.toJS();
      }),
    )
    .filter(Boolean);
}

describe('operations: compose and .env.example', () => {
  const text = read('infra/compose.yaml');
  const compose = parse(text, { merge: true }) as Any;
  const services = compose.services as Record<string, Any>;
  const apps = Object.entries(services)
    .map(([name, s]) => ({ name, s, app: appOfCommand(s.command ?? []) }))
    .filter((x): x is { name: string; s: Any; app: string } => x.app !== undefined);

  it('every variable the compose file reads is in .env.example, and .env.example has nothing else', () => {
    const used = new Set([...text.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]!));
    expect([...used].sort()).toEqual(Object.keys(dotenv).sort());
  });

  it('.env.example holds placeholders only: every secret is marked CHANGE-ME', () => {
    for (const [k, v] of Object.entries(dotenv))
      if (/SECRET|PASSWORD|API_KEYS/.test(k) && v !== '') expect(v, k).toMatch(/CHANGE-ME/);
  });

  it('runs every app, each with its healthcheck on /readyz of its port and a grace period over its stop deadline', () => {
    expect(apps.map((a) => a.app).sort()).toEqual(
      ['edge', 'edge', 'os-push', 'presence', 'push-api'].sort(),
    );
    for (const { name, s } of apps) {
      expect(seconds(s.stop_grace_period), name).toBeGreaterThanOrEqual(
        STOP_DEADLINE_S + GRACE_MARGIN_S,
      );
      const port = s.environment.PORT;
      expect(s.healthcheck.test.join(' '), name).toContain(`127.0.0.1:${port}/readyz`);
    }
  });

  it("each app's environment (filled from .env.example) passes that app's configuration check in production", async () => {
    const checks: Array<Promise<unknown>> = [];
    for (const { name, s, app } of apps) {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.environment as Record<string, string>))
        env[k] = interpolate(String(v), dotenv);
      expect(env.NODE_ENV).toBe('production');
      const unknown = Object.keys(env).filter((k) => !APPS[app]!.vars.includes(k));
      expect(unknown, `${name} sets variables ${app} does not read`).toEqual([]);
      expect(portOf(app, env), name).toBe(Number(env.PORT));
      checks.push(configCheck(app, env).then((r) => expect(r, name).toBe('configuration ok')));
    }
    await Promise.all(checks);
  });

  it('every bind mount exists, and Prometheus, HAProxy and Grafana point at services that exist', () => {
    for (const s of Object.values(services))
      for (const v of (s.volumes ?? []) as string[]) {
        const source = v.split(':')[0]!;
        if (source.startsWith('.')) expect(existsSync(join(infra, source)), v).toBe(true);
      }
    const portOf = (service: string) => {
      if (service === 'lb') return 8404;
      return Number(services[service]?.environment?.PORT);
    };
    const prom = parse(read('infra/prometheus/config/prometheus.yml')) as Any;
    const jobs = prom.scrape_configs.map((c: Any) => c.job_name);
    for (const app of ['edge', 'push-api', 'presence', 'os-push'])
      expect(jobs).toContain(`switchboard-${app}`);
    for (const c of prom.scrape_configs)
      for (const t of c.static_configs.flatMap((x: Any) => x.targets) as string[]) {
        const [host, port] = t.split(':');
        expect(services[host!], `scrape target ${t}`).toBeDefined();
        expect(Number(port), `scrape target ${t}`).toBe(portOf(host!));
      }
    // Every edge of the compose file is behind the load balancer, on its port.
    const haproxy = read('infra/lb/haproxy.cfg');
    expect(haproxy).toMatch(/bind :8404/);
    const servers = [...haproxy.matchAll(/^\s*server (\S+) ([\w-]+):(\d+)/gm)];
    expect(servers.map((m) => m[2]).sort()).toEqual(
      apps
        .filter((a) => a.app === 'edge')
        .map((a) => a.name)
        .sort(),
    );
    for (const m of servers) expect(Number(m[3])).toBe(portOf(m[2]!));
    const ds = parse(read('infra/grafana/provisioning/datasources/prometheus.yml')) as Any;
    expect(ds.datasources[0].type).toBe('prometheus');
    expect(new URL(ds.datasources[0].url).hostname).toBe('prometheus');
    expect(services.prometheus).toBeDefined();
    const dash = parse(read('infra/grafana/provisioning/dashboards/switchboard.yml')) as Any;
    const mount = (services.grafana.volumes as string[]).find((v) =>
      v.startsWith('./grafana/switchboard.json:'),
    );
    expect(mount?.split(':')[1]).toBe(`${dash.providers[0].options.path}/switchboard.json`);
  });
});

describe('operations: Kubernetes manifests and the example Secret', () => {
  const docs = k8sDocs();
  const deployments = docs.filter((d) => d.kind === 'Deployment');
  const secret = parse(read('infra/k8s/example/secret.yaml')) as Any;

  /** A container's environment with the example Secret's values (`optional` keys left out on request). */
  function envOf(container: Any, podName: string, withOptional = true): Record<string, string> {
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = String(e.value);
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = podName;
      else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef;
        if (ref.optional && !withOptional) continue;
        env[e.name] = secret.stringData[ref.key];
      } else throw new Error(`${container.name}: ${e.name} has no value this test knows`);
    }
    return env;
  }

  it('the example Secret is the one the manifests read, with every key they read', () => {
    expect(secret.kind).toBe('Secret');
    const keys = new Set<string>();
    for (const d of deployments)
      for (const c of d.spec.template.spec.containers)
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          if (!ref) continue;
          expect(ref.name).toBe(secret.metadata.name);
          keys.add(ref.key);
        }
    expect([...keys].sort()).toEqual(Object.keys(secret.stringData).sort());
    for (const [k, v] of Object.entries(secret.stringData as Record<string, string>))
      if (!/key-id|team-id|topic/.test(k)) expect(v, k).toMatch(/CHANGE-ME/);
  });

  it('a Deployment per app: readiness on /readyz and liveness on /healthz of its port, scrape annotations, rolling without unavailability', () => {
    expect(
      deployments.map((d) => appOfCommand(d.spec.template.spec.containers[0].command)).sort(),
    ).toEqual(['edge', 'os-push', 'presence', 'push-api']);
    for (const d of deployments) {
      const name = d.metadata.name;
      const labels = d.spec.template.metadata.labels;
      for (const [k, v] of Object.entries(d.spec.selector.matchLabels))
        expect(labels[k], name).toBe(v);
      expect(d.spec.strategy?.rollingUpdate?.maxUnavailable, name).toBe(0);
      const [c] = d.spec.template.spec.containers;
      const port = c.ports[0].containerPort;
      expect(c.readinessProbe.httpGet, name).toMatchObject({ path: '/readyz', port });
      expect(c.livenessProbe.httpGet, name).toMatchObject({ path: '/healthz', port });
      const a = d.spec.template.metadata.annotations ?? {};
      expect(a, name).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(port),
        'prometheus.io/path': '/metrics',
      });
    }
  });

  it('terminationGracePeriodSeconds covers the preStop pause, the stop deadline and a margin', () => {
    for (const d of deployments) {
      const spec = d.spec.template.spec;
      const cmd: string[] = spec.containers[0].lifecycle?.preStop?.exec?.command ?? [];
      const pause = cmd[0] === 'sleep' ? Number(cmd[1]) : 0;
      expect(spec.terminationGracePeriodSeconds, d.metadata.name).toBeGreaterThanOrEqual(
        pause + STOP_DEADLINE_S + GRACE_MARGIN_S,
      );
    }
    // The edge is reached through a Service: it must pause before it stops listening.
    const edge = deployments.find((d) => d.metadata.name === 'switchboard-edge');
    expect(edge.spec.template.spec.containers[0].lifecycle.preStop.exec.command[0]).toBe('sleep');
  });

  it('a PodDisruptionBudget per Deployment, one pod at a time', () => {
    const pdbs = docs.filter((d) => d.kind === 'PodDisruptionBudget');
    for (const d of deployments) {
      const pdb = pdbs.find(
        (p) =>
          JSON.stringify(p.spec.selector.matchLabels) ===
          JSON.stringify(d.spec.selector.matchLabels),
      );
      expect(pdb, `no PodDisruptionBudget for ${d.metadata.name}`).toBeDefined();
      expect(pdb.apiVersion).toBe('policy/v1');
      expect(pdb.spec.maxUnavailable).toBe(1);
    }
    expect(pdbs.length).toBe(deployments.length);
  });

  it('every Service selects a Deployment and targets its container port', () => {
    for (const s of docs.filter((d) => d.kind === 'Service')) {
      const d = deployments.find((x) =>
        Object.entries(s.spec.selector).every(([k, v]) => x.spec.template.metadata.labels[k] === v),
      );
      expect(d, `Service ${s.metadata.name} selects nothing`).toBeDefined();
      const port = d.spec.template.spec.containers[0].ports[0].containerPort;
      for (const p of s.spec.ports) expect(p.targetPort, s.metadata.name).toBe(port);
    }
  });

  it("each app's environment (with the example Secret, with and without its optional keys) passes that app's configuration check in production, on the probed port", async () => {
    const checks: Array<Promise<unknown>> = [];
    for (const d of deployments) {
      const c = d.spec.template.spec.containers[0];
      const app = appOfCommand(c.command)!;
      for (const withOptional of [true, false]) {
        const env = envOf(c, `${d.metadata.name}-7d9f8c-x2k4q`, withOptional);
        expect(env.NODE_ENV).toBe('production');
        const unknown = Object.keys(env).filter((k) => !APPS[app]!.vars.includes(k));
        expect(unknown, `${d.metadata.name} sets variables ${app} does not read`).toEqual([]);
        expect(portOf(app, env), d.metadata.name).toBe(c.ports[0].containerPort);
        checks.push(
          configCheck(app, env).then((r) => expect(r, d.metadata.name).toBe('configuration ok')),
        );
      }
    }
    await Promise.all(checks);
  });

  it('the PodMonitor selects every app and scrapes a port each of them names', () => {
    const pm = parse(read('infra/k8s/monitoring/podmonitor.yaml')) as Any;
    expect(pm.kind).toBe('PodMonitor');
    expect(pm.spec.jobLabel).toBe('app');
    expect([...pm.spec.selector.matchExpressions[0].values].sort()).toEqual(
      deployments.map((d) => d.spec.template.metadata.labels.app).sort(),
    );
    const port = pm.spec.podMetricsEndpoints[0].port;
    for (const d of deployments)
      expect(
        d.spec.template.spec.containers[0].ports.map((p: Any) => p.name),
        d.metadata.name,
      ).toContain(port);
  });
});
