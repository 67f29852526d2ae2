import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { httpRequest, now, percentile, register, reportFigures, ServerProcess, sleep, useFaultHooks, waitFor } from './_harness.js';

/**
 * T-DOS-SLOW (SECURITY.md §4d): 500 slow clients hold connections open by trickling their requests —
 * 250 send headers one line a second and never finish them, 250 send complete headers and then a
 * body one byte a second. Meanwhile other clients must still be served, and the server must cut
 * the slow ones off at its deadlines: headers within 20 s, the whole request within 30 s (each
 * checked every second, src/app.ts), answering 408 in the SPEC's error shape.
 */
useFaultHooks();

const SLOW_HEADERS = 250;
const SLOW_BODY = 250;
const HEADERS_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 30_000;

interface Slow {
  kind: 'headers' | 'body';
  openedAt: number;
  closedAt: number | null;
  received: string;
  timer: NodeJS.Timeout | null;
  socket: net.Socket;
}

function slowClient(port: number, kind: Slow['kind']): Slow {
  const socket = net.connect(port, '127.0.0.1');
  const c: Slow = { kind, openedAt: now(), closedAt: null, received: '', timer: null, socket };
  socket.on('connect', () => {
    if (kind === 'headers') {
      socket.write('POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      let i = 0;
      c.timer = setInterval(() => socket.write(`X-Slow-${i++}: ${'a'.repeat(8)}\r\n`), 1000);
    } else {
      socket.write('POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{');
      c.timer = setInterval(() => socket.write(' '), 1000);
    }
  });
  socket.on('data', (d) => (c.received += d.toString('utf8')));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    c.closedAt = now();
    if (c.timer) clearInterval(c.timer);
  });
  return c;
}

describe('slow clients (T-DOS-SLOW)', () => {
  it('500 connections trickling headers or bodies: others are served fast, and the slow ones are cut off at 20 s / 30 s with 408', async () => {
    const srv = await ServerProcess.start({ name: 'slow-clients' });
    const port = Number(new URL(srv.url).port);
    const slow: Slow[] = [];
    for (let i = 0; i < SLOW_HEADERS + SLOW_BODY; i++) {
      slow.push(slowClient(port, i < SLOW_HEADERS ? 'headers' : 'body'));
      if (i % 50 === 49) await sleep(20);
    }
    await waitFor(() => slow.every((c) => c.socket.readyState === 'open' || c.closedAt !== null), 10_000, 'the slow clients to connect');
    const opened = now();

    // A new connection for every probe, as a new client would come.
    const fresh = new http.Agent({ keepAlive: false });
    const probes: { ms: number; status: number | null }[] = [];
    const alice = await register(srv);
    while (now() - opened < REQUEST_TIMEOUT_MS + 3000) {
      const r = await httpRequest(fresh, 'GET', `${srv.url}/health/live`, { timeoutMs: 5000 });
      probes.push({ ms: r.tEnd - r.tStart, status: r.status });
      await sleep(100);
    }
    const me = await srv.get('/users/me', alice.token);
    await waitFor(() => slow.every((c) => c.closedAt !== null), REQUEST_TIMEOUT_MS, 'every slow client to be closed');
    const after = await httpRequest(fresh, 'GET', `${srv.url}/health/live`, { timeoutMs: 5000 });

    const lifetimes = (kind: Slow['kind']) => slow.filter((c) => c.kind === kind).map((c) => c.closedAt! - c.openedAt);
    const headersLife = lifetimes('headers');
    const bodyLife = lifetimes('body');
    const probeMs = probes.map((p) => p.ms);
    const answered408 = slow.filter((c) => c.received.startsWith('HTTP/1.1 408')).length;
    reportFigures('T-DOS-SLOW', {
      slowHeaders: SLOW_HEADERS,
      slowBody: SLOW_BODY,
      headersClosedAfterMs: { min: Math.round(Math.min(...headersLife)), max: Math.round(Math.max(...headersLife)) },
      bodyClosedAfterMs: { min: Math.round(Math.min(...bodyLife)), max: Math.round(Math.max(...bodyLife)) },
      answered408,
      probes: probes.length,
      probeP50Ms: Math.round(percentile(probeMs, 50) * 10) / 10,
      probeP99Ms: Math.round(percentile(probeMs, 99) * 10) / 10,
      probeMaxMs: Math.round(Math.max(...probeMs) * 10) / 10,
    });

    // Everyone else was served, quickly.
    expect(probes.every((p) => p.status === 200)).toBe(true);
    expect(percentile(probeMs, 99)).toBeLessThan(500);
    expect(me.status).toBe(200);
    expect(after.status).toBe(200);
    // The slow ones were cut off at the deadlines (each checked every second), not before.
    expect(Math.min(...headersLife)).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 500);
    expect(Math.max(...headersLife)).toBeLessThanOrEqual(HEADERS_TIMEOUT_MS + 3000);
    expect(Math.min(...bodyLife)).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 500);
    expect(Math.max(...bodyLife)).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS + 3000);
    // With a 408 in the SPEC's error shape.
    expect(answered408).toBe(slow.length);
    const sample = slow[0]!.received;
    expect(JSON.parse(sample.slice(sample.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'validation_error', message: 'the request was not received in time' } });
    srv.assertAlive();
  });
});
