import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, sleep, wsServer, type WsServer } from '../_helpers/ws.js';

describeEachDialect('ws resume across a deleted account', (dialect) => {
  let srv: WsServer;
  beforeAll(async () => {
    srv = await wsServer({ dialect });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  it('skips the messages of a sender whose account is gone, and live delivery carries on after the gap', async () => {
    const [a, b, c] = await Promise.all([srv.user(), srv.user(), srv.user()]);
    const [ab, cb] = await Promise.all([srv.api.chat(a, b), srv.api.chat(c, b)]);
    const first = await connect(srv.wsUrl, b.token);
    const cursor = first.frames[0]!.data.cursor as string;
    first.close();

    const fromA = await srv.api.send(a, { chatId: ab.id });
    const fromC = await srv.api.send(c, { chatId: cb.id });
    // The last entry of B's log is A's: deleting A leaves a gap at the end of B's log.
    const lastFromA = await srv.api.send(a, { chatId: ab.id });
    expect((await srv.api.request('DELETE', '/users/me', { token: a.token, body: { password: a.password } })).status).toBe(204);

    const back = await connect(srv.wsUrl, b.token, cursor);
    const replayed = await back.next((f) => f.type === 'message.new');
    expect(replayed.data.id).toBe(fromC.id);
    await sleep(200);
    const ids = back.frames.filter((f) => f.type === 'message.new').map((f) => f.data.id);
    expect(ids).toEqual([fromC.id]);
    expect(ids).not.toContain(fromA.id);
    expect(ids).not.toContain(lastFromA.id);

    // The next live event comes after the gap: it is delivered, once, with a later cursor.
    const live = await srv.api.send(c, { chatId: cb.id });
    const got = await back.next((f) => f.type === 'message.new' && f.data.id === live.id);
    expect(Number(got.cursor)).toBeGreaterThan(Number(replayed.cursor) + 1);
    expect(back.frames.filter((f) => f.type === 'message.new').map((f) => f.data.id)).toEqual([fromC.id, live.id]);
  });
});
