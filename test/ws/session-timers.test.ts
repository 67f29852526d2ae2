import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SOCKET_LIMITS } from '../../src/ws/connection.js';
import { closeAllSockets, connect, movableClock, sleep, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';

/**
 * A live socket's two timers (SECURITY.md WS-04 / T-WS-07, T-WS-17; docs/websocket.md §7, §9).
 * In production both are 30 s; here they are shortened through ContextOverrides so the suite does
 * not wait a minute, and the production values are checked where they are defined.
 */
const ACCESS_TTL_MS = 15 * 60 * 1000;
const GRACE_MS = 3000;
const HEARTBEAT_MS = 1000;

describe('token expiry on a live socket', () => {
  let srv: WsServer;
  const clock = movableClock();
  let moved = 0;

  beforeAll(async () => {
    srv = await wsServer({ dialect: 'sqlite', overrides: { clock, expiryGraceMs: GRACE_MS } });
  });
  afterAll(() => srv.close());
  afterEach(() => {
    closeAllSockets();
    clock.advance(-moved);
    moved = 0;
  });

  /** Moves the server's clock so that tokens issued at registration have `ms` left. */
  function leave(ms: number): void {
    clock.advance(ACCESS_TTL_MS - ms);
    moved += ACCESS_TTL_MS - ms;
  }

  function expOf(token: string): number {
    return (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
  }

  it('production values: 30 s of grace past `exp`', () => {
    expect(SOCKET_LIMITS.expiryGraceMs).toBe(30_000);
  });

  it('T-WS-07: an idle socket whose token expires is closed with 4401 at exp + grace, not before', async () => {
    const u = await srv.user();
    leave(3000);
    const s = await connect(srv.wsUrl, u.token);
    // `exp` is whole seconds: the close is due exp + grace, as the server's clock reads it.
    const dueIn = expOf(u.token) * 1000 + GRACE_MS - clock.now();
    const t0 = Date.now();
    expect(dueIn).toBeGreaterThan(GRACE_MS + 1000);
    // Past `exp`, inside the grace: still open.
    await sleep(dueIn - GRACE_MS / 2);
    await s.sync();
    expect(s.closeCode).toBeNull();

    expect(await s.waitClose(5000)).toBe(4401);
    const at = Date.now() - t0;
    expect(at).toBeGreaterThanOrEqual(dueIn - 100);
    expect(at).toBeLessThanOrEqual(dueIn + 2000);
    expect(s.closeReason).toMatch(/expired/);
  });

  it('T-WS-07: a fresh `auth` frame before the deadline keeps the socket open past it', async () => {
    const u = await srv.user();
    leave(2000);
    const s = await connect(srv.wsUrl, u.token);
    const refreshed = await srv.api.post('/auth/refresh-token', { refreshToken: u.refreshToken });
    expect(refreshed.status).toBe(200);
    s.send({ type: 'auth', token: refreshed.body.accessToken });
    await sleep(2000 + GRACE_MS + 1000);
    await s.sync();
    expect(s.closeCode).toBeNull();
  });
});

// Its own server: a 1 s heartbeat would drop any socket of the tests above during a stall that long.
describe('protocol heartbeat', () => {
  let srv: WsServer;

  beforeAll(async () => {
    srv = await wsServer({ dialect: 'sqlite', overrides: { heartbeatMs: HEARTBEAT_MS } });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  it('T-WS-17: a client that stops answering protocol pings is dropped within two intervals; one that answers stays', async () => {
    const u = await srv.user();
    const answering = await connect(srv.wsUrl, u.token);
    const mute = new TestSocket(srv.wsUrl, { token: u.token, autoPong: false });
    await mute.next((f) => f.type === 'ready');
    const t0 = Date.now();
    // Terminated without a close frame: the client sees 1006.
    expect(await mute.waitClose(2 * HEARTBEAT_MS + 3000)).toBe(1006);
    expect(Date.now() - t0).toBeLessThanOrEqual(2 * HEARTBEAT_MS + 1500);

    await sleep(3 * HEARTBEAT_MS);
    await answering.sync();
    expect(answering.closeCode).toBeNull();
  });
});
