import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Message } from '@safechat/protocol';
import type { Session } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, connectByFrame, type Frame, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';

/** What a client needs to recognise an event: its type and the message it is about. */
const key = (f: Frame) => (f.type === 'message.new' ? `message.new:${f.data.id}:` : `${f.type}:${f.data.messageId}:${f.data.status}`);

describeEachDialect('ws resume', (dialect) => {
  let srv: WsServer;

  beforeAll(async () => {
    srv = await wsServer({ dialect });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  /**
   * B has a socket and has processed one event; B's socket drops; while B is away A sends `n`
   * messages to B and reads the two B sent earlier (status events for B). Returns what a live
   * observer would have seen, in order.
   */
  async function offlineScenario(n: number) {
    const { a, b, chat } = await srv.pair();
    const watcher = await connect(srv.wsUrl, b.token);
    await srv.api.send(a, { chatId: chat.id });
    const mine = [await srv.api.send(b, { chatId: chat.id }), await srv.api.send(b, { chatId: chat.id })];
    await watcher.count('message.new', 1);
    const processed = watcher.lastCursor();
    watcher.close();

    const missed: Message[] = [];
    for (let i = 0; i < n; i++) {
      missed.push(await srv.api.send(a, { chatId: chat.id }));
      if (i === 1) await srv.api.put(`/messages/${mine[0]!.id}/status`, { status: 'delivered' }, a.token);
      if (i === 3) await srv.api.put(`/messages/${mine[1]!.id}/status`, { status: 'read' }, a.token);
    }
    // The log as an always-connected second socket of B saw it.
    const expected = [...missed.slice(0, 2).map((m) => `message.new:${m.id}:`), `message.status:${mine[0]!.id}:delivered`];
    expected.push(...missed.slice(2, 4).map((m) => `message.new:${m.id}:`), `message.status:${mine[1]!.id}:read`);
    expected.push(...missed.slice(4).map((m) => `message.new:${m.id}:`));
    return { a, b, chat, processed, expected };
  }

  async function drained(s: TestSocket, n: number): Promise<Frame[]> {
    await waitEvents(s, n);
    await s.sync();
    return s.events();
  }

  async function waitEvents(s: TestSocket, n: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (s.events().length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} events, got ${s.events().length}`);
      await s.next(() => true, deadline - Date.now(), s.frames.length).catch(() => undefined);
    }
  }

  it('reconnecting with the last processed cursor replays every missed event once, in order, then continues live', async () => {
    const { a, b, chat, processed, expected } = await offlineScenario(8);
    const s = await connect(srv.wsUrl, b.token, processed);
    expect(s.frames[0]).toEqual({ type: 'ready', data: { userId: b.id, cursor: processed } });

    const replayed = await drained(s, expected.length);
    expect(replayed.map(key)).toEqual(expected);
    const cursors = replayed.map((f) => Number(f.cursor));
    expect(cursors).toEqual([...cursors].sort((x, y) => x - y));
    expect(new Set(cursors).size).toBe(cursors.length);
    expect(Number(cursors[0])).toBeGreaterThan(Number(processed));

    const live = await srv.api.send(a, { chatId: chat.id });
    const next = await s.next((f) => f.type === 'message.new' && f.data.id === live.id);
    expect(Number(next.cursor)).toBeGreaterThan(cursors.at(-1)!);
    await s.sync();
    expect(s.events()).toHaveLength(expected.length + 1);
  });

  it('reconnecting with a cursor in the middle replays only what follows it', async () => {
    const { b, processed, expected } = await offlineScenario(6);
    const full = await connect(srv.wsUrl, b.token, processed);
    const all = await drained(full, expected.length);
    full.close();

    const middle = all[3]!.cursor!;
    const s = await connect(srv.wsUrl, b.token, middle);
    const rest = await drained(s, expected.length - 4);
    expect(rest.map(key)).toEqual(expected.slice(4));
    expect(rest.map((f) => f.cursor)).toEqual(all.slice(4).map((f) => f.cursor));
  });

  it('resume with `since` in the auth frame', async () => {
    const { b, processed, expected } = await offlineScenario(5);
    const s = await connectByFrame(srv.wsUrl, b.token, processed);
    expect(s.frames[0]!.data.cursor).toBe(processed);
    expect((await drained(s, expected.length)).map(key)).toEqual(expected);
  });

  it('since = the current head replays nothing, and live events follow', async () => {
    const { a, b, chat, processed, expected } = await offlineScenario(3);
    const head = (await connect(srv.wsUrl, b.token)).frames[0]!.data.cursor as string;
    expect(head).not.toBe(processed);
    closeAllSockets();

    const s = await connect(srv.wsUrl, b.token, head);
    expect(s.frames[0]!.data.cursor).toBe(head);
    await s.sync();
    expect(s.events()).toEqual([]);
    const live = await srv.api.send(a, { chatId: chat.id });
    expect((await s.next((f) => f.type === 'message.new')).data.id).toBe(live.id);
    expect(expected.length).toBeGreaterThan(0);
  });

  it('a cursor from the future gets `ready` at the head and a `resync` with reason cursor_unknown', async () => {
    const { a, b, chat } = await srv.pair();
    await srv.api.send(a, { chatId: chat.id });
    const head = (await connect(srv.wsUrl, b.token)).frames[0]!.data.cursor as string;
    closeAllSockets();

    const s = await connect(srv.wsUrl, b.token, String(Number(head) + 1000));
    const resync = await s.next((f) => f.type === 'resync');
    expect(s.frames[0]).toEqual({ type: 'ready', data: { userId: b.id, cursor: head } });
    expect(resync).toEqual({ type: 'resync', cursor: head, data: { reason: 'cursor_unknown' } });
    await s.sync();
    expect(s.events()).toEqual([]);
    // The socket is usable: live events continue from the head.
    const live = await srv.api.send(a, { chatId: chat.id });
    expect((await s.next((f) => f.type === 'message.new')).data.id).toBe(live.id);
  });

  it("another user's cursor is no key to anything: a user only ever reads their own log", async () => {
    const { a, b, chat } = await srv.pair();
    const c: Session = await srv.user();
    for (let i = 0; i < 3; i++) await srv.api.send(a, { chatId: chat.id });
    const s = await connect(srv.wsUrl, c.token, '0');
    await s.sync();
    expect(s.events()).toEqual([]);
    const sb = await connect(srv.wsUrl, b.token, '0');
    expect(await drained(sb, 3)).toHaveLength(3);
  });

  it('events committed while the client reconnects are delivered exactly once, in order', async () => {
    const { a, b, chat, processed, expected } = await offlineScenario(4);
    // Keep sending, in pairs, from before the upgrade until after `ready`: some commits land
    // while the server reads the head and replays.
    const s = new TestSocket(`${srv.wsUrl}?since=${processed}`, { token: b.token });
    const sent: Message[] = [];
    let afterReady = 0;
    while (afterReady < 3) {
      if (s.ofType('ready').length > 0) afterReady++;
      sent.push(...(await Promise.all([srv.api.send(a, { chatId: chat.id }), srv.api.send(a, { chatId: chat.id })])));
    }
    // Concurrent sends commit in some order; the chat's seq records it.
    sent.sort((x, y) => x.seq - y.seq);
    const got = await drained(s, expected.length + sent.length);
    expect(got.map(key)).toEqual([...expected, ...sent.map((m) => `message.new:${m.id}:`)]);
  });
});
