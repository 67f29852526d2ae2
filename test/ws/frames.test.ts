import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { envelope } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { INBOUND_FRAMES_PER_TURN } from '../../src/ws/connection.js';
import { turnCounter } from '../_helpers/turns.js';
import { closeAllSockets, connect, wsServer, type WsServer } from '../_helpers/ws.js';

const MAX_FRAME_BYTES = 128 * 1024;

describeEachDialect('ws frames', (dialect) => {
  let srv: WsServer;

  beforeAll(async () => {
    srv = await wsServer({ dialect });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  // ---- limits and bad input ----

  it('a frame over 128 KiB closes with 1009', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    s.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(MAX_FRAME_BYTES) }));
    expect(await s.waitClose()).toBe(1009);
  });

  it('a frame just under 128 KiB is read (and answered as invalid, not closed)', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    const prefix = '{"type":"ping","pad":"';
    s.send(prefix + 'x'.repeat(MAX_FRAME_BYTES - prefix.length - 2) + '"}');
    const err = await s.next((f) => f.type === 'error');
    expect(err.error?.code).toBe('validation_error');
    await s.sync();
  });

  it('a binary frame closes with 1003', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    s.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
    expect(await s.waitClose()).toBe(1003);
    expect(s.ofType('pong')).toEqual([]);
  });

  it('a text frame that is not valid UTF-8 closes with 1007', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    s.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    expect(await s.waitClose()).toBe(1007);
  });

  it('invalid JSON, an unknown type or an unknown field get a validation_error frame and the socket stays open', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    const bad = ['{"type":', 'null', '[]', '{"type":"subscribe"}', '{"type":"ping","extra":1}', '{"type":"ping","type":"ping"}', '{"type":"message.send","requestId":"r-7","data":{"extra":true}}'];
    for (const text of bad) {
      const from = s.frames.length;
      s.send(text);
      const err = await s.next((f) => f.type === 'error', 5000, from);
      expect(err.error).toMatchObject({ code: 'validation_error', message: expect.any(String) });
      expect(JSON.stringify(err)).not.toMatch(/at \S+:\d+:\d+|node_modules/);
    }
    // The requestId of a rejected message.send is echoed so the client can match it.
    expect(s.ofType('error').at(-1)!.requestId).toBe('r-7');
    await s.sync();
    expect(s.closeCode).toBeNull();
  });

  it('more than 10 invalid frames close with 1008', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    for (let i = 0; i < 10; i++) s.send('{bad');
    await s.count('error', 10);
    await s.sync();
    s.send('{bad');
    expect(await s.waitClose()).toBe(1008);
    expect(s.ofType('error')).toHaveLength(11);
  });

  it('`{"type":"ping"}` is answered with exactly `{"type":"pong"}`', async () => {
    const u = await srv.user();
    const s = await connect(srv.wsUrl, u.token);
    s.send({ type: 'ping' });
    s.send({ type: 'ping' });
    await s.count('pong', 2);
    expect(s.ofType('pong')).toEqual([{ type: 'pong' }, { type: 'pong' }]);
  });

  // ---- message.send ----

  it('`message.send` answers `message.sent` with the requestId and the stored message; the receiver gets it as `message.new`', async () => {
    const { a, b, chat } = await srv.pair();
    const sa = await connect(srv.wsUrl, a.token);
    const sb = await connect(srv.wsUrl, b.token);
    const body = { chatId: chat.id, ...envelope(100) };
    const sent = await sa.request('req-1', body);
    expect(sent.type).toBe('message.sent');
    expect(sent.requestId).toBe('req-1');
    expect(sent.data).toMatchObject({ senderId: a.id, receiverId: b.id, status: 'sent', seq: 1, ...body });

    const stored = await srv.api.get(`/messages/${chat.id}`, a.token);
    expect(stored.body.messages).toEqual([sent.data]);

    const ev = await sb.next((f) => f.type === 'message.new');
    expect(ev.data).toEqual(sent.data);
    await sa.sync();
    expect(sa.ofType('message.new')).toEqual([]);
  });

  it('`message.send` by receiverId alone finds the one-to-one chat', async () => {
    const { a, b, chat } = await srv.pair();
    const sa = await connect(srv.wsUrl, a.token);
    const sent = await sa.request('r', { receiverId: b.id, ...envelope() });
    expect(sent.data.chatId).toBe(chat.id);
  });

  it('invalid `message.send` data gets an `error` frame with the requestId, and nothing is stored', async () => {
    const { a, b, chat } = await srv.pair();
    const sa = await connect(srv.wsUrl, a.token);
    const cases: [unknown, string][] = [
      [{ chatId: chat.id, ...envelope(), iv: 'AAAA' }, 'validation_error'],
      [{ chatId: chat.id, ...envelope(), type: 'video' }, 'validation_error'],
      [{ ...envelope() }, 'validation_error'],
      [{ chatId: chat.id, ...envelope(64 * 1024 + 1) }, 'payload_too_large'],
      [{ receiverId: a.id, ...envelope() }, 'validation_error'],
    ];
    let i = 0;
    for (const [data, code] of cases) {
      const res = await sa.request(`bad-${++i}`, data);
      expect(res).toMatchObject({ type: 'error', requestId: `bad-${i}`, error: { code, message: expect.any(String) } });
    }
    const outsider = await srv.user();
    const so = await connect(srv.wsUrl, outsider.token);
    const res = await so.request('not-mine', { chatId: chat.id, ...envelope() });
    expect(res).toMatchObject({ type: 'error', requestId: 'not-mine' });
    expect(['not_found', 'forbidden']).toContain(res.error!.code);

    expect((await srv.api.get(`/messages/${chat.id}`, b.token)).body.messages).toEqual([]);
    await sa.sync();
  });

  it('a 64 KiB ciphertext (the largest allowed) fits in one frame', async () => {
    const { a, chat } = await srv.pair();
    const sa = await connect(srv.wsUrl, a.token);
    const res = await sa.request('big', { chatId: chat.id, ...envelope(64 * 1024) });
    expect(res.type).toBe('message.sent');
  });

  it('a repeated clientMessageId returns the original message and the receiver gets one `message.new`', async () => {
    const { a, b, chat } = await srv.pair();
    const sa = await connect(srv.wsUrl, a.token);
    const sb = await connect(srv.wsUrl, b.token);
    const body = { chatId: chat.id, clientMessageId: 'local-42', ...envelope() };
    const first = await sa.request('try-1', body);
    const again = await sa.request('try-2', { ...body, ...envelope() });
    expect(again.type).toBe('message.sent');
    expect(again.requestId).toBe('try-2');
    expect(again.data).toEqual(first.data);
    // The same id over REST is the same message too.
    const viaRest = await srv.api.post('/messages', body, a.token);
    expect(viaRest.status).toBe(200);
    expect(viaRest.body).toEqual(first.data);

    await sb.next((f) => f.type === 'message.new');
    await sb.sync();
    expect(sb.ofType('message.new').map((f) => f.data.id)).toEqual([first.data.id]);
  });

  it('frames that arrive together are handled at most 128 a turn across sockets, each socket’s in order', async () => {
    const b = await srv.user();
    const senders = await Promise.all([0, 1, 2].map(async () => {
      const a = await srv.user();
      const chat = await srv.api.chat(a, b);
      return { chat, s: await connect(srv.wsUrl, a.token) };
    }));
    const pingers = await Promise.all([0, 1].map(async () => connect(srv.wsUrl, (await srv.user()).token)));
    // The turn each frame is handled in (parsed and counted), as the server sees it.
    const turns = turnCounter();
    const handled: number[] = [];
    const counter = srv.ctx.telemetry.wsFramesIn;
    const inc = counter.inc.bind(counter);
    const spy = vi.spyOn(counter, 'inc').mockImplementation((...args: Parameters<typeof inc>) => {
      handled.push(turns.now());
      inc(...args);
    });
    // 3 × 60 sends and 2 × 200 pings, all written in this one turn: ~580 frames reach the server together.
    for (const { chat, s } of senders) for (let i = 0; i < 60; i++) s.send(JSON.stringify({ type: 'message.send', requestId: `r-${i}`, data: { chatId: chat.id, ...envelope(16) } }));
    for (const p of pingers) for (let i = 0; i < 200; i++) p.send('{"type":"ping"}');
    for (const { s } of senders) {
      await s.next(() => s.ofType('message.sent').length === 60, 10_000);
      // Each socket's frames were handled in the order sent: r-i took the chat's number i + 1.
      expect(s.ofType('message.sent').map((f) => [f.requestId, f.data.seq])).toEqual(Array.from({ length: 60 }, (_, i) => [`r-${i}`, i + 1]));
    }
    for (const p of pingers) await p.next(() => p.ofType('pong').length === 200, 10_000);
    turns.stop();
    spy.mockRestore();
    // Handled over several turns, never more than the budget in one (not all in the turn they arrived).
    expect(handled).toHaveLength(580);
    const perTurn = new Map<number, number>();
    for (const t of handled) perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
    expect(perTurn.size).toBeGreaterThanOrEqual(5);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(INBOUND_FRAMES_PER_TURN);
  });
});
