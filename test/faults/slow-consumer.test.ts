import { describe, expect, it } from 'vitest';
import { SOCKET_LIMITS } from '../../src/ws/connection.js';
import {
  exactlyOnceViolations,
  Ledger,
  Load,
  now,
  pairUp,
  Peer,
  registerMany,
  reportFigures,
  RssSampler,
  ServerProcess,
  sleep,
  useFaultHooks,
  waitDelivered,
  waitFor,
  type Receipt,
} from './_harness.js';

/**
 * G5 loud overflow (WS-07, T-LOAD-03), with G4 for the catch-up.
 *
 * bob authenticates and then stops reading (`ws._socket.pause()`: the kernel buffers fill, then the
 * server's outbound queue). alice sends him ~20 MB: 5,000 messages of 4 KiB ciphertext over REST,
 * 16 in flight. Meanwhile dave sends carol 20 msg/s on a normal socket. Pass:
 * - the server closes bob's socket with 1013 a few seconds after his backlog crosses the
 *   high-water mark (SOCKET_LIMITS: 1 MiB, patience 5 s);
 * - the server's RSS (VmRSS, sampled every second) grows by less than 128 MiB;
 * - carol keeps receiving live on her one socket, every message, in order;
 * - bob, reconnecting with his last cursor, receives every message exactly once, in order.
 */
useFaultHooks();

const MESSAGES = 5000;
const BYTES = 4096;
const RSS_BUDGET_MIB = 128;

describe('slow consumer', () => {
  it('a reader that stops reading is closed with 1013, memory stays bounded, others are unaffected, nothing is lost', async () => {
    const srv = await ServerProcess.start({ name: 'slow-consumer' });
    const ledger = new Ledger();
    const sessions = await registerMany(srv, 4);
    const [alice, bob, dave, carol] = sessions.map((s) => new Peer(s, srv, ledger)) as [Peer, Peer, Peer, Peer];
    await pairUp(srv, [alice, bob, dave, carol]);
    await Promise.all([alice, bob, dave, carol].map((p) => p.connect()));

    // carol's baseline: dave → carol alone for 2 s
    const background = new Load(ledger, { senders: [dave], via: () => 'rest', rate: 20, retry: true });
    await sleep(2000);
    const carolLatency = (from: number, to: number) => {
      const events = ledger.streams.get(carol.id)!.flatMap((s) => s.events);
      return ledger
        .ackedRecords()
        .filter((r) => r.receiverId === carol.id && r.firstTry >= from && r.firstTry < to)
        .map((r) => (events.find((e) => e.id === r.ack!.id)?.at ?? Infinity) - r.firstTry);
    };
    const p99 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.max(0, Math.ceil(xs.length * 0.99) - 1)] ?? 0;
    const baselineCarol = carolLatency(0, now());

    const bobSocket = bob.socket!;
    bobSocket.pauseReading();
    const closed1013Before = await srv.metric('safechat_ws_closed_total', { code: '1013' });
    const rss = new RssSampler(srv, 1000);
    const tBurst = now();
    const burst = new Load(ledger, { senders: [alice], via: () => 'rest', concurrency: 16, bytes: BYTES, limit: MESSAGES, retry: true });

    // Watch for the server closing bob (its close counter); resume reading at once so the close
    // frame behind the buffered events reaches him before the server cuts the TCP connection.
    let tClose = 0;
    await waitFor(
      async () => {
        srv.assertAlive();
        if ((await srv.metric('safechat_ws_closed_total', { code: '1013' })) > closed1013Before) return (tClose = now());
        return 0;
      },
      120_000,
      'the server to close the stalled socket with 1013',
      100,
    );
    bobSocket.resumeReading();
    await waitFor(() => bobSocket.closeCode !== null, 10_000, "bob's client to see the close");
    await waitFor(() => ledger.ackedRecords().filter((r) => r.senderId === alice.id).length >= MESSAGES, 120_000, "alice's burst to be acknowledged", 100);
    const tBurstEnd = now();
    await burst.settle(30_000);
    await burst.stop();
    await sleep(1000);
    background.drain();
    await background.settle(10_000);
    await background.stop();
    const deliverMs = await waitDelivered(ledger, 60_000);
    const mem = rss.stop();

    // When did bob's backlog cross the cap? The server stops writing to a socket over the mark, so
    // the frames bob read in his first lifetime are what it wrote: the cap was crossed when the
    // last of them was written, i.e. when that message was committed (live events go out at commit).
    const bobStreams = ledger.streams.get(bob.id)!;
    const firstLife: Receipt[] = bobStreams[0]!.events;
    const toBob = ledger
      .ackedRecords()
      .filter((r) => r.receiverId === bob.id)
      .sort((x, y) => x.ack!.seq - y.ack!.seq);
    const lastWritten = toBob[firstLife.length - 1];
    const tCross = lastWritten ? lastWritten.ack!.at : tBurst;
    const acc = ledger.check();
    const carolStreams = ledger.streams.get(carol.id)!;
    const duringCarol = carolLatency(tBurst, tBurstEnd);

    reportFigures('slow-consumer', {
      messages: MESSAGES,
      ciphertextBytes: BYTES,
      megabytesToBob: Math.round((toBob.length * bobSocket.bytesReceived) / Math.max(1, firstLife.length) / 1e5) / 10,
      burstSeconds: Math.round((tBurstEnd - tBurst) / 100) / 10,
      highWaterBytes: SOCKET_LIMITS.highWaterBytes,
      slowConsumerMs: SOCKET_LIMITS.slowConsumerMs,
      bobCloseCode: bobSocket.closeCode,
      bobFramesBeforeClose: firstLife.length,
      bobBytesBeforeClose: bobSocket.bytesReceived,
      closedAfterBurstStartMs: Math.round(tClose - tBurst),
      closedAfterCapCrossedMs: Math.round(tClose - tCross),
      rssMiB: mem,
      carolSockets: carolStreams.length,
      carolLatencyBaselineP99Ms: Math.round(p99(baselineCarol)),
      carolLatencyDuringBurstP99Ms: Math.round(p99(duringCarol)),
      carolMessagesDuringBurst: duringCarol.length,
      bobSockets: bobStreams.length,
      bobCatchUpAfterCloseMs: Math.round(deliverMs),
      sent: acc.attempted,
      acked: acc.acked,
      lost: acc.lost,
      duplicates: acc.dupWithinSocket + acc.dupAcrossResume,
      outOfOrder: acc.outOfOrder,
      serverLogProblems: srv.logProblems().length,
    });

    expect(bobSocket.closeCode).toBe(1013);
    expect(tClose - tCross).toBeLessThanOrEqual(SOCKET_LIMITS.slowConsumerMs + 3000);
    expect(mem.growthMiB).toBeLessThan(RSS_BUDGET_MIB);
    // carol: one socket throughout, everything live
    expect(carolStreams.length).toBe(1);
    expect(duringCarol.length).toBeGreaterThan(0);
    expect(Math.max(...duringCarol)).toBeLessThan(5000);
    // bob: resumed with his cursor and got the rest, each message once, in order
    expect(bobStreams.length).toBeGreaterThanOrEqual(2);
    expect(exactlyOnceViolations(acc)).toEqual({ lost: 0, dupWithinSocket: 0, dupAcrossResume: 0, outOfOrder: 0, cursorRegressions: 0, ackMismatch: 0, resyncs: 0 });
    expect(acc.neverAcked).toBe(0);
    expect(acc.unexpected).toBe(0);
    const bobIds = bobStreams.flatMap((s) => s.events).map((e) => e.id);
    expect(bobIds).toEqual(toBob.map((r) => r.ack!.id));
    expect(srv.logProblems()).toEqual([]);
  });
});
