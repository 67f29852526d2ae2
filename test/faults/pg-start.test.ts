import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { freePort, now, PASSWORD, PgCluster, pgClusterUnavailable, ServerProcess, sleep, uniqueName, useFaultHooks, waitFor } from './_harness.js';

/**
 * T-FAULT-PG-3 (REL-06): PostgreSQL is down when the server starts. The server stays up: its address
 * answers `/health/live` 200, `/health` 503, every request and upgrade 503 in the error shape with
 * `Retry-After` (not a refused connection, not an exit after a minute); once PostgreSQL starts it
 * migrates, and is ready within 10 s.
 */
useFaultHooks();

const skip = pgClusterUnavailable();
if (skip) console.warn(`[faults] PostgreSQL-down-at-start test SKIPPED: ${skip}.`);

describe.skipIf(skip !== null)('PostgreSQL down when the server starts (private cluster)', () => {
  it('stays up and answers 503 until PostgreSQL starts, then is ready within 10 s', async () => {
    const cluster = await PgCluster.create();
    await cluster.stop('fast');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    // Resolves once /health is 200, i.e. after PostgreSQL has been started below.
    const started = ServerProcess.start({ name: 'pg-start', databaseUrl: cluster.url(), port, readyTimeoutMs: 90_000 });
    started.catch(() => undefined);

    await waitFor(async () => (await fetch(`${base}/health/live`).catch(() => null))?.status === 200, 20_000, 'the address to answer while the database is down', 100);
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: 'unavailable', checks: { database: 'down' } });
    const register = await fetch(`${base}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: uniqueName('early'), password: PASSWORD }) });
    expect(register.status).toBe(503);
    expect(register.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(await register.json()).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
    const upgrade = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    expect(upgrade).toBe(503);
    // Still waiting, still up.
    await sleep(1500);
    expect((await fetch(`${base}/health/live`)).status).toBe(200);

    await cluster.start();
    const t0 = now();
    const srv = await started;
    await waitFor(async () => (await fetch(`${base}/health`)).status === 200, 10_000, 'ready after PostgreSQL started', 100);
    const readyMs = now() - t0;
    console.log(`FAULT-FIGURES ${JSON.stringify({ test: 'pg-down-at-start', readyAfterPostgresStartedMs: Math.round(readyMs) })}`);
    expect(readyMs).toBeLessThanOrEqual(10_000);
    expect(srv.running).toBe(true);
    const ok = await srv.post('/auth/register', { username: uniqueName('late'), password: PASSWORD }, undefined, 30_000);
    expect(ok.status).toBe(201);
  });
});
