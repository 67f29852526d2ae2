import http from 'node:http';
import net from 'node:net';
import { expect, it } from 'vitest';
import { STRONG_PASSWORD } from '../_helpers/api.js';
import { testServer } from '../_helpers/server.js';

it('closes promptly while a keep-alive connection still has a request running', async () => {
  const s = await testServer({ listen: true });
  const agent = new http.Agent({ keepAlive: true });
  try {
    // Registration hashes the password (Argon2id): still running when close begins.
    const body = JSON.stringify({ username: `close_${Date.now()}`, password: STRONG_PASSWORD });
    const arrived = new Promise<void>((resolve) => s.app.server.once('request', () => resolve()));
    const answered = new Promise<number>((resolve, reject) => {
      const req = http.request(`${s.url}/auth/register`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
    await arrived;
    const started = Date.now();
    await s.close();
    // The running request was answered, and its idle keep-alive connection did not hold the
    // close up until keepAliveTimeout (72 s).
    expect(await answered).toBe(201);
    expect(Date.now() - started).toBeLessThan(3000);
  } finally {
    agent.destroy();
  }
});

it('a request that arrives while the server drains gets 503 in the error shape, with Retry-After and Connection: close', async () => {
  const s = await testServer({ listen: true });
  const { port } = new URL(s.url);
  const socket = net.connect(Number(port), '127.0.0.1');
  try {
    // Two pipelined requests: the first (Argon2id) is still running when close begins; the second
    // is taken up only after the first is answered, i.e. while the server drains.
    const body = JSON.stringify({ username: `drain_${Date.now()}`, password: STRONG_PASSWORD });
    const arrived = new Promise<void>((resolve) => s.app.server.once('request', () => resolve()));
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString('utf8')));
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(
      `POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}` +
        'GET /users/me HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    await arrived;
    await s.close();
    await ended;
    const [first, second] = received.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 201 /);
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(second).toMatch(/\r\nretry-after: 1\r\n/i);
    expect(second).toMatch(/\r\nconnection: close\r\n/i);
    const json = JSON.parse(second!.slice(second!.indexOf('\r\n\r\n') + 4)) as unknown;
    expect(json).toEqual({ error: { code: 'unavailable', message: 'server is shutting down, retry later', details: { requestId: expect.any(String) } } });
  } finally {
    socket.destroy();
  }
});
