import type { Message } from '@safechat/protocol';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { envelope } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, TestSocket, waitUntil, wsServer, type WsServer } from '../_helpers/ws.js';
import { SOCKET_LIMITS } from '../../src/ws/connection.js';

/** 120 events of a 64 KiB ciphertext each: ~10.5 MB of frames (base64 and envelope included). */
const EVENTS = 120;
const CIPHERTEXT_BYTES = 64 * 1024;
const FRAME_BYTES = Math.ceil((CIPHERTEXT_BYTES * 4) / 3) + 1024;
/** What the server may hold for one socket: the high-water mark plus the frame that crossed it. */
const BUFFER_BOUND = SOCKET_LIMITS.highWaterBytes + FRAME_BYTES;

/**
 * A client that stops reading (its socket paused, as a frozen app or a dead radio would) must
 * cost the server a bounded amount of memory, be dropped with 1013 within seconds, and lose
 * nothing: reconnecting with its last cursor replays the rest exactly once.
 */
describeEachDialect('ws slow consumer', (dialect) => {
  let srv: WsServer;

  beforeAll(async () => {
    srv = await wsServer({ dialect });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  async function produce(from: Parameters<WsServer['api']['send']>[0], chatId: string): Promise<Message[]> {
    const sent: Message[] = [];
    for (let i = 0; i < EVENTS; i += 10) {
      const batch = await Promise.all(Array.from({ length: 10 }, () => srv.api.send(from, { chatId, ...envelope(CIPHERTEXT_BYTES) })));
      sent.push(...batch);
    }
    return sent.sort((x, y) => x.seq - y.seq);
  }

  /** Samples the server's outbound buffer for `userId` until stopped; returns the peak. */
  function sampleBuffer(userId: string): () => number {
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, srv.ctx.hub.bufferedBytes(userId))), 2);
    return () => {
      clearInterval(timer);
      return peak;
    };
  }

  /** Waits for the server to drop the user's socket, resumes reading, and returns the close code the client sees. */
  async function droppedWith(s: TestSocket, userId: string): Promise<{ code: number; afterMs: number }> {
    const t0 = Date.now();
    await waitUntil(() => srv.ctx.hub.connectionCount(userId) > 0 || s.closeCode !== null, 5000, 'the socket to be attached');
    await waitUntil(() => srv.ctx.hub.connectionCount(userId) === 0, SOCKET_LIMITS.slowConsumerMs + 5000, 'the server to drop the stalled socket');
    const afterMs = Date.now() - t0;
    s.ws.resume();
    return { code: await s.waitClose(), afterMs };
  }

  async function resumeRest(token: string, s: TestSocket, sent: Message[]): Promise<void> {
    const before = s.ofType('message.new');
    expect(before.length).toBeLessThan(EVENTS);
    const again = await connect(srv.wsUrl, token, s.lastCursor());
    await again.count('message.new', EVENTS - before.length, 15_000);
    await again.sync();
    const ids = [...before, ...again.ofType('message.new')].map((f) => f.data.id);
    expect(ids).toEqual(sent.map((m) => m.id));
  }

  it('live: a stalled reader is closed with 1013 and the server holds at most ~1 MiB for it', { timeout: 30_000 }, async () => {
    const { a, b, chat } = await srv.pair();
    const sb = await connect(srv.wsUrl, b.token);
    sb.ws.pause();
    const peak = sampleBuffer(b.id);
    const dropped = droppedWith(sb, b.id);
    const sent = await produce(a, chat.id);
    const { code, afterMs } = await dropped;

    expect(code).toBe(1013);
    expect(peak()).toBeLessThanOrEqual(BUFFER_BOUND);
    expect(afterMs).toBeLessThan(SOCKET_LIMITS.slowConsumerMs + 4000);
    await resumeRest(b.token, sb, sent);
  });

  it('replay: a reader that stalls while its backlog is replayed is bounded and closed the same way', { timeout: 30_000 }, async () => {
    const { a, b, chat } = await srv.pair();
    const first = await connect(srv.wsUrl, b.token);
    const since = first.lastCursor();
    first.close();
    const sent = await produce(a, chat.id);

    const peak = sampleBuffer(b.id);
    const sb = new TestSocket(`${srv.wsUrl}?since=${since}`, { token: b.token });
    sb.ws.once('open', () => sb.ws.pause());
    const { code } = await droppedWith(sb, b.id);

    expect(code).toBe(1013);
    expect(peak()).toBeLessThanOrEqual(BUFFER_BOUND);
    await resumeRest(b.token, sb, sent);
  });
});
