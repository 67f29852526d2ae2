import { describe, expect, it } from 'vitest';
import { createChat, envelope, LiveSocket, register, reportFigures, ServerProcess, sleep, useFaultHooks, waitFor, type Frame } from './_harness.js';

/**
 * T-CATCH-02 (SECURITY.md §4c, shortened from 60 s to 20 s): bob's connection flaps — his client
 * drops the socket every 1–3 s, whatever is in flight, and reconnects at once with the last
 * cursor it processed — while alice sends him 5 messages a second. Every message must reach him
 * exactly once overall, and each resumed stream must continue exactly where the last one stopped:
 * cursors and chat `seq` both advance by one, with nothing repeated and nothing skipped.
 */
useFaultHooks();

const SEND_SECONDS = 20;
const RATE = 5;

describe('a flapping connection (T-CATCH-02)', () => {
  it('dropped every 1–3 s while messages arrive: every message once, each stream resuming exactly at its cursor', async () => {
    const srv = await ServerProcess.start({ name: 'flapping' });
    const [alice, bob] = [await register(srv), await register(srv)];
    const chatId = await createChat(srv, alice, bob);

    const streams: { since: number; events: Frame[] }[] = [];
    // bob's cursor before anything is sent: every message is then after it.
    const first = new LiveSocket(srv.wsUrl, bob.token, undefined, { onEvent: () => undefined });
    let cursor: number = await first.ready;
    first.terminate();
    let flapping = true;
    const bobLoop = (async () => {
      while (flapping) {
        const stream = { since: cursor, events: [] as Frame[] };
        const s = new LiveSocket(srv.wsUrl, bob.token, cursor, {
          onEvent: (f) => {
            stream.events.push(f);
            cursor = Number(f.cursor);
          },
        });
        await s.ready;
        streams.push(stream);
        await sleep(1000 + Math.random() * 2000);
        s.terminate();
      }
      // Settle: one last stream that stays until everything has arrived.
      const last = { since: cursor, events: [] as Frame[] };
      streams.push(last);
      const s = new LiveSocket(srv.wsUrl, bob.token, cursor, {
        onEvent: (f) => {
          last.events.push(f);
          cursor = Number(f.cursor);
        },
      });
      await s.ready;
      return s;
    })();

    // Its failure (a socket that never became ready) is reported where it is awaited, below.
    bobLoop.catch(() => undefined);
    const sent: string[] = [];
    const t0 = Date.now();
    for (let i = 0; Date.now() - t0 < SEND_SECONDS * 1000; i++) {
      const r = await srv.post('/messages', { chatId, ...envelope(64), clientMessageId: `flap-${i}` }, alice.token);
      expect(r.status).toBe(201);
      sent.push(r.body.id as string);
      await sleep(1000 / RATE);
    }
    flapping = false;
    const final = await bobLoop;
    const received = () => streams.flatMap((s) => s.events).filter((f) => f.type === 'message.new');
    await waitFor(() => received().length >= sent.length, 10_000, 'bob to have every message');
    await sleep(300);
    final.terminate();

    const ids = received().map((f) => f.data.id as string);
    // Every message exactly once, in the order sent.
    expect(ids).toEqual(sent);
    // Each stream continues at its cursor: +1 every step, across the reconnects too.
    const cursors = received().map((f) => Number(f.cursor));
    const seqs = received().map((f) => f.data.seq as number);
    for (let i = 1; i < cursors.length; i++) {
      expect(cursors[i], `cursor after ${cursors[i - 1]}`).toBe(cursors[i - 1]! + 1);
      expect(seqs[i], `seq after ${seqs[i - 1]}`).toBe(seqs[i - 1]! + 1);
    }
    for (const s of streams.filter((x) => x.events.length > 0)) expect(Number(s.events[0]!.cursor)).toBe(s.since + 1);
    expect(streams.length).toBeGreaterThanOrEqual(8);
    reportFigures('T-CATCH-02', { seconds: SEND_SECONDS, sent: sent.length, received: ids.length, streams: streams.length, emptyStreams: streams.filter((s) => s.events.length === 0).length });
  });
});
