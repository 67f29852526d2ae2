import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  checkHistory,
  exactlyOnceViolations,
  httpRequest,
  Ledger,
  Load,
  now,
  pairUp,
  Peer,
  PgCluster,
  pgClusterUnavailable,
  registerMany,
  reportFigures,
  ServerProcess,
  sleep,
  useFaultHooks,
  waitDelivered,
  waitFor,
  type Session,
} from './_harness.js';

/**
 * G6 fail fast, recover alone (REL-06, T-FAULT-PG-2), with G1/G4 across the outage.
 *
 * A private PostgreSQL cluster (initdb in a temp dir, its own port and socket directory: the
 * machine's shared cluster is never touched) serves one server instance while 8 clients send
 * continuously (REST and `message.send`) and retry anything unacknowledged with the same
 * clientMessageId. PostgreSQL is then (A) restarted with `pg_ctl restart -m fast`, (B) stopped with
 * `-m fast` and kept down 3 s, (C) crashed with `-m immediate` (recovery on start) and kept down 3 s,
 * and (D, T-FAULT-PG-1) left running while every server connection is killed with
 * `pg_terminate_backend`: at most the requests in flight fail, and sends succeed again within 2 s.
 * Throughout: every request is answered within 5 s, failures are 503 + Retry-After (never 500,
 * never a hang or a reset), the server process survives, service resumes by itself within 10 s of
 * PostgreSQL accepting connections again, and afterwards nothing acknowledged is missing.
 */
useFaultHooks();

const skip = pgClusterUnavailable();
if (skip) console.warn(`[faults] PostgreSQL restart test SKIPPED: ${skip}.`);

const USERS = 8;
const RATE = 10;
const DOWN_MS = 3000;

describe.skipIf(skip !== null)('PostgreSQL restarted under load (private cluster)', () => {
  it('requests fail fast with 503 + Retry-After, the process survives, service resumes alone, nothing acknowledged is lost', async () => {
    const cluster = await PgCluster.create();
    const srv = await ServerProcess.start({ name: 'pg-restart', databaseUrl: cluster.url() });
    const pid = srv.pid;
    const ledger = new Ledger();
    const sessions = await registerMany(srv, USERS);
    const byId = new Map<string, Session>(sessions.map((s) => [s.id, s]));
    const peers = sessions.map((s) => new Peer(s, srv, ledger));
    await pairUp(srv, peers);
    await Promise.all(peers.map((p) => p.connect()));

    // /health every 250 ms, answered or not.
    const health: { t: number; status: number | null; ms: number; redisOrDb?: unknown }[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const r = await httpRequest(srv.agent, 'GET', `${srv.url}/health`, { timeoutMs: 10_000 });
        health.push({ t: r.tStart, status: r.status, ms: r.tEnd - r.tStart, redisOrDb: r.body?.checks });
        await sleep(250);
      }
    })();

    const load = new Load(ledger, {
      senders: peers,
      via: (p, n) => (n % 2 === 0 ? 'rest' : 'ws'),
      rate: RATE,
      concurrency: 4,
      retry: true,
      maxBackoffMs: 500,
    });
    await sleep(2000);

    const phases: Record<string, unknown>[] = [];
    const outage = async (name: string, act: () => Promise<void>) => {
      const tDown = now();
      await act();
      const tUp = now();
      if (!srv.running) {
        // The figures of a crash, before the test fails on it.
        reportFigures('pg-restart', { users: USERS, ratePerUser: RATE, serverDied: srv.lastExit, duringPhase: name, phasesCompleted: phases, attempts: ledger.attemptStats() });
      }
      // Service is back when a message first sent after PostgreSQL came back is acknowledged.
      srv.assertAlive();
      const firstOk = await waitFor(
        () => (srv.assertAlive(), ledger.attempts.find((a) => a.tStart >= tUp && a.outcome === 'acked')),
        15_000,
        `a successful send after PostgreSQL came back (${name})`,
        50,
      );
      const healthy = await waitFor(() => health.find((h) => h.t >= tUp && h.status === 200), 15_000, `/health 200 after ${name}`, 50);
      await sleep(1500);
      const during = ledger.attemptStats((a) => a.tStart >= tDown && a.tStart <= firstOk.tEnd);
      const healthDuring = health.filter((h) => h.t >= tDown && h.t < tUp);
      phases.push({
        phase: name,
        pgDownForMs: Math.round(tUp - tDown),
        resumedAfterPgUpMs: Math.round(firstOk.tEnd - tUp),
        healthOkAfterPgUpMs: Math.round(healthy.t + healthy.ms - tUp),
        attemptsDuringOutage: during.attempts,
        acked: during.acked,
        unavailable503: during.unavailable,
        serverError: during.serverError,
        noResponse: during.noResponse,
        notSent: during.notSent,
        maxResponseMs: during.responseMs.max,
        health503During: healthDuring.filter((h) => h.status === 503).length,
        healthMaxMs: Math.round(Math.max(0, ...healthDuring.map((h) => h.ms))),
      });
      return { during, resumed: firstOk.tEnd - tUp, healthOk: healthy.t + healthy.ms - tUp };
    };

    const a = await outage('A: pg_ctl restart -m fast', () => cluster.restart('fast'));
    const b = await outage('B: pg_ctl stop -m fast, 3 s down, start', async () => {
      await cluster.stop('fast');
      await sleep(DOWN_MS);
      await cluster.start();
    });
    const c = await outage('C: pg_ctl stop -m immediate (crash), 3 s down, start (recovery)', async () => {
      await cluster.stop('immediate');
      await sleep(DOWN_MS);
      await cluster.start();
    });

    let terminated = 0;
    const d = await outage('D: pg_terminate_backend of every server connection', async () => {
      const admin = new pg.Client({ connectionString: cluster.url() });
      await admin.connect();
      try {
        const r = await admin.query<{ n: string }>(
          'select count(pg_terminate_backend(pid)) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
        );
        terminated = Number(r.rows[0]!.n);
      } finally {
        await admin.end();
      }
    });

    await load.settle(30_000);
    await load.stop();
    probing = false;
    await probe;
    const deliverMs = await waitDelivered(ledger, 20_000);
    const acc = ledger.check();
    const hist = await checkHistory(srv, ledger, byId);
    const rest = ledger.attemptStats((x) => x.via === 'rest');
    const ws = ledger.attemptStats((x) => x.via === 'ws');
    const problems = srv.logProblems();

    reportFigures('pg-restart', {
      users: USERS,
      ratePerUser: RATE,
      phases,
      backendsTerminated: terminated,
      rest,
      ws,
      sent: acc.attempted,
      acked: acc.acked,
      lost: acc.lost,
      duplicates: acc.dupWithinSocket + acc.dupAcrossResume,
      outOfOrder: acc.outOfOrder,
      receiverSockets: acc.sockets,
      deliverAfterLoadMs: Math.round(deliverMs),
      historyMessages: hist.messages,
      serverPidUnchanged: srv.running && srv.pid === pid,
      serverLogProblems: problems.length,
    });

    // the process survived all three
    expect(srv.running).toBe(true);
    expect(srv.pid).toBe(pid);
    // fail fast: every request answered (no hang, no reset) within 5 s; failures are 503 + Retry-After, never 500
    expect(rest).toMatchObject({ serverError: 0, rejected: 0, noResponse: 0, unavailableWithoutRetryAfter: 0 });
    expect(rest.responseMs.max).toBeLessThanOrEqual(5000);
    expect(ws).toMatchObject({ serverError: 0, rejected: 0 });
    expect(ws.responseMs.max).toBeLessThanOrEqual(5000);
    expect(health.every((h) => h.status !== null && h.ms <= 5000)).toBe(true);
    expect(health.every((h) => h.status === 200 || h.status === 503)).toBe(true);
    // the sustained outages were seen as 503s, by senders and by /health
    for (const o of [b, c]) {
      expect(o.during.unavailable).toBeGreaterThan(0);
    }
    expect(phases.slice(1, 3).every((p) => (p.health503During as number) > 0)).toBe(true);
    // recover alone, within 10 s of PostgreSQL being back
    for (const o of [a, b, c]) {
      expect(o.resumed).toBeLessThanOrEqual(10_000);
      expect(o.healthOk).toBeLessThanOrEqual(10_000);
    }
    // killed connections (the server's pool held some): replaced at once
    expect(terminated).toBeGreaterThan(0);
    expect(d.resumed).toBeLessThanOrEqual(2000);
    // nothing acknowledged lost; retries converged to exactly once
    expect(exactlyOnceViolations(acc)).toEqual({ lost: 0, dupWithinSocket: 0, dupAcrossResume: 0, outOfOrder: 0, cursorRegressions: 0, ackMismatch: 0, resyncs: 0 });
    expect(acc.neverAcked).toBe(0);
    expect(acc.unexpected).toBe(0);
    expect(hist).toMatchObject({ ackedMissing: 0, ackedWrongId: 0, duplicateClientIds: 0, seqNotIncreasing: 0, unknown: 0, storedButUnacked: 0 });
    expect(hist.messages).toBe(acc.acked);
    expect(problems.filter((l) => /unhandled|fatal|uncaught/i.test(l))).toEqual([]);
  });
});
