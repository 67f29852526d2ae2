import http from 'node:http';
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
