import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkHistory,
  exactlyOnceViolations,
  freshDatabase,
  history,
  inspectDatabase,
  Ledger,
  Load,
  now,
  pairUp,
  Peer,
  registerMany,
  reportFigures,
  sendOnce,
  ServerProcess,
  sleep,
  TEST_DATABASE_URL,
  useFaultHooks,
  waitDelivered,
  type Session,
} from './_harness.js';

/**
 * G1 durable ack, G2 idempotent send, G3 per-chat order, G4 exactly once by cursor (T-DUR-01/02/04).
 *
 * 20 users in 10 one-to-one chats; each sends to its partner (half over REST, half with the socket's
 * `message.send`, 4 in flight each) and receives on its socket. At a random moment of the burst the
 * server gets SIGKILL. It is restarted on the same data; then:
 * - every acknowledged message is in the history exactly once, with the acknowledged id, in seq order;
 * - every unacknowledged message, resent with its clientMessageId, exists exactly once: 201 / a new
 *   id if it had not committed, 200 / the original id if it had (committed, answer lost in the crash);
 * - each receiver's socket, resuming from its last processed cursor, gets every acknowledged message
 *   addressed to it exactly once and in seq order; nothing repeats across the resume;
 * - retransmitting already-acknowledged clientMessageIds stores nothing and returns the original.
 */
useFaultHooks();

const USERS = 20;
const BURST_MS = 2000;

async function killNine(label: string, databaseUrl: string | undefined, rounds: number): Promise<void> {
  const srv = await ServerProcess.start({ name: `kill9-${label}`, ...(databaseUrl ? { databaseUrl } : {}) });
  const ledger = new Ledger();
  const sessions = await registerMany(srv, USERS);
  const byId = new Map<string, Session>(sessions.map((s) => [s.id, s]));
  const peers = sessions.map((s) => new Peer(s, srv, ledger));
  await pairUp(srv, peers);
  await Promise.all(peers.map((p) => p.connect()));
  const restSenders = new Set(peers.filter((_, i) => i % 2 === 0));

  const perRound: Record<string, unknown>[] = [];
  for (let round = 1; round <= rounds; round++) {
    const ackedBefore = ledger.ackedRecords().length;
    const load = new Load(ledger, { senders: peers, via: (p) => (restSenders.has(p) ? 'rest' : 'ws'), concurrency: 4 });
    const killAt = randomInt(800, BURST_MS - 200);
    await sleep(killAt);
    const tKill = now();
    const pidBefore = srv.pid;
    const killed = srv.kill9(); // SIGKILL is sent synchronously
    const stopped = load.stop(); // and no new message starts after it
    const exit = await killed;
    await stopped;
    const ackedAtKill = ledger.ackedRecords().filter((s) => s.ack!.at < tKill).length;
    expect(exit.signal).toBe('SIGKILL');
    const inFlightAtKill = ledger.attempts.filter((a) => a.tStart < tKill && a.tEnd >= tKill && a.outcome !== 'acked').length;
    const unacked = [...ledger.sends.values()].filter((s) => s.ack === null);

    const restartMs = await srv.restart();
    expect(srv.pid).not.toBe(pidBefore);

    // Before anything is resent: which unacknowledged messages had committed anyway?
    const stored = new Map<string, string>();
    for (const chatId of new Set(unacked.map((s) => s.chatId))) {
      const viewer = byId.get(unacked.find((s) => s.chatId === chatId)!.senderId)!;
      for (const m of await history(srv, viewer, chatId)) if (m.clientMessageId) stored.set(m.clientMessageId, m.id);
    }
    const committedUnacked = unacked.filter((s) => stored.has(s.clientMessageId)).length;

    // Resend every unacknowledged message with its clientMessageId, over the transport it first used.
    await Promise.all(peers.map((p) => p.waitOpen(15_000)));
    const resent = { created: 0, original: 0, wrongAnswer: 0, failed: 0 };
    await Promise.all(
      unacked.map(async (rec) => {
        const peer = peers.find((p) => p.id === rec.senderId)!;
        const a = await sendOnce(ledger, peer, rec);
        if (a.outcome !== 'acked' || !a.message) return void resent.failed++;
        const original = stored.get(rec.clientMessageId);
        if (original !== undefined) {
          // committed before the crash: the answer is the original (REST says so with 200)
          if (a.message.id === original && (a.status === 200 || a.status === 0)) resent.original++;
          else resent.wrongAnswer++;
        } else if (a.status === 201 || a.status === 0) resent.created++;
        else resent.wrongAnswer++;
      }),
    );
    expect(resent).toEqual({ created: unacked.length - committedUnacked, original: committedUnacked, wrongAnswer: 0, failed: 0 });

    const deliverMs = await waitDelivered(ledger, 20_000);
    const acc = ledger.check();
    expect(exactlyOnceViolations(acc)).toEqual({ lost: 0, dupWithinSocket: 0, dupAcrossResume: 0, outOfOrder: 0, cursorRegressions: 0, ackMismatch: 0, resyncs: 0 });
    expect(acc.unexpected).toBe(0);
    expect(acc.neverAcked).toBe(0);
    const hist = await checkHistory(srv, ledger, byId);
    expect(hist).toMatchObject({ ackedMissing: 0, ackedWrongId: 0, duplicateClientIds: 0, seqNotIncreasing: 0, unknown: 0, storedButUnacked: 0 });
    expect(hist.messages).toBe(acc.acked);
    perRound.push({ round, killAtMs: killAt, ackedBeforeKill: ackedAtKill, burstAckRatePerSec: Math.round((ackedAtKill - ackedBefore) / (killAt / 1000)), inFlightAtKill, unackedAtKill: unacked.length, committedButUnacked: committedUnacked, restartToReadyMs: Math.round(restartMs), deliverAfterRestartMs: Math.round(deliverMs), ackedSoFar: acc.acked });
  }

  // T-DUR-04: already-acknowledged clientMessageIds resent after the restart store nothing new.
  const sample = ledger.ackedRecords().filter((_, i) => i % 4 === 0).slice(0, 300);
  const before = ledger.check().acked;
  const retransmit = await Promise.all(
    sample.map(async (rec) => {
      const peer = peers.find((p) => p.id === rec.senderId)!;
      const a = await sendOnce(ledger, peer, rec, { via: 'rest' });
      return a.status === 200 && a.message?.id === rec.ack!.id;
    }),
  );
  expect(retransmit.filter((ok) => !ok).length).toBe(0);

  const acc = ledger.check();
  expect(acc.acked).toBe(before);
  expect(acc.ackMismatch).toBe(0);
  const hist = await checkHistory(srv, ledger, byId);
  expect(hist.messages).toBe(acc.acked);
  for (const p of peers) p.dispose();
  const stop = await srv.sigterm(20_000);
  const db = await inspectDatabase(srv.env.DATABASE_URL!);
  expect(db).toMatchObject({ messages: acc.acked, duplicateClientIds: 0, duplicateSeqs: 0 });
  if (label === 'sqlite') expect(db.integrity).toBe('ok');
  expect(stop.code).toBe(0);

  reportFigures(`kill9-${label}`, {
    users: USERS,
    rounds: perRound,
    sent: acc.attempted,
    acked: acc.acked,
    lost: acc.lost,
    duplicates: acc.dupWithinSocket + acc.dupAcrossResume,
    outOfOrder: acc.outOfOrder,
    historyDuplicates: hist.duplicateClientIds,
    retransmittedAcked: sample.length,
    retransmitNewRows: acc.acked - before,
    socketsPerReceiverAvg: Math.round((acc.sockets / USERS) * 10) / 10,
    dbMessages: db.messages,
    integrity: db.integrity,
    serverLogProblems: srv.logProblems().length,
  });
}

describe('kill -9 in the middle of a burst of concurrent sends', () => {
  it('SQLite: two kills; every acknowledged message survives exactly once and is delivered once, in order', async () => {
    await killNine('sqlite', undefined, 2);
  });

  it.skipIf(!TEST_DATABASE_URL)('PostgreSQL: the same, on a fresh database of TEST_DATABASE_URL', async () => {
    await killNine('postgres', await freshDatabase(TEST_DATABASE_URL!), 1);
  });
});

if (!TEST_DATABASE_URL) console.warn('[faults] TEST_DATABASE_URL is not set: kill -9 on PostgreSQL is SKIPPED.');
