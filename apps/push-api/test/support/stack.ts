/**
 * The push API's test stack: testkit's {@link TestkitStack} (a real nats-server and real edge
 * processes) with the push API under test started here, in this process, on real HTTP from
 * its real config. `close()` closes everything opened here.
 */
import {
  STACK_API_KEY,
  STACK_SECOND_API_KEY,
  STACK_SECRET,
  Stack as TestkitStack,
  type StackOptions as TestkitStackOptions,
} from '@switchboard/testkit';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { type RunningPushApi, startPushApi } from '../../src/start-push-api.js';

export const SECRET = STACK_SECRET;
export const API_KEY = STACK_API_KEY;
export const SECOND_API_KEY = STACK_SECOND_API_KEY;
export const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export type StackOptions = Omit<TestkitStackOptions<RunningPushApi>, 'startApi'>;
export type Stack = TestkitStack<RunningPushApi>;
export const Stack = {
  /** nats-server, `edges` edge processes (default 2), the push API in this process. */
  start: (options: StackOptions = {}): Promise<Stack> =>
    TestkitStack.start<RunningPushApi>({
      ...options,
      startApi: (env) => startPushApi(loadConfig(env), log),
    }),
};
