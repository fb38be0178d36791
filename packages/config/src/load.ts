/**
 * Environment parsing shared by every app: one zod shape keyed by variable name, so that
 * a bad value stops the app with a message that names the variable.
 */
import { z } from 'zod';

export type ConfigIssue = { variable: string; message: string };

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(
      `invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export type Env = Record<string, string | undefined>;

/**
 * Parses the variables named by `shape` out of `env`. Empty strings count as unset, so
 * `FOO=` falls back to the default. Throws {@link ConfigError} listing every bad variable.
 */
export function readEnv<S extends z.ZodRawShape>(shape: S, env: Env): z.output<z.ZodObject<S>> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const result = z.object(shape).safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? '(env)');
      // Only an unset variable is "required"; a set one says why it failed (e.g. PORT=abc).
      // Values are never echoed: the variable may be a secret.
      return { variable, message: input[variable] === undefined ? 'is required' : issue.message };
    }),
  );
}
