/** pino, the one logger of every process: JSON in production, pretty on a terminal. */
import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export type LoggerOptions = {
  name: string;
  level?: LevelWithSilent;
  /** Human-readable output; defaults to on when stdout is a TTY or LOG_PRETTY=1. */
  pretty?: boolean;
};

/** Keys whose values never reach a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'apiKey',
];

export function createLogger(options: LoggerOptions): Logger {
  const pretty =
    options.pretty ?? (process.stdout.isTTY === true || process.env.LOG_PRETTY === '1');
  return pino({
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    ...(pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: {
              colorize: process.stdout.isTTY === true,
              translateTime: 'HH:MM:ss.l',
              ignore: 'pid,hostname',
            },
          },
        }
      : {}),
  });
}
