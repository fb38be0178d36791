export type DemoServerOptions = {
  /** Default 3200; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  edgeUrls: string[];
  pushApiUrl: string;
  presenceUrl: string;
  /** The push API and presence key (default: the development key). */
  apiKey?: string;
  /** The edges' AUTH_JWT_SECRET (default: the development secret). */
  jwtSecret?: string;
  /** Default process.env; NODE_ENV=production refuses to start. */
  env?: Record<string, string | undefined>;
};
export declare function buildClientBundle(): Promise<string>;
export declare function startDemoServer(
  options: DemoServerOptions,
): Promise<{ url: string; close(): Promise<void> }>;
