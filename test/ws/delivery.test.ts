import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { envelope, type Session } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, type Frame, wsServer, type WsServer } from '../_helpers/ws.js';

/** Cursors are opaque to clients; this server's are decimal, so the test can check their order. */
function expectIncreasingCursors(events: Frame[]): void {
  const cursors = events.map((e) => Number(e.cursor));
  for (let i = 1; i < cursors.length; i++) expect(cursors[i]).toBeGreaterThan(cursors[i - 1]!);
}

describeEachDialect('ws live delivery', (dialect) => {
  let srv: WsServer;

  beforeAll(async () => {
    srv = await wsServer({ dialect });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  it('`message.new` reaches the receiver, with the per-chat seq and a cursor, and not the sender', async () => {
    const { a, b, chat } = await srv.pair();
    const sa = await connect(srv.wsUrl, a.token);
    const sb = await connect(srv.wsUrl, b.token);
    const m1 = await srv.api.send(a, { chatId: chat.id });
    const m2 = await srv.api.send(b, { chatId: chat.id });
    const m3 = await srv.api.send(a, { receiverId: b.id });

    const [n1, n3] = await sb.count('message.new', 2);
    expect(n1).toEqual({ type: 'message.new', cursor: expect.stringMatching(/^\S+$/), data: m1 });
    expect(n3!.data).toEqual(m3);
    expect([m1.seq, m2.seq, m3.seq]).toEqual([1, 2, 3]);
    const na = await sa.next((f) => f.type === 'message.new');
    expect(na.data).toEqual(m2);

    await Promise.all([sa.sync(), sb.sync()]);
    expect(sb.ofType('message.new').map((f) => f.data.id)).toEqual([m1.id, m3.id]);
    expect(sa.ofType('message.new').map((f) => f.data.id)).toEqual([m2.id]);
    expectIncreasingCursors(sb.events());
  });

  it('every socket of the receiver gets the event', async () => {
    const { a, b, chat } = await srv.pair();
    const login = await srv.api.post('/auth/login', { username: b.username, password: b.password });
    const phone = await connect(srv.wsUrl, b.token);
    const laptop = await connect(srv.wsUrl, login.body.accessToken);
    const m = await srv.api.send(a, { chatId: chat.id });
    expect((await phone.next((f) => f.type === 'message.new')).data.id).toBe(m.id);
    expect((await laptop.next((f) => f.type === 'message.new')).data.id).toBe(m.id);
  });

  it('`message.status` reaches the sender after the receiver sets delivered, then read', async () => {
    const { a, b, chat } = await srv.pair();
    const sa = await connect(srv.wsUrl, a.token);
    const sb = await connect(srv.wsUrl, b.token);
    const m = await srv.api.send(a, { chatId: chat.id });

    const delivered = await srv.api.put(`/messages/${m.id}/status`, { status: 'delivered' }, b.token);
    expect(delivered.status).toBe(200);
    const e1 = await sa.next((f) => f.type === 'message.status');
    expect(e1).toEqual({
      type: 'message.status',
      cursor: expect.any(String),
      data: { messageId: m.id, chatId: chat.id, status: 'delivered', updatedAt: delivered.body.deliveredAt },
    });

    const read = await srv.api.put(`/messages/${m.id}/status`, { status: 'read' }, b.token);
    const [, e2] = await sa.count('message.status', 2);
    expect(e2!.data).toEqual({ messageId: m.id, chatId: chat.id, status: 'read', updatedAt: read.body.readAt });
    expectIncreasingCursors(sa.events());

    // Repeating a status changes nothing and tells nobody; the receiver never gets status events.
    expect((await srv.api.put(`/messages/${m.id}/status`, { status: 'read' }, b.token)).status).toBe(200);
    await Promise.all([sa.sync(), sb.sync()]);
    expect(sa.ofType('message.status')).toHaveLength(2);
    expect(sb.ofType('message.status')).toEqual([]);
  });

  it('a third user connected the whole time gets no event of the chat', async () => {
    const { a, b, chat } = await srv.pair();
    const c = await srv.user();
    const sc = await connect(srv.wsUrl, c.token);
    const sb = await connect(srv.wsUrl, b.token);
    const sa = await connect(srv.wsUrl, a.token);
    const m = await srv.api.send(a, { chatId: chat.id });
    const viaSocket = await sb.request('r1', { chatId: chat.id, ...envelope() });
    await srv.api.put(`/messages/${m.id}/status`, { status: 'read' }, b.token);
    await sa.count('message.status', 1);
    await sa.next((f) => f.type === 'message.new' && f.data.id === viaSocket.data.id);
    // C trying to write into the chat is refused and still sees nothing of it.
    expect((await sc.request('r2', { chatId: chat.id, ...envelope() })).type).toBe('error');
    await sc.sync();
    expect(sc.frames.map((f) => f.type)).toEqual(['ready', 'error', 'pong']);
  });

  it('50 concurrent sends from two senders reach the receiver in cursor order, each chat in seq order', async () => {
    const { a, b, chat } = await srv.pair();
    const c: Session = await srv.user();
    const chat2 = await srv.api.chat(c, b);
    const sb = await connect(srv.wsUrl, b.token);
    const sc = await connect(srv.wsUrl, c.token);

    const viaRest = Array.from({ length: 50 }, () => srv.api.send(a, { chatId: chat.id }));
    const viaSocket = Array.from({ length: 50 }, (_, i) => sc.request(`c-${i}`, { chatId: chat2.id, ...envelope() }));
    const [restSent, socketSent] = await Promise.all([Promise.all(viaRest), Promise.all(viaSocket)]);
    expect(socketSent.every((f) => f.type === 'message.sent')).toBe(true);

    const events = await sb.count('message.new', 100, 15_000);
    await sb.sync();
    expect(sb.ofType('message.new')).toHaveLength(100);
    expectIncreasingCursors(events);

    const seqs = (chatId: string) => events.filter((e) => e.data.chatId === chatId).map((e) => e.data.seq as number);
    const oneToFifty = Array.from({ length: 50 }, (_, i) => i + 1);
    expect(seqs(chat.id)).toEqual(oneToFifty);
    expect(seqs(chat2.id)).toEqual(oneToFifty);
    expect(new Set(events.map((e) => e.data.id))).toEqual(new Set([...restSent.map((m) => m.id), ...socketSent.map((f) => f.data.id)]));
  });
});
