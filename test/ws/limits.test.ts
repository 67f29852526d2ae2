import { afterEach, beforeEach, expect, it } from 'vitest';
import { envelope, isErrorShape } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';
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

  it(`upgrades beyond ${LIMITS.wsConnectsPerIp.burst} in a burst from one address get HTTP 429`, async () => {
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
