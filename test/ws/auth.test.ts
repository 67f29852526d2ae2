import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { isErrorShape } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, connectByFrame, movableClock, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ACCESS_TTL_MS = 15 * 60 * 1000;

describeEachDialect('ws authentication', (dialect) => {
  let srv: WsServer;
  const clock = movableClock();

  beforeAll(async () => {
    srv = await wsServer({ dialect, overrides: { clock } });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  /** Refused with HTTP 401 and the SPEC's error body, before any 101. */
  async function expectUpgrade401(headers: Record<string, string>, url = srv.wsUrl): Promise<void> {
    const s = new TestSocket(url, { headers });
    const res = await s.refused();
    expect(res.status).toBe(401);
    expect(isErrorShape(res.body, 'unauthorized')).toBe(true);
    expect(s.frames).toEqual([]);
    s.close();
  }

  // ---- header ----

  it('a valid Authorization header gets `ready` with the user id and the current cursor', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    expect(s.frames).toHaveLength(1);
    expect(s.frames[0]).toEqual({ type: 'ready', data: { userId: u.id, cursor: expect.any(String) } });
    expect(s.frames[0]!.data.userId).toMatch(ID);

    // The cursor is the head of the user's log: a later event carries a different one.
    const other = await srv.user();
    await srv.api.send(other, { receiverId: u.id });
    const ev = await s.next((f) => f.type === 'message.new');
    expect(ev.cursor).not.toBe(s.frames[0]!.data.cursor);
  });

  it('a garbage, wrongly-schemed, forged or revoked header token is refused with HTTP 401', async () => {
    const u = await srv.user();
    await expectUpgrade401({ authorization: 'Bearer not-a-jwt' });
    await expectUpgrade401({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` });
    await expectUpgrade401({ authorization: `Bearer ${u.token} trailing` });
    const forged = await new SignJWT({ sid: 'x' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setSubject(u.id)
      .setIssuer('safechat')
      .setAudience('safechat-api')
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti('j')
      .sign(new TextEncoder().encode('another-secret-another-secret-another-secret'));
    await expectUpgrade401({ authorization: `Bearer ${forged}` });

    expect((await srv.api.post('/auth/logout', { refreshToken: u.refreshToken })).status).toBe(204);
    await expectUpgrade401({ authorization: `Bearer ${u.token}` });
  });

  it('an expired header token is refused with HTTP 401 (injected clock)', async () => {
    const u = await srv.user();
    clock.advance(ACCESS_TTL_MS + 60_000);
    try {
      await expectUpgrade401({ authorization: `Bearer ${u.token}` });
    } finally {
      clock.advance(-(ACCESS_TTL_MS + 60_000));
    }
    // Same token, back in its lifetime: accepted.
    await connect(srv.wsUrl, u.token);
  });

  it('a malformed `since`, or any other query parameter, refuses the upgrade with HTTP 400', async () => {
    const u = await srv.user();
    for (const query of ['since=abc', 'since=-1', 'since=01', 'cursor=1']) {
      const s = new TestSocket(`${srv.wsUrl}?${query}`, { token: u.token });
      const res = await s.refused();
      expect(res.status).toBe(400);
      expect(isErrorShape(res.body, 'validation_error')).toBe(true);
    }
  });

  // ---- first frame ----

  it('a first-frame `auth` gets `ready` with the user id and cursor', async () => {
    const u = await srv.user();
    const s = await connectByFrame(srv.wsUrl, u.token);
    expect(s.frames).toEqual([{ type: 'ready', data: { userId: u.id, cursor: expect.any(String) } }]);
    await s.sync();
  });

  it('a bad first-frame token closes with 4401, without `ready`', async () => {
    for (const token of ['garbage', 'a.b.c']) {
      const s = new TestSocket(srv.wsUrl);
      await s.opened;
      s.send({ type: 'auth', token });
      expect(await s.waitClose()).toBe(4401);
      expect(s.frames).toEqual([]);
    }
  });

  it('an expired first-frame token closes with 4401 (injected clock)', async () => {
    const u = await srv.user();
    clock.advance(ACCESS_TTL_MS + 60_000);
    try {
      const s = new TestSocket(srv.wsUrl);
      await s.opened;
      s.send({ type: 'auth', token: u.token });
      expect(await s.waitClose()).toBe(4401);
      expect(s.ofType('ready')).toEqual([]);
    } finally {
      clock.advance(-(ACCESS_TTL_MS + 60_000));
    }
  });

  it('a first frame that is not `auth` closes with 4401', async () => {
    const u = await srv.user();
    const firsts: unknown[] = [
      { type: 'ping' },
      { type: 'message.send', requestId: 'r1', data: { receiverId: u.id } },
      'not json',
      { type: 'auth' },
      { type: 'auth', token: u.token, extra: true },
    ];
    for (const first of firsts) {
      const s = new TestSocket(srv.wsUrl);
      await s.opened;
      s.send(first);
      expect(await s.waitClose()).toBe(4401);
      expect(s.frames).toEqual([]);
    }
  });

  it('frames sent right behind the `auth` frame, or right after the upgrade, are answered after `ready`', async () => {
    const u = await srv.user();
    const byFrame = new TestSocket(srv.wsUrl);
    await byFrame.opened;
    byFrame.send({ type: 'auth', token: u.token });
    byFrame.send({ type: 'ping' });
    byFrame.send('{bad json');
    await byFrame.next((f) => f.type === 'error');
    expect(byFrame.frames.map((f) => f.type)).toEqual(['ready', 'pong', 'error']);

    const byHeader = new TestSocket(srv.wsUrl, { token: u.token });
    await byHeader.opened;
    byHeader.send({ type: 'ping' });
    await byHeader.next((f) => f.type === 'pong');
    expect(byHeader.frames.map((f) => f.type)).toEqual(['ready', 'pong']);
  });

  it('a socket that never authenticates is closed with 4401 after about 10 s', { timeout: 15_000 }, async () => {
    const s = new TestSocket(srv.wsUrl);
    await s.opened;
    const t0 = Date.now();
    expect(await s.waitClose(13_000)).toBe(4401);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(9_500);
    expect(elapsed).toBeLessThan(12_000);
    expect(s.frames).toEqual([]);
  });

  // ---- since ----

  it('`?since=` with header auth and `since` in the auth frame both start from that cursor', async () => {
    const u = await srv.user();
    const other = await srv.user();
    const first = await connect(srv.wsUrl, u.token);
    const m1 = await srv.api.send(other, { receiverId: u.id });
    const m2 = await srv.api.send(other, { receiverId: u.id });
    const [e1] = await first.count('message.new', 2);
    first.close();

    const byHeader = await connect(srv.wsUrl, u.token, e1!.cursor);
    expect(byHeader.frames[0]!.data.cursor).toBe(e1!.cursor);
    await byHeader.count('message.new', 1);
    await byHeader.sync();
    expect(byHeader.ofType('message.new').map((f) => f.data.id)).toEqual([m2.id]);

    const byFrame = await connectByFrame(srv.wsUrl, u.token, first.frames[0]!.data.cursor);
    await byFrame.count('message.new', 2);
    await byFrame.sync();
    expect(byFrame.ofType('message.new').map((f) => f.data.id)).toEqual([m1.id, m2.id]);
  });

  it('`?since=` on the URL also works with first-frame auth (SPEC: URL or auth frame)', async () => {
    const u = await srv.user();
    const other = await srv.user();
    const first = await connect(srv.wsUrl, u.token);
    const start = first.lastCursor();
    first.close();
    const m = await srv.api.send(other, { receiverId: u.id });

    const s = new TestSocket(`${srv.wsUrl}?since=${start}`);
    await s.opened;
    s.send({ type: 'auth', token: u.token });
    const ev = await s.next((f) => f.type === 'message.new');
    expect(ev.data.id).toBe(m.id);
    expect(s.frames[0]).toMatchObject({ type: 'ready', data: { cursor: start } });
  });

  it('`since` in the URL and a different `since` in the auth frame close with 4400', async () => {
    const u = await srv.user();
    const s = new TestSocket(`${srv.wsUrl}?since=0`);
    await s.opened;
    s.send({ type: 'auth', token: u.token, since: '1' });
    expect(await s.waitClose()).toBe(4400);
    expect(s.frames).toEqual([]);
  });

  it('a malformed `since` in the auth frame closes with 4400 (a bad cursor, not a bad credential)', async () => {
    const u = await srv.user();
    const s = new TestSocket(srv.wsUrl);
    await s.opened;
    s.send({ type: 'auth', token: u.token, since: 'abc' });
    expect(await s.waitClose()).toBe(4400);
    expect(s.frames).toEqual([]);
  });
});
