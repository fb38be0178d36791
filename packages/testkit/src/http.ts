/** HTTP for tests: JSON bodies are checked by assertions, field by field, so `json()` is loose. */

// biome-ignore lint/suspicious/noExplicitAny: test bodies are asserted, not typed
export type LooseJson = any;

export type TestResponse = Omit<Response, 'json' | 'clone'> & { json(): Promise<LooseJson> };

/** `fetch`, answering a {@link TestResponse}. */
export function http(input: string | URL, init?: RequestInit): Promise<TestResponse> {
  return fetch(input, init) as Promise<TestResponse>;
}
