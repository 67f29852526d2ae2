/**
 * The transport half of the client against a real server: token refresh (on 401, single-flight,
 * sign-out when refused), the socket's re-authentication before expiry, 4401 handling, reconnect
 * and resume after the server drops the socket, de-duplication across reconnects, message.send
 * answers and errors, liveness pings, an inject-backed fetch, and restoring a stored login.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../../../test/_helpers/server.js';
import { closeAllSockets, connectByFrame, movableClock } from '../../../../test/_helpers/ws.js';
import { SOCKET_LIMITS } from '../../../../src/ws/connection.js';
import {
  ApiError,
  HttpClient,
  MemoryCursorStore,
  MemoryMessageStore,
  MemoryTokenStore,
  SafeChatSocket,
  SignedOutError,
  type SocketEvents,
} from '../../src/index.js';
import { MemoryKeyStore, MemorySessionStore } from '../../src/store/index.js';
import {
  atLeast,
  client,
  countingFetch,
  disconnectAll,
  injectFetch,
  PASSWORD,
  record,
  registered,
  serverConnections,
  sleep,
  startServer,
  uniqueName,
  waitUntil,
  WebSocket,
} from './helpers.js';

afterEach(() => {
  disconnectAll();
  closeAllSockets();
});

const refreshes = (calls: string[]) => calls.filter((c) => c === 'POST /auth/refresh-token').length;

describe('access-token refresh (server clock moved past expiry)', () => {
  const clock = movableClock();
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ env: { ACCESS_TOKEN_TTL: '10s' }, overrides: { clock } });
  });
  afterAll(() => server?.close());

  it('a 401 for an expired token refreshes once and retries; concurrent callers share that refresh', async () => {
    const f = countingFetch();
    const c = client(server, { fetch: f });
    await c.register(uniqueName(), PASSWORD);
    const before = await c.stores.tokens.load();

    clock.advance(15_000); // the server now considers the token expired; the client does not know yet
    const mark = f.calls.length;
    expect((await c.api.getMe()).id).toBe(c.user!.id);
    expect(f.calls.slice(mark)).toEqual(['GET /users/me', 'POST /auth/refresh-token', 'GET /users/me']);
    const after = await c.stores.tokens.load();
    expect(after!.accessToken).not.toBe(before!.accessToken);
    expect(after!.refreshToken).not.toBe(before!.refreshToken); // rotated

    clock.advance(15_000);
    const mark2 = f.calls.length;
    const results = await Promise.all(Array.from({ length: 6 }, () => c.api.getMe()));
    expect(results.every((u) => u.id === c.user!.id)).toBe(true);
    expect(refreshes(f.calls.slice(mark2))).toBe(1);
  });

  it('a refused refresh signs the client out: SignedOutError, the signedOut event, tokens cleared, the socket stopped', async () => {
    const f = countingFetch();
    const c = client(server, { fetch: f });
    await c.register(uniqueName(), PASSWORD);
    await c.connect();
    const out = record(c, 'signedOut');
    const states = record(c, 'connection');
    // the login is revoked elsewhere (e.g. "log out everywhere"): the refresh token dies with it
    const tokens = await c.stores.tokens.load();
    const res = await fetch(`${server.url}/auth/logout`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: tokens!.refreshToken }) });
    expect(res.status).toBe(204);

    await atLeast(out, 1, 'signedOut');
    await expect(c.api.getMe()).rejects.toBeInstanceOf(SignedOutError);
    expect(await c.stores.tokens.load()).toBeUndefined();
    await waitUntil(() => c.socket.state === 'closed', 'socket closed');
    const calls = f.calls.length;
    await sleep(300);
    expect(f.calls.length).toBe(calls); // no retry loop
    expect(states.map((s) => s.state)).toContain('closed');
    expect(c.user).toBeNull();
  });
});

describe('the socket', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server?.close());

  it('reconnects after the server drops it and resumes: every missed message once, in order', async () => {
    const alice = await registered(server);
    const bob = await registered(server);
    await bob.connect();
    const got = record(bob, 'message');
    const disconnects: SocketEvents['disconnected'][] = [];
    bob.socket.events.on('disconnected', (d) => {
      disconnects.push(d);
    });
    const readies: SocketEvents['ready'][] = [];
    bob.socket.events.on('ready', (r) => {
      readies.push(r);
    });
    await alice.sendText(bob.user!.id, 'before');
    await atLeast(got, 1, 'messages');

    for (const conn of serverConnections(server, bob.user!.id)) conn.close(1011, 'internal error');
    for (let i = 0; i < 5; i++) await alice.sendText(bob.user!.id, `while away ${i}`); // alice is not connected: REST
    await atLeast(got, 6, 'messages');
    await alice.sendText(bob.user!.id, 'live again');
    await atLeast(got, 7, 'messages');
    await bob.socket.idle();
    expect(got.map((m) => m.plaintext.body)).toEqual(['before', 'while away 0', 'while away 1', 'while away 2', 'while away 3', 'while away 4', 'live again']);
    expect(disconnects[0]).toMatchObject({ code: 1011, willReconnect: true });
    expect(readies.at(-1)!.resumed).toBe(true);
  });

  it('connect, close and connect again in a row open exactly one socket', async () => {
    let opened = 0;
    class CountingWebSocket extends WebSocket {
      constructor(url: string) {
        super(url);
        opened++;
      }
    }
    const bob = client(server, { WebSocket: CountingWebSocket });
    await bob.register(uniqueName(), PASSWORD);
    const first = bob.connect();
    bob.disconnect();
    const second = bob.connect(); // while the first attempt is still waiting for its token
    await expect(first).rejects.toMatchObject({ code: 'not_connected' });
    await second;
    await sleep(200);
    expect(opened).toBe(1);
    expect(serverConnections(server, bob.user!.id).length).toBe(1);
    expect(bob.socket.state).toBe('open');
  });

  it('1012 (service restart) reconnects at once; other closes back off', async () => {
    const bob = await registered(server);
    await bob.connect();
    const disconnects: SocketEvents['disconnected'][] = [];
    bob.socket.events.on('disconnected', (d) => {
      disconnects.push(d);
    });
    for (const conn of serverConnections(server, bob.user!.id)) conn.close(1012, 'restart');
    await waitUntil(() => disconnects.length === 1 && bob.socket.isOpen, 'reconnect after 1012');
    expect(disconnects[0]!.delayMs).toBe(0);
    for (const conn of serverConnections(server, bob.user!.id)) conn.close(1013, 'try again later');
    await waitUntil(() => disconnects.length === 2 && bob.socket.isOpen, 'reconnect after 1013');
    expect(disconnects[1]!.delayMs).toBeGreaterThan(0);
  });

  it('a 4401 close refreshes the token, then reconnects and resumes', async () => {
    const f = countingFetch();
    const alice = await registered(server);
    const bob = client(server, { fetch: f });
    await bob.register(uniqueName(), PASSWORD);
    await bob.connect();
    const got = record(bob, 'message');
    const before = refreshes(f.calls);
    for (const conn of serverConnections(server, bob.user!.id)) conn.close(4401, 'access token expired');
    await alice.sendText(bob.user!.id, 'after 4401');
    await atLeast(got, 1, 'messages');
    expect(refreshes(f.calls)).toBe(before + 1);
    expect(bob.socket.isOpen).toBe(true);
  });

  it('does not hand a message to the application twice when the server replays it after a reconnect', async () => {
    const alice = await registered(server);
    const api = new HttpClient({ baseUrl: server.url });
    await api.register({ username: uniqueName(), password: PASSWORD });
    const me = await api.getMe();
    const cursors = new MemoryCursorStore();
    const socket = new SafeChatSocket({ url: `${server.url.replace('http', 'ws')}/ws`, WebSocket, auth: api, cursors, backoff: { initialMs: 20, maxMs: 100 } });
    const events: SocketEvents['event'][] = [];
    socket.events.on('event', (e) => {
      events.push(e);
    });
    await socket.connect();
    const start = await cursors.load();
    const m1 = await alice.api.sendMessage({ receiverId: me.id, encryptedContent: 'AAAA', iv: 'A'.repeat(22) + '==', mac: 'A'.repeat(43) + '=', type: 'text' });
    await atLeast(events, 1, 'events');
    await socket.idle();
    expect(await cursors.load()).toBe(events[0]!.cursor);
    // the app crashed before its cursor was saved: the older cursor makes the server replay m1
    await cursors.save(start!);
    for (const conn of serverConnections(server, me.id)) conn.close(1012, 'restart');
    const m2 = await alice.api.sendMessage({ receiverId: me.id, encryptedContent: 'AAAB', iv: 'A'.repeat(22) + '==', mac: 'A'.repeat(43) + '=', type: 'text' });
    await atLeast(events, 2, 'events');
    await socket.idle();
    await sleep(100);
    expect(events.map((e) => (e.type === 'message.new' ? e.data.id : e.type))).toEqual([m1.message.id, m2.message.id]);
    socket.close();
  });

  it('a cursor the server cannot replay (resync) or refuses (4400) is reported as a resync, and the head becomes the cursor', async () => {
    const alice = await registered(server);
    const bob = await registered(server);
    await alice.sendText(bob.user!.id, 'one'); // bob's log: cursor 1
    const resyncs = record(bob, 'resync');

    await bob.stores.cursor.save('999999'); // e.g. the server's database was restored from an older backup
    await bob.connect();
    await atLeast(resyncs, 1, 'resync');
    await bob.socket.idle();
    expect(resyncs[0]).toEqual({ reason: 'cursor_unknown' });
    expect(await bob.stores.cursor.load()).toBe('1');
    // the app refetches over REST; the message is still there and decrypts
    expect((await bob.history(alice.user!.id)).items.map((i) => i.plaintext?.body)).toEqual(['one']);
    bob.disconnect();

    await bob.stores.cursor.save('not-a-cursor'); // a corrupted store: the server closes with 4400
    const disconnects: SocketEvents['disconnected'][] = [];
    bob.socket.events.on('disconnected', (d) => {
      disconnects.push(d);
    });
    await bob.connect();
    await atLeast(resyncs, 2, 'resync');
    await bob.socket.idle();
    expect(disconnects.map((d) => d.code)).toEqual([4400]);
    expect(await bob.stores.cursor.load()).toBe('1');
  });

  it('message.send resolves with the stored message; a refused one rejects with a typed ApiError', async () => {
    const alice = await registered(server);
    const bob = await registered(server);
    await alice.connect();
    const chat = await alice.chatWith(bob.user!.id);
    const body = { chatId: chat.id, encryptedContent: 'AAAA', iv: 'A'.repeat(22) + '==', mac: 'A'.repeat(43) + '=', type: 'text' as const, clientMessageId: 'c-1' };
    const m = await alice.socket.sendMessage(body);
    expect(m).toMatchObject({ chatId: chat.id, senderId: alice.user!.id, receiverId: bob.user!.id, clientMessageId: 'c-1', status: 'sent' });
    // idempotent retry over REST with the same clientMessageId
    const again = await alice.api.sendMessage(body);
    expect(again).toEqual({ message: m, created: false });

    const err = await alice.socket.sendMessage({ ...body, clientMessageId: 'c-2', receiverId: alice.user!.id }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'validation_error' });
    const notMember = await alice.socket.sendMessage({ ...body, clientMessageId: 'c-3', chatId: '00000000-0000-7000-8000-000000000000' }).catch((e: unknown) => e);
    expect(notMember).toMatchObject({ status: 404, code: 'not_found' });

    // larger than a frame may be: refused locally, and the socket stays up (the server would close it with 1009)
    const huge = await alice.socket.sendMessage({ ...body, clientMessageId: 'c-4', encryptedContent: Buffer.alloc(100_000).toString('base64') }).catch((e: unknown) => e);
    expect(huge).toMatchObject({ status: 413, code: 'payload_too_large' });
    expect(alice.socket.isOpen).toBe(true);
    expect(await alice.socket.sendMessage({ ...body, clientMessageId: 'c-5' })).toMatchObject({ clientMessageId: 'c-5' });

    alice.disconnect();
    await expect(alice.socket.sendMessage(body)).rejects.toMatchObject({ status: 0, code: 'not_connected' });
  });

  it('drops a connection that stops answering pings and reconnects', async () => {
    const bob = client(server, { socket: { pingIntervalMs: 100, pongTimeoutMs: 300, backoff: { initialMs: 20, maxMs: 100 } } });
    await bob.register(uniqueName(), PASSWORD);
    await bob.connect();
    const disconnects: SocketEvents['disconnected'][] = [];
    bob.socket.events.on('disconnected', (d) => {
      disconnects.push(d);
    });
    await sleep(350); // pings are answered: nothing happens
    expect(disconnects).toEqual([]);
    // the server stops reading this connection (a half-dead TCP path)
    const [conn] = serverConnections(server, bob.user!.id) as unknown as { socket: { _socket: { pause(): void } } }[];
    conn!.socket._socket.pause();
    await waitUntil(() => disconnects.length >= 1, 'ping timeout');
    expect(disconnects[0]).toMatchObject({ code: 4000, reason: 'no pong in time' });
    await waitUntil(() => bob.socket.isOpen, 'reconnect');
  });

  it('changing the password keeps this client signed in (its socket comes back with the new token); deleting the account signs it out', async () => {
    const alice = await registered(server);
    const bob = await registered(server);
    await bob.connect();
    const other = client(server); // another login of Bob's: it ends
    await other.api.login({ username: bob.user!.username, password: PASSWORD });
    const otherOut = record(other, 'signedOut');

    await bob.changePassword(PASSWORD, 'new-Lantern-73-violet');
    await expect(other.api.getMe()).rejects.toBeInstanceOf(SignedOutError);
    expect(otherOut).toEqual([{ reason: 'refresh_failed' }]);
    const got = record(bob, 'message');
    await alice.sendText(bob.user!.id, 'after the password change');
    await atLeast(got, 1, 'messages');
    expect(bob.socket.isOpen).toBe(true);
    await expect(client(server).login(bob.user!.username, PASSWORD)).rejects.toMatchObject({ status: 401 });

    const out = record(bob, 'signedOut');
    const id = bob.user!.id;
    await bob.deleteAccount('new-Lantern-73-violet');
    expect(out).toEqual([{ reason: 'account_deleted' }]);
    expect(bob.user).toBeNull();
    await expect(alice.api.getUser(id)).rejects.toMatchObject({ status: 404 });
  });

  it('API errors are typed: status, code, message, details, retryAfter', async () => {
    const c = await registered(server);
    const e1 = await c.api.getUser('not-an-id').catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ApiError);
    expect(e1).toMatchObject({ status: 400, code: 'validation_error' });
    expect((e1 as ApiError).details).toBeDefined();
    const e2 = await c.api.getUser('00000000-0000-7000-8000-000000000000').catch((e: unknown) => e);
    expect(e2).toMatchObject({ status: 404, code: 'not_found' });
    const dup = await c.api.register({ username: c.user!.username, password: PASSWORD }).catch((e: unknown) => e);
    expect(dup).toMatchObject({ status: 409, code: 'conflict' });
    // the refresh limit per login (10 in a burst): the 429 carries retryAfter, and the tokens are kept
    let limited: unknown = null;
    for (let i = 0; i < 12 && limited === null; i++) limited = await c.api.refresh().then(() => null, (e: unknown) => e);
    expect(limited).toBeInstanceOf(ApiError);
    expect(limited).toMatchObject({ status: 429, code: 'rate_limited', transient: true });
    expect((limited as ApiError).retryAfter).toBeGreaterThan(0);
    expect(await c.api.isSignedIn()).toBe(true);
    expect((await c.api.getMe()).id).toBe(c.user!.id);
    const down = new HttpClient({ baseUrl: 'http://127.0.0.1:9' });
    await expect(down.health()).rejects.toMatchObject({ status: 0, code: 'network_error' });
    expect(await c.api.health()).toMatchObject({ status: 'ok' });
  });

  it('a client with an inject-backed fetch talks to a client on real HTTP', async () => {
    const injected = client(server, { fetch: injectFetch(server.app) });
    await injected.register(uniqueName(), PASSWORD);
    const bob = await registered(server);
    await bob.connect();
    const got = record(bob, 'message');
    await injected.sendText(bob.user!.id, 'sent through app.inject'); // no socket: REST via inject
    await atLeast(got, 1, 'messages');
    expect(got[0]!.plaintext.body).toBe('sent through app.inject');
    await bob.sendText(injected.user!.id, 'and back');
    const page = await injected.history(bob.user!.id);
    expect(page.items.map((i) => i.plaintext?.body)).toEqual(['sent through app.inject', 'and back']);
    await injected.logout();
    await expect(injected.api.getMe()).rejects.toBeInstanceOf(SignedOutError);
  });

  it('a client built on stored state (restart) restores the login and resumes from the saved cursor', async () => {
    const alice = await registered(server);
    const stores = {
      keys: new MemoryKeyStore(),
      sessions: new MemorySessionStore(),
      tokens: new MemoryTokenStore(),
      cursor: new MemoryCursorStore(),
      messages: new MemoryMessageStore(),
    };
    const first = client(server, { stores });
    const bob = await first.register(uniqueName(), PASSWORD);
    await first.connect();
    const got1 = record(first, 'message');
    await alice.sendText(bob.id, 'one');
    await atLeast(got1, 1, 'messages');
    await first.socket.idle();
    first.disconnect(); // the app is closed

    await alice.sendText(bob.id, 'two'); // while it is closed
    const second = client(server, { stores });
    expect((await second.restore())!.id).toBe(bob.id);
    const got2 = record(second, 'message');
    await second.connect();
    await atLeast(got2, 1, 'messages');
    await second.socket.idle();
    expect(got2.map((m) => m.plaintext.body)).toEqual(['two']);
    expect((await second.history(alice.user!.id)).items.map((i) => i.plaintext?.body)).toEqual(['one', 'two']);
    expect(await client(server, { stores: { tokens: new MemoryTokenStore() } }).restore()).toBeNull();
  });
});

describe('re-authentication on a live socket (ACCESS_TOKEN_TTL=10s, no expiry grace)', () => {
  let server: TestServer;
  const grace = SOCKET_LIMITS.expiryGraceMs;
  beforeAll(async () => {
    // @NOTE the server lets a socket live 30 s past its token's expiry; without that grace the test
    // shows in 12 s what would otherwise take 40: a socket that does not re-authenticate is closed.
    (SOCKET_LIMITS as { expiryGraceMs: number }).expiryGraceMs = 0;
    server = await startServer({ env: { ACCESS_TOKEN_TTL: '10s' } });
  });
  afterAll(async () => {
    (SOCKET_LIMITS as { expiryGraceMs: number }).expiryGraceMs = grace;
    await server?.close();
  });

  it('sends a fresh auth frame before the token expires and stays connected; a socket that does not is closed with 4401', { timeout: 30_000 }, async () => {
    const f = countingFetch();
    const alice = await registered(server);
    const bob = client(server, { fetch: f });
    await bob.register(uniqueName(), PASSWORD);
    await bob.connect();
    const disconnects: SocketEvents['disconnected'][] = [];
    bob.socket.events.on('disconnected', (d) => {
      disconnects.push(d);
    });
    // control: a raw socket authenticated with the same first token, which never re-authenticates
    const raw = await connectByFrame(`${server.url.replace('http', 'ws')}/ws`, (await bob.stores.tokens.load())!.accessToken);

    expect(await raw.waitClose(14_000)).toBe(4401);
    await sleep(1_500);
    expect(disconnects).toEqual([]);
    expect(bob.socket.isOpen).toBe(true);
    expect(refreshes(f.calls)).toBeGreaterThanOrEqual(1);
    const got = record(bob, 'message');
    await alice.sendText(bob.user!.id, 'still connected');
    await atLeast(got, 1, 'messages');
    expect(disconnects).toEqual([]);
  });
});
