import { afterEach, beforeEach, expect, it } from 'vitest';
import { envelope, isErrorShape } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, TestSocket, waitUntil, wsServer, type WsServer } from '../_helpers/ws.js';
import { CAPS, LIMITS } from '../../src/limits/catalog.js';
import { SOCKET_LIMITS } from '../../src/ws/connection.js';

/** The per-socket and per-user limits, at their production values (each test on a fresh server). */
describeEachDialect('ws limits', (dialect) => {
  let srv: WsServer;

  beforeEach(async () => {
    srv = await wsServer({ dialect });
  });
  afterEach(async () => {
    closeAllSockets();
    await srv.close();
  });

  it(`a user's ${CAPS.socketsPerUser + 1}th socket is refused: HTTP 429 by header, close 4429 by frame`, async () => {
    const u = await srv.user();
    for (let i = 0; i < CAPS.socketsPerUser; i++) await connect(srv.wsUrl, u.token);

    const byHeader = new TestSocket(srv.wsUrl, { token: u.token });
    const res = await byHeader.refused();
    expect(res.status).toBe(429);
    expect(isErrorShape(res.body, 'rate_limited')).toBe(true);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);

    const byFrame = new TestSocket(srv.wsUrl);
    await byFrame.opened;
    byFrame.send({ type: 'auth', token: u.token });
    expect(await byFrame.waitClose()).toBe(4429);
    expect(byFrame.frames).toEqual([]);
  });

  it(`T-WS-16: an address's ${CAPS.socketsPerIp + 1}st open socket is refused with HTTP 429; other addresses and freed places are not`, async () => {
    closeAllSockets();
    await srv.close();
    // Behind a proxy (as in production), so that the test can speak from several addresses.
    srv = await wsServer({ dialect, env: { TRUST_PROXY: '127.0.0.1' } });
    const from = (ip: string, token?: string) => new TestSocket(srv.wsUrl, { headers: { 'x-forwarded-for': ip }, ...(token ? { token } : {}) });
    const ip = '203.0.113.7';
    const users = await Promise.all(Array.from({ length: CAPS.socketsPerIp / CAPS.socketsPerUser }, () => srv.user()));
    const mine: TestSocket[] = [];
    for (const u of users) {
      const batch = Array.from({ length: CAPS.socketsPerUser }, () => from(ip, u.token));
      await Promise.all(batch.map((s) => s.next((f) => f.type === 'ready')));
      mine.push(...batch);
    }
    expect(srv.ctx.hub.socketsFrom(ip)).toBe(CAPS.socketsPerIp);

    // Authenticated by header or not (unauthenticated sockets count too): refused before the upgrade.
    for (const extra of [from(ip, (await srv.user()).token), from(ip)]) {
      const res = await extra.refused();
      expect(res.status).toBe(429);
      expect(isErrorShape(res.body, 'rate_limited')).toBe(true);
      expect(res.body).toMatchObject({ error: { message: 'too many connections from this address' } });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    // Another address is not affected.
    const elsewhere = from('203.0.113.8');
    expect(await elsewhere.outcome()).toBe('open');
    // A closed socket frees its place.
    mine[0]!.close();
    await waitUntil(() => srv.ctx.hub.socketsFrom(ip) === CAPS.socketsPerIp - 1, 5000, 'the closed socket to be counted out');
    expect(await from(ip).outcome()).toBe('open');
    expect(srv.ctx.hub.socketsFrom(ip)).toBe(CAPS.socketsPerIp);
  });

  it('upgrades checked at the same time cannot take an address past its cap: the extra ones get 429 or close 4429', async () => {
    closeAllSockets();
    await srv.close();
    const cap = 5;
    srv = await wsServer({ dialect, env: { MAX_SOCKETS_PER_IP: String(cap) } });
    const users = await Promise.all(Array.from({ length: 4 * cap }, () => srv.user()));
    const sockets = users.map((u) => new TestSocket(srv.wsUrl, { token: u.token }));
    const outcomes = await Promise.all(
      sockets.map(async (s) => {
        // Refused before the upgrade (429), or accepted and closed at once by the exact count (4429).
        const upgrade = await s.outcome().catch(() => null);
        if (upgrade === null) return `close ${s.closeCode}`;
        if (upgrade !== 'open') return `http ${upgrade}`;
        return s.next((f) => f.type === 'ready').then(
          () => 'ready',
          () => `close ${s.closeCode}`,
        );
      }),
    );
    expect(outcomes.filter((o) => o === 'ready')).toHaveLength(cap);
    for (const o of outcomes.filter((o) => o !== 'ready')) expect(['http 429', 'close 4429']).toContain(o);
    await waitUntil(() => srv.ctx.hub.socketsFrom('127.0.0.1') === cap, 5000, 'the refused sockets to be counted out');
  });

  it(`upgrades beyond ${LIMITS.wsConnectsPerIp.burst} in a burst from one address get HTTP 429`, async () => {
    closeAllSockets();
    await srv.close();
    // Room for the burst: this test is about the upgrade rate, not the cap on open sockets.
    srv = await wsServer({ dialect, env: { MAX_SOCKETS_PER_IP: String(2 * LIMITS.wsConnectsPerIp.burst) } });
    const { burst, perSec } = LIMITS.wsConnectsPerIp;
    const t0 = Date.now();
    const first = Array.from({ length: burst }, () => new TestSocket(srv.wsUrl));
    expect(await Promise.all(first.map((s) => s.outcome(10_000)))).toEqual(first.map(() => 'open'));
    // The bucket refills while we connect: keep going, one at a time, until the limit answers.
    let extra = 0;
    let refused: TestSocket | undefined;
    while (!refused && extra < 100) {
      const s = new TestSocket(srv.wsUrl);
      if ((await s.outcome()) === 'open') extra++;
      else refused = s;
    }
    expect(refused).toBeDefined();
    expect(extra).toBeLessThanOrEqual(Math.ceil(((Date.now() - t0) / 1000) * perSec) + 1);
    const res = await refused!.refused();
    expect(res.status).toBe(429);
    expect(isErrorShape(res.body, 'rate_limited')).toBe(true);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('a socket flooding frames gets rate_limited errors (with the requestId of a dropped send), then is closed with 1008', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    const { burst } = LIMITS.wsFramesPerSocket;
    const ping = { type: 'ping' };
    s.sendBatch([
      ...Array.from({ length: burst + 10 }, () => ping),
      ...Array.from({ length: 10 }, (_, i) => ({ type: 'message.send', requestId: `flood-${i}`, data: {} })),
      ...Array.from({ length: SOCKET_LIMITS.maxThrottledFrames }, () => ping),
    ]);
    expect(await s.waitClose()).toBe(1008);

    const limited = s.ofType('error').filter((f) => f.error!.code === 'rate_limited');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.error).toMatchObject({ code: 'rate_limited', details: { retryAfter: expect.any(Number) } });
    expect(limited.some((f) => f.requestId?.startsWith('flood-'))).toBe(true);
    // Everything within the burst was answered.
    expect(s.ofType('pong').length).toBeGreaterThanOrEqual(burst);
  });

  it(`more than ${SOCKET_LIMITS.maxConcurrentSends} sends in flight: the extra ones get rate_limited with their requestId`, async () => {
    const { a, chat } = await srv.pair();
    const s = await connect(srv.wsUrl, a.token);
    const n = SOCKET_LIMITS.maxConcurrentSends + 32;
    // One TCP write for all the frames, so the server reads them in one go, before any send commits.
    s.sendBatch(Array.from({ length: n }, (_, i) => ({ type: 'message.send', requestId: `q-${i}`, data: { chatId: chat.id, ...envelope() } })));
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => s.next((f) => f.requestId === `q-${i}`, 15_000)));
    const refused = answers.filter((f) => f.type === 'error');
    expect(refused).toHaveLength(n - SOCKET_LIMITS.maxConcurrentSends);
    for (const f of refused) expect(f.error).toMatchObject({ code: 'rate_limited', details: { retryAfter: 1 } });
    const accepted = answers.filter((f) => f.type === 'message.sent');
    expect(accepted).toHaveLength(SOCKET_LIMITS.maxConcurrentSends);
    const page = await srv.api.get(`/messages/${chat.id}?limit=100`, a.token);
    expect(page.body.messages).toHaveLength(accepted.length);
    expect(s.closeCode).toBeNull();
  });
});
