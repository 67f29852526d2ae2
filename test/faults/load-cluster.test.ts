import { monitorEventLoopDelay } from 'node:perf_hooks';
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkHistory,
  exactlyOnceViolations,
  freshDatabase,
  inspectDatabase,
  Ledger,
  LOAD_TEST_SCALE,
  LoopLagSampler,
  maxOf,
  now,
  openFilesLimit,
  PacedLoad,
  pairUp,
  Peer,
  percentile,
  registerMany,
  reportFigures,
  RssSampler,
  ServerProcess,
  sleep,
  tempDir,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
  useFaultHooks,
  waitDelivered,
  warmConnections,
  type Metrics,
  type Session,
  type Via,
} from './_harness.js';

/**
 * T-LOAD-02 (SECURITY.md §4d): 500 clients in 250 one-to-one pairs, each sending its partner one
 * message a second for 300 s (150,000 messages), on two server instances sharing a fresh
 * PostgreSQL database and Redis (TEST_DATABASE_URL, TEST_REDIS_URL). Every pair is split across
 * the instances (every message crosses Redis), half the clients send over REST and half with
 * `message.send`; 20 % of the clients lose their socket once, at a random moment, and 0.5–1.5 s
 * later resume from their last cursor on the *other* instance (their latency counts too: the
 * held-off messages arrive within the gap plus a resend). Pass: lost = duplicated = out-of-order = 0, no 5xx,
 * no 429, p99 send → receive < 2 s, each instance's RSS < 600 MiB and flat (the last fifth's
 * average at most 10 % above the second fifth's: "minute 2" and "the last minute" at full length),
 * and each instance's own event-loop delay p99 < 100 ms.
 * LOAD_TEST_SCALE shortens and shrinks it for development runs.
 */
useFaultHooks();

const CLIENTS = Math.max(20, 2 * Math.round((500 * LOAD_TEST_SCALE) / 2));
const SECONDS = Math.max(20, Math.round(300 * LOAD_TEST_SCALE));
/**
 * The same load for this long first, outside the measured window: on freshly started servers the
 * first ~10-20 s of 1,000 msg/s ran slow (up to a fifth of the first 5,000 messages over 2 s, with
 * the servers half idle: database connections and statements prepared on first use, code not yet
 * optimised). Those messages are accounted for exactly like the rest; their p99 has its own,
 * looser bound (WARMUP_P99_LIMIT_MS), and the steady state is held to the SPEC's 2 s.
 */
const WARMUP_S = Math.max(5, Math.round(15 * LOAD_TEST_SCALE));
const WARMUP_P99_LIMIT_MS = 10_000;
const RATE = 1;
const RECONNECT_SHARE = 0.2;
/** A fifth of the run: one minute at full length. RSS is compared between the 2nd and the 5th. */
const WINDOW_MS = (SECONDS * 1000) / 5;
const P99_LIMIT_MS = 2000;
const RSS_LIMIT_MIB = 600;
const LOOP_P99_LIMIT_MS = 100;

const skip = !TEST_DATABASE_URL ? 'TEST_DATABASE_URL is not set' : !TEST_REDIS_URL ? 'TEST_REDIS_URL is not set' : null;
if (skip) console.warn(`[faults] T-LOAD-02 (two instances on PostgreSQL + Redis under load) SKIPPED: ${skip}.`);

describe.skipIf(skip !== null)('load on two instances (T-LOAD-02)', () => {
  it(
    `T-LOAD-02: ${CLIENTS} clients on two instances (PostgreSQL + Redis) × ${SECONDS} s at ${RATE} msg/s after a ${WARMUP_S} s warm-up, ${RECONNECT_SHARE * 100} % resuming once on the other instance: exactly once, in order, no 5xx/429, p99 < 2 s, RSS < 600 MiB and flat, loop p99 < 100 ms`,
    { timeout: (SECONDS + 480) * 1000 },
    async () => {
      // Each client holds a socket and a kept-alive HTTP connection, and so does the server side of each.
      const needed = 2 * CLIENTS + 512;
      if (openFilesLimit() < needed) throw new Error(`ulimit -n is ${openFilesLimit()}: this test needs ${needed} open files (raise it with ulimit -n ${needed})`);
      const tSetup = now();
      const databaseUrl = await freshDatabase(TEST_DATABASE_URL!);
      const common = { databaseUrl, redisUrl: TEST_REDIS_URL!, dataDir: tempDir('load-cluster') };
      // One after the other: the first applies the migrations.
      const a = await ServerProcess.start({ name: 'load-A', ...common });
      const b = await ServerProcess.start({ name: 'load-B', ...common });
      const instances = [a, b];
      const otherOf = (s: ServerProcess) => (s === a ? b : a);
      const rss = new Map(instances.map((s) => [s, new RssSampler(s, 1000)]));

      // Argon2id is slow on purpose: each instance hashes half of the registrations.
      const half = CLIENTS / 2;
      const [onA, onB] = await Promise.all([registerMany(a, half, 4), registerMany(b, half, 4)]);
      // Client i starts on instance i % 2, so the pairs (0,1), (2,3) … are split across them.
      const sessions: Session[] = [];
      for (let i = 0; i < half; i++) sessions.push(onA[i]!, onB[i]!);
      const byId = new Map(sessions.map((s) => [s.id, s]));
      const ledger = new Ledger();
      const peers = sessions.map((s, i) => new Peer(s, instances[i % 2]!, ledger));
      await pairUp(a, peers);
      // Within each pair one member sends over REST and the other with message.send; each instance has both kinds.
      const via = new Map<Peer, Via>(peers.map((p, i) => [p, i % 4 === 0 || i % 4 === 3 ? 'rest' : 'ws']));
      const tConnect = now();
      for (let i = 0; i < peers.length; i += 50) await Promise.all(peers.slice(i, i + 50).map((p) => p.connect(20_000)));
      const connectMs = now() - tConnect;
      // Kept-alive connections opened before the load: under load a new connection waits in the
      // accept queue (docs/faults.md), which would show as the servers' latency at the start.
      await Promise.all(instances.map((s) => warmConnections(s, 64)));
      const setupMs = now() - tSetup;

      // The reconnecting 20 %: each loses its socket once, at a random moment in the middle 80 % of the run.
      const leaving: Peer[] = [];
      while (leaving.length < Math.round(CLIENTS * RECONNECT_SHARE)) {
        const p = peers[randomInt(peers.length)]!;
        if (!leaving.includes(p)) leaving.push(p);
      }
      const away = new Map<Peer, { cutAt: number; backAt: number | null; error: string | null }>();

      const cpu0 = instances.map((s) => s.cpuSeconds());
      const genCpu0 = process.cpuUsage();
      const genLag = monitorEventLoopDelay({ resolution: 10 });
      genLag.enable();
      // With each 10 s of event-loop delay, the server's own counts: stored, 503s, sockets it closed,
      // and at that moment the work waiting for a pooled connection and the connections in use.
      const serverCounts = (m: Metrics) => ({
        stored: m.sum('safechat_messages_stored_total'),
        http503: m.sum('safechat_http_requests_total', (l) => l.status === '503'),
        wsClosed: m.sum('safechat_ws_closed_total'),
        sockets: m.sum('safechat_ws_connections'),
        dbWaiting: m.sum('safechat_db_waiting'),
        dbBusy: m.sum('safechat_db_connections', (l) => l.state === 'busy'),
      });
      const lag = new Map(instances.map((s) => [s, new LoopLagSampler(s, 10_000, serverCounts)]));
      const tLoad = now();
      const load = new PacedLoad(ledger, { senders: peers, via: (p) => via.get(p)!, rate: RATE, maxInFlight: 8, requestTimeoutMs: 15_000 });
      const timers: NodeJS.Timeout[] = [];
      for (const p of leaving) {
        const at = WARMUP_S * 1000 + (0.1 + 0.8 * (randomInt(1_000_000) / 1_000_000)) * SECONDS * 1000;
        timers.push(
          setTimeout(() => {
            // Like a phone whose network changed: the socket is cut (no close frame), and 0.5–1.5 s
            // later the client comes back through the other instance with `?since=<last processed
            // cursor>`. Meanwhile its message.send attempts fail (not sent) and are resent.
            const trip = { cutAt: now(), backAt: null as number | null, error: null as string | null };
            away.set(p, trip);
            p.autoReconnect = false;
            p.server = otherOf(p.server);
            p.socket?.terminate();
            timers.push(
              setTimeout(() => {
                p.connect(20_000)
                  .then(
                    () => (trip.backAt = now()),
                    (err: unknown) => (trip.error = (err as Error).message),
                  )
                  .finally(() => (p.autoReconnect = true));
              }, 500 + randomInt(1000)),
            );
          }, at),
        );
      }

      // Every 10 s: what the generator started, what was acknowledged and received, what failed, and each instance's CPU and RSS.
      const timeline: Record<string, unknown>[] = [];
      let seenAttempts = 0;
      let lastCpu = cpu0;
      let lastAt = tLoad;
      const sampleTimeline = () => {
        const t = now();
        const cpuNow = instances.map((s) => (s.running ? s.cpuSeconds() : NaN));
        const fresh = ledger.attempts.slice(seenAttempts);
        seenAttempts = ledger.attempts.length;
        let acked = 0;
        for (const r of ledger.sends.values()) if (r.ack) acked++;
        let received = 0;
        for (const list of ledger.streams.values()) for (const st of list) received += st.events.length;
        const failed: Record<string, number> = {};
        for (const x of fresh) if (x.outcome !== 'acked') failed[`${x.via}:${x.outcome}`] = (failed[`${x.via}:${x.outcome}`] ?? 0) + 1;
        timeline.push({
          s: Math.round((t - tLoad) / 1000),
          started: load.started,
          acked,
          received,
          inFlight: load.inFlight,
          retries: load.pendingRetries,
          failed,
          answerP99Ms: Math.round(percentile(fresh.filter((x) => x.outcome === 'acked').map((x) => x.tEnd - x.tStart), 99)),
          cpuPct: cpuNow.map((c, i) => Math.round(((c - lastCpu[i]!) / ((t - lastAt) / 1000)) * 100)),
          rssMiB: instances.map((s) => Math.round((rss.get(s)!.samples.at(-1)?.kib ?? 0) / 1024)),
        });
        lastCpu = cpuNow;
        lastAt = t;
      };
      const timelineTimer = setInterval(sampleTimeline, 10_000);

      try {
        // The run, with a crash of either instance failing at once.
        while (now() - tLoad < (WARMUP_S + SECONDS) * 1000) {
          await sleep(Math.min(1000, (WARMUP_S + SECONDS) * 1000 - (now() - tLoad)));
          a.assertAlive();
          b.assertAlive();
        }
        const tEnd = now();
        // A load that does not settle is reported with the figures below, then fails.
        const settled = await load.settle(60_000).then(
          () => null,
          (err: unknown) => (err as Error).message,
        );
        const deliverMs = await waitDelivered(ledger, settled === null ? 60_000 : 1000);
        clearInterval(timelineTimer);
        sampleTimeline();
        await load.stop();
        genLag.disable();
        const genCpu = process.cpuUsage(genCpu0);
        const cpu = instances.map((s, i) => s.cpuSeconds() - cpu0[i]!);
        const loops = await Promise.all(instances.map((s) => lag.get(s)!.stop()));
        const mem = instances.map((s) => rss.get(s)!.stop());
        const tMeasure = tLoad + WARMUP_S * 1000;
        const minutes = instances.map((s) => Array.from({ length: 5 }, (_, k) => rss.get(s)!.averageMiB(tMeasure + k * WINDOW_MS, tMeasure + (k + 1) * WINDOW_MS)));
        const drift = minutes.map((m) => Math.round(((m[4]! - m[1]!) / m[1]!) * 1000) / 10);

        const acc = ledger.check();
        const stats = ledger.attemptStats();
        const peerById = new Map(peers.map((p) => [p.id, p]));
        // Attempts not acknowledged: allowed only for a reconnecting client's message.send while
        // its socket was cut (no answer, or not sent at all); each was resent with its clientMessageId.
        const unanswered = ledger.attempts.filter((x) => x.outcome !== 'acked');
        const explained = (x: (typeof unanswered)[number]) => {
          const trip = away.get(peerById.get(ledger.sends.get(x.clientMessageId)!.senderId)!);
          return (
            x.via === 'ws' && (x.outcome === 'no_response' || x.outcome === 'not_sent') && trip !== undefined && x.tStart > trip.cutAt - 16_000 && x.tStart < (trip.backAt ?? Infinity) + 1000
          );
        };
        // Messages acknowledged while their receiver was away: those can only have come by the resume.
        let ackedWhileAway = 0;
        for (const rec of ledger.sends.values()) {
          const trip = away.get(peerById.get(rec.receiverId)!);
          if (trip && rec.ack && rec.ack.at >= trip.cutAt && trip.backAt !== null && rec.ack.at <= trip.backAt) ackedWhileAway++;
        }
        const trips = [...away.values()];
        // Where the latency tail lies: send → receive per 10 s of the run (by first attempt).
        const seenAt = new Map<string, number>();
        for (const list of ledger.streams.values()) for (const st of list) for (const e of st.events) if (!seenAt.has(e.id)) seenAt.set(e.id, e.at);
        const buckets = new Map<number, number[]>();
        const warmup: number[] = [];
        const steady: number[] = [];
        for (const rec of ledger.sends.values()) {
          const at = rec.ack ? seenAt.get(rec.ack.id) : undefined;
          if (at === undefined) continue;
          (rec.firstTry < tMeasure ? warmup : steady).push(at - rec.firstTry);
          const k = Math.floor((rec.firstTry - tLoad) / 10_000);
          let l = buckets.get(k);
          if (!l) buckets.set(k, (l = []));
          l.push(at - rec.firstTry);
        }
        const latencyBy10s = [...buckets.entries()]
          .sort((x, y) => x[0] - y[0])
          .map(([k, l]) => ({ s: k * 10, n: l.length, p99Ms: Math.round(percentile(l, 99)), maxMs: Math.round(maxOf(l)), over2s: l.filter((v) => v >= P99_LIMIT_MS).length }));
        const unexplained = unanswered.filter((x) => !explained(x));
        const clientSide = {
          http5xx: ledger.attempts.filter((x) => x.status !== null && x.status >= 500).length,
          http429: ledger.attempts.filter((x) => x.status === 429).length,
          httpOther4xx: ledger.attempts.filter((x) => x.status !== null && x.status >= 400 && x.status < 500 && x.status !== 429).length,
          wsErrorFrames: ledger.attempts.filter((x) => x.via === 'ws' && x.code !== undefined).length,
        };
        const scrapes = await Promise.all(instances.map((s) => s.scrape()));
        const sumAll = (name: string, f?: (l: Record<string, string>) => boolean) => scrapes.reduce((n, m) => n + m.sum(name, f), 0);
        const serverSide = {
          http5xx: sumAll('safechat_http_requests_total', (l) => l.status!.startsWith('5')),
          http429: sumAll('safechat_http_requests_total', (l) => l.status === '429'),
          rateLimited: sumAll('safechat_rate_limited_total'),
          socketsClosedByServer: sumAll('safechat_ws_closed_total'),
        };
        const storedByServers = sumAll('safechat_messages_stored_total');
        const tHistory = now();
        const hist = await checkHistory(a, ledger, byId);
        const db = await inspectDatabase(databaseUrl);
        const historyMs = now() - tHistory;
        const reconnectCounts = peers.map((p) => p.reconnects);
        const late = load.lateMs;

        reportFigures('T-LOAD-02', {
          scale: LOAD_TEST_SCALE,
          clients: CLIENTS,
          seconds: SECONDS,
          ratePerClient: RATE,
          setupMs: Math.round(setupMs),
          connectMs: Math.round(connectMs),
          sent: acc.attempted,
          acked: acc.acked,
          throughputPerSec: Math.round(acc.acked / (WARMUP_S + SECONDS)),
          lost: acc.lost,
          duplicates: acc.dupWithinSocket + acc.dupAcrossResume,
          outOfOrder: acc.outOfOrder,
          violations: exactlyOnceViolations(acc),
          unexpected: acc.unexpected,
          clientSide,
          serverSide,
          attempts: stats,
          unansweredAttempts: unanswered.length,
          unexplainedAttempts: unexplained.length,
          resent: acc.acked200,
          reconnectingClients: away.size,
          awayMs: trips.length === 0 ? null : { min: Math.round(Math.min(...trips.map((t) => (t.backAt ?? NaN) - t.cutAt))), max: Math.round(Math.max(...trips.map((t) => (t.backAt ?? NaN) - t.cutAt))) },
          ackedWhileAway,
          receiverSockets: acc.sockets,
          sendToReceiveMs: acc.latencyMs,
          sendToReceiveP99Ms: { warmup: Math.round(percentile(warmup, 99)), steady: Math.round(percentile(steady, 99)), warmupMessages: warmup.length },
          rssMiB: Object.fromEntries(instances.map((s, i) => [s.name, { ...mem[i], perFifth: minutes[i], lastVsSecondPct: drift[i] }])),
          serverLoopLagMs: Object.fromEntries(instances.map((s, i) => [s.name, loops[i]])),
          serverCpuPct: Object.fromEntries(instances.map((s, i) => [s.name, Math.round((cpu[i]! / ((now() - tLoad) / 1000)) * 100)])),
          generator: {
            cpuPct: Math.round(((genCpu.user + genCpu.system) / 1e6 / ((now() - tLoad) / 1000)) * 100),
            loopLagP99Ms: Math.round(genLag.percentile(99) / 1e6),
            lateP99Ms: Math.round(percentile(late, 99)),
            lateMaxMs: Math.round(maxOf(late)),
            errors: load.errors.length,
          },
          settled: settled ?? 'yes',
          drainMs: Math.round(deliverMs),
          runMs: Math.round(tEnd - tLoad),
          history: hist,
          historyCheckMs: Math.round(historyMs),
          database: db,
          storedByServers,
          serverLogProblems: instances.map((s) => s.logProblems().length),
          timeline,
          latencyBy10s,
          serverTimeline: Object.fromEntries(
            instances.map((s) => [s.name, lag.get(s)!.intervals.map((x) => ({ s: Math.round((x.at - tLoad) / 1000), loopP99Ms: x.p99Ms, loopMaxMs: x.maxMs, ...x.extra }))]),
          ),
        });

        a.assertAlive();
        b.assertAlive();
        expect(settled, 'every message acknowledged after the run (resends included)').toBeNull();
        // The generator kept its schedule (a late generator would hide a slow server).
        expect(load.errors).toEqual([]);
        expect(acc.attempted).toBeGreaterThanOrEqual(Math.floor(CLIENTS * RATE * SECONDS * 0.98));
        // Every message acknowledged (after resends where a socket was cut), then received exactly once, in order.
        expect(acc.neverAcked).toBe(0);
        expect(exactlyOnceViolations(acc)).toEqual({ lost: 0, dupWithinSocket: 0, dupAcrossResume: 0, outOfOrder: 0, cursorRegressions: 0, ackMismatch: 0, resyncs: 0 });
        expect(acc.unexpected).toBe(0);
        // No 5xx, no 429 (nor any other refusal), seen by the clients and counted by the servers.
        expect(clientSide).toEqual({ http5xx: 0, http429: 0, httpOther4xx: 0, wsErrorFrames: 0 });
        expect(serverSide).toEqual({ http5xx: 0, http429: 0, rateLimited: 0, socketsClosedByServer: 0 });
        expect(unexplained.map((x) => `${x.via} ${x.outcome} ${x.status ?? ''} ${x.code ?? x.error ?? ''}`)).toEqual([]);
        // Each leaving client came back once, at the first try, and some messages waited for it;
        // no other socket dropped (no reconnect of its own by any client).
        expect(away.size).toBe(leaving.length);
        expect(trips.filter((t) => t.backAt === null || t.error !== null)).toEqual([]);
        expect(ackedWhileAway).toBeGreaterThan(0);
        expect(reconnectCounts.filter((n) => n !== 0)).toEqual([]);
        expect(acc.sockets).toBe(CLIENTS + leaving.length);
        // The database holds each acknowledged message once, and nothing else.
        expect(hist).toMatchObject({ ackedMissing: 0, ackedWrongId: 0, duplicateClientIds: 0, seqNotIncreasing: 0, unknown: 0, storedButUnacked: 0 });
        expect(db).toMatchObject({ messages: acc.acked, duplicateClientIds: 0, duplicateSeqs: 0 });
        expect(storedByServers).toBe(acc.acked);
        // Latency, memory, event loop.
        expect(acc.latencyMs.n).toBe(acc.acked);
        expect(warmup.length + steady.length).toBe(acc.acked);
        expect(steady.length).toBeGreaterThan(0.9 * CLIENTS * RATE * SECONDS);
        expect(percentile(steady, 99), 'p99 send → receive after the warm-up').toBeLessThan(P99_LIMIT_MS);
        expect(percentile(warmup, 99), 'p99 send → receive during the warm-up').toBeLessThan(WARMUP_P99_LIMIT_MS);
        for (let i = 0; i < instances.length; i++) {
          expect(mem[i]!.maxMiB, `${instances[i]!.name} RSS`).toBeLessThan(RSS_LIMIT_MIB);
          // Flat = no growth: the last minute's average at most 10 % above minute 2's. A fall is
          // not held against it: V8 returns old-space pages at each major GC, so RSS is a saw
          // (+7 MiB / 10 s, then −50…−100 MiB) and a minute's average can sit >10 % below another's
          // with nothing kept (−10.7 % and −11.3 % in the run of 2026-11-26, docs/faults.md).
          expect(drift[i]!, `${instances[i]!.name} RSS, last fifth against the second (%)`).toBeLessThanOrEqual(10);
          expect(loops[i]!.failures, `${instances[i]!.name} /metrics scrapes failed`).toBe(0);
          expect(loops[i]!.intervals).toBeGreaterThanOrEqual(Math.floor(SECONDS / 10));
          expect(loops[i]!.p99MaxMs, `${instances[i]!.name} event-loop delay p99 (worst 10 s interval)`).toBeLessThan(LOOP_P99_LIMIT_MS);
        }
        expect(instances.map((s) => s.logProblems())).toEqual([[], []]);
      } finally {
        clearInterval(timelineTimer);
        for (const t of timers) clearTimeout(t);
        if (load.mode !== 'stopped') await load.stop().catch(() => undefined);
        for (const p of peers) p.dispose();
        genLag.disable();
        for (const s of instances) rss.get(s)!.stop();
        await Promise.all(instances.map((s) => lag.get(s)!.stop().catch(() => undefined)));
      }
    },
  );
});
