import { describe, expect, it } from 'vitest';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  checkHistory,
  exactlyOnceViolations,
  Ledger,
  Load,
  pairUp,
  Peer,
  registerMany,
  reportFigures,
  RssSampler,
  ServerProcess,
  sleep,
  useFaultHooks,
  waitDelivered,
  type Session,
} from './_harness.js';

/**
 * G3 and G4 under sustained load (T-LOAD-01): 100 clients in 50 one-to-one pairs, each sending its
 * partner ~2 msg/s for SOAK_SECONDS (default 30) — half over REST, half with `message.send` — and
 * receiving live on its socket. Pass: lost = duplicated = out-of-order = 0, no 5xx; p99 send →
 * receive latency and the server's RSS are reported (and held to loose bounds: 1 s, 400 MiB).
 */
useFaultHooks();

const CLIENTS = 100;
const RATE = 2;
const SECONDS = Number(process.env.SOAK_SECONDS ?? 30);

describe('soak', () => {
  it(`${CLIENTS} clients × ${SECONDS} s at ${RATE} msg/s each: every message exactly once, in order, no 5xx`, { timeout: (SECONDS + 120) * 1000 }, async () => {
    const srv = await ServerProcess.start({ name: 'soak' });
    const ledger = new Ledger();
    const sessions = await registerMany(srv, CLIENTS);
    const byId = new Map<string, Session>(sessions.map((s) => [s.id, s]));
    const peers = sessions.map((s) => new Peer(s, srv, ledger));
    await pairUp(srv, peers);
    await Promise.all(peers.map((p) => p.connect()));
    const restSenders = new Set(peers.filter((_, i) => i % 2 === 0));

    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const rss = new RssSampler(srv, 1000);
    const load = new Load(ledger, { senders: peers, via: (p) => (restSenders.has(p) ? 'rest' : 'ws'), rate: RATE, concurrency: 2 });
    await sleep(SECONDS * 1000);
    load.drain();
    await load.stop();
    const deliverMs = await waitDelivered(ledger, 20_000);
    const mem = rss.stop();
    lag.disable();
    const acc = ledger.check();
    const stats = ledger.attemptStats();
    const hist = await checkHistory(srv, ledger, byId);
    const metrics = {
      http5xx: ledger.attempts.filter((a) => a.status !== null && a.status >= 500).length,
      wsErrors: ledger.attempts.filter((a) => a.via === 'ws' && a.outcome !== 'acked').length,
    };

    reportFigures('soak', {
      clients: CLIENTS,
      seconds: SECONDS,
      ratePerClient: RATE,
      sent: acc.attempted,
      acked: acc.acked,
      throughputPerSec: Math.round(acc.acked / SECONDS),
      lost: acc.lost,
      duplicates: acc.dupWithinSocket + acc.dupAcrossResume,
      outOfOrder: acc.outOfOrder,
      ...metrics,
      sendResponseMs: stats.responseMs,
      sendToReceiveMs: acc.latencyMs,
      rssMiB: mem,
      loadGeneratorLoopLagP99Ms: Math.round(lag.percentile(99) / 1e6),
      receiverSockets: acc.sockets,
      historyMessages: hist.messages,
      deliverAfterLoadMs: Math.round(deliverMs),
      serverLogProblems: srv.logProblems().length,
    });

    expect(srv.running).toBe(true);
    expect(acc.attempted).toBeGreaterThan(CLIENTS * RATE * SECONDS * 0.9);
    expect(stats).toMatchObject({ serverError: 0, unavailable: 0, rejected: 0, noResponse: 0, notSent: 0 });
    expect(metrics).toEqual({ http5xx: 0, wsErrors: 0 });
    expect(acc.neverAcked).toBe(0);
    expect(exactlyOnceViolations(acc)).toEqual({ lost: 0, dupWithinSocket: 0, dupAcrossResume: 0, outOfOrder: 0, cursorRegressions: 0, ackMismatch: 0, resyncs: 0 });
    expect(acc.unexpected).toBe(0);
    expect(acc.sockets).toBe(CLIENTS);
    expect(hist).toMatchObject({ ackedMissing: 0, ackedWrongId: 0, duplicateClientIds: 0, seqNotIncreasing: 0, unknown: 0, storedButUnacked: 0 });
    expect(acc.latencyMs.p99).toBeLessThan(1000);
    expect(mem.maxMiB).toBeLessThan(400);
    expect(srv.logProblems()).toEqual([]);
  });
});
