/** Helpers for SDK client tests: a real server in-process, SDK clients on it, bounded waits. */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { testServer, type TestServer, type TestServerOptions } from '../../../../test/_helpers/server.js';
import { FAST_ARGON2 } from '../../../../test/_helpers/ws.js';
import { SafeChatClient, type FetchLike, type SafeChatClientEvents, type SafeChatClientOptions, type WebSocketConstructor } from '../../src/index.js';

export { WebSocket };

/** Type checks: both the browser's global WebSocket class and `ws`'s fit the `WebSocket` option as they are. */
export const socketClasses: (WebSocketConstructor | undefined)[] = [globalThis.WebSocket, WebSocket];

/** A real server on 127.0.0.1:<random> (real HTTP, real `ws`, real SQLite), with cheap Argon2. */
export function startServer(opts: TestServerOptions = {}): Promise<TestServer> {
  return testServer({ listen: true, ...opts, overrides: { argon2: FAST_ARGON2, ...opts.overrides } });
}

let n = 0;
export function uniqueName(prefix = 'sdk'): string {
  return `${prefix}_${process.pid}_${++n}_${randomBytes(3).toString('hex')}`.slice(0, 32);
}

export const PASSWORD = 'quartz-Meadow-58-harbor';

const clients = new Set<SafeChatClient>();

/** An SDK client on the server (the global fetch, `ws` for the socket, quick reconnects). */
export function client(server: { url: string }, opts: Partial<SafeChatClientOptions> = {}): SafeChatClient {
  const c = new SafeChatClient({
    baseUrl: server.url,
    WebSocket,
    socket: { backoff: { initialMs: 50, maxMs: 400 }, requestTimeoutMs: 5_000, connectTimeoutMs: 5_000 },
    ...opts,
  });
  clients.add(c);
  return c;
}

/** Registers a new user on a new client. */
export async function registered(server: { url: string }, opts: Partial<SafeChatClientOptions> = {}): Promise<SafeChatClient> {
  const c = client(server, opts);
  await c.register(uniqueName(), PASSWORD);
  return c;
}

/** Closes every client's socket (for afterEach). */
export function disconnectAll(): void {
  for (const c of clients) c.disconnect();
  clients.clear();
}

/** Records every event of one type a client emits. */
export function record<K extends keyof SafeChatClientEvents>(c: SafeChatClient, type: K): SafeChatClientEvents[K][] {
  const out: SafeChatClientEvents[K][] = [];
  c.on(type, (e) => {
    out.push(e);
  });
  return out;
}

/** Polls `cond` until it holds, bounded in time. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits until `list` has at least `count` entries and returns them. */
export async function atLeast<T>(list: T[], count: number, what: string, timeoutMs = 10_000): Promise<T[]> {
  await waitUntil(() => list.length >= count, `${count} ${what} (have ${list.length})`, timeoutMs);
  return list;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A `fetch` backed by `app.inject`: the same server, no socket. */
export function injectFetch(app: FastifyInstance): FetchLike {
  return async (url, init) => {
    const u = new URL(url);
    const res = await app.inject({
      method: init.method as 'GET',
      url: u.pathname + u.search,
      headers: init.headers,
      ...(init.body !== undefined ? { payload: init.body } : {}),
    });
    const headers = new Headers();
    for (const [k, v] of Object.entries(res.headers)) {
      if (v === undefined) continue;
      for (const x of Array.isArray(v) ? v : [String(v)]) headers.append(k, x);
    }
    const nullBody = res.statusCode === 204 || res.statusCode === 304;
    return new Response(nullBody ? null : res.body, { status: res.statusCode, headers });
  };
}

/** A fetch that counts the requests per path (the global fetch underneath, or `inner`). */
export function countingFetch(inner: FetchLike = (url, init) => fetch(url, init)): FetchLike & { calls: string[] } {
  const calls: string[] = [];
  const f = ((url: string, init: Parameters<FetchLike>[1]) => {
    calls.push(`${init.method} ${new URL(url).pathname}`);
    return inner(url, init);
  }) as FetchLike & { calls: string[] };
  f.calls = calls;
  return f;
}

/** The server-side connections of a user (to close them as the server would). */
export function serverConnections(server: TestServer, userId: string): { close(code: number, reason: string): void }[] {
  const users = (server.ctx.hub as unknown as { users: Map<string, Set<{ close(code: number, reason: string): void }>> }).users;
  return [...(users.get(userId) ?? [])];
}
