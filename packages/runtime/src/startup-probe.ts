/**
 * StartupProbe — what an app's port answers before the app itself listens: `/healthz` 200
 * (the process is alive) and `/readyz` 503 naming what it waits for (NATS, JetStream), so
 * an orchestrator and `npm start` can tell "starting" from "dead". The app closes it right
 * before it listens on the same port.
 */
import { createServer, type Server } from 'node:http';

export class StartupProbe {
  readonly #server: Server;
  #waitingFor: string;
  #since = Date.now();
  #lastError: string | undefined;

  private constructor(server: Server, waitingFor: string) {
    this.#server = server;
    this.#waitingFor = waitingFor;
  }

  /**
   * Listens on `port`; resolves undefined when the port cannot be had (the app's own listen
   * will then say why).
   */
  static listen(port: number, host: string, waitingFor: string): Promise<StartupProbe | undefined> {
    let probe: StartupProbe | undefined;
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const body = probe?.state();
      const json = (status: number, payload: unknown) =>
        res
          .writeHead(status, { 'content-type': 'application/json', 'retry-after': '1' })
          .end(JSON.stringify(payload));
      if (path === '/healthz') return json(200, { status: 'starting', ...body });
      if (path === '/readyz') return json(503, { status: 'starting', ...body });
      json(503, {
        error: { code: 'unavailable', message: `starting: waiting for ${body?.waitingFor}` },
      });
    });
    probe = new StartupProbe(server, waitingFor);
    return new Promise((resolve) => {
      server.once('error', () => resolve(undefined));
      server.listen(port, host, () => resolve(probe));
    });
  }

  /** What the app waits for now, and the last error that kept it waiting. */
  waiting(what: string, err?: unknown): void {
    this.#waitingFor = what;
    if (err !== undefined) this.#lastError = err instanceof Error ? err.message : String(err);
  }

  state(): Record<string, unknown> {
    return {
      checks: { nats: false },
      waitingFor: this.#waitingFor,
      waitingMs: Date.now() - this.#since,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
