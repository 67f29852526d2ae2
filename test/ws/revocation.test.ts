import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Session } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, connectByFrame, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';

describeEachDialect('ws session revocation', (dialect) => {
  let srv: WsServer;

  beforeAll(async () => {
    srv = await wsServer({ dialect });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  /** A second login of the same user: another token family. */
  const secondSession = (u: Session) => srv.api.login(u);

  it("logout closes that session's sockets with 4401; another session of the same user stays open", async () => {
    const first = await srv.user();
    const second = await secondSession(first);
    const byHeader = await connect(srv.wsUrl, first.token);
    const byFrame = await connectByFrame(srv.wsUrl, first.token);
    const other = await connect(srv.wsUrl, second.token);

    expect((await srv.api.post('/auth/logout', { refreshToken: first.refreshToken })).status).toBe(204);
    expect(await byHeader.waitClose()).toBe(4401);
    expect(await byFrame.waitClose()).toBe(4401);

    await other.sync();
    expect(other.closeCode).toBeNull();
    // The ended session cannot come back; the other one still receives events.
    const again = new TestSocket(srv.wsUrl, { token: first.token });
    expect((await again.refused()).status).toBe(401);
    const sender = await srv.user();
    await srv.api.send(sender, { receiverId: first.id });
    await other.next((f) => f.type === 'message.new');
  });

  it("refresh-token reuse closes every socket of that token family, old and new tokens alike", async () => {
    const first = await srv.user();
    const second = await secondSession(first);
    const withOld = await connect(srv.wsUrl, second.token);
    const rotated = await srv.api.post('/auth/refresh-token', { refreshToken: second.refreshToken });
    expect(rotated.status).toBe(200);
    const withNew = await connect(srv.wsUrl, rotated.body.accessToken);
    const untouched = await connect(srv.wsUrl, first.token);

    // The rotated-away token presented again: reuse, the family is revoked.
    expect((await srv.api.post('/auth/refresh-token', { refreshToken: second.refreshToken })).status).toBe(401);
    expect(await withOld.waitClose()).toBe(4401);
    expect(await withNew.waitClose()).toBe(4401);
    await untouched.sync();
    expect(untouched.closeCode).toBeNull();
  });

  it('a live socket that sends an invalid auth frame is closed with 4401', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    s.send({ type: 'auth', token: 'not-a-token' });
    expect(await s.waitClose()).toBe(4401);
  });

  it("a live socket may present a fresh token of the same user, but not another user's", async () => {
    const u = await srv.user();
    const v = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    const refreshed = await srv.api.post('/auth/refresh-token', { refreshToken: u.refreshToken });
    s.send({ type: 'auth', token: refreshed.body.accessToken });
    await s.sync();
    expect(s.closeCode).toBeNull();
    expect(s.ofType('ready')).toHaveLength(1);

    s.send({ type: 'auth', token: v.token });
    expect(await s.waitClose()).toBe(4401);
  });
});
