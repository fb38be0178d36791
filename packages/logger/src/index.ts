/** @switchboard/logger: the pino logger every app logs with (JSON lines, or pretty on a terminal). */
export * from './logger.js';
