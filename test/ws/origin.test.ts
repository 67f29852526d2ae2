import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api } from '../_helpers/api.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';
import { TestSocket } from '../_helpers/ws.js';

/** WS-02: browsers must come from this server's own origin or one in ALLOWED_ORIGINS; native apps send none. */
describeEachDialect('WebSocket origin check and CORS', (dialect) => {
  let s: TestServer;
  let api: Api;
  let token: string;

  beforeAll(async () => {
    s = await testServer({ dialect, listen: true, env: { ALLOWED_ORIGINS: 'https://chat.example' } });
    api = new Api(s.app);
    token = (await api.register()).token;
  });
  afterAll(() => s.close());

  async function upgrade(origin?: string): Promise<number> {
    const sock = new TestSocket(s.wsUrl, { token, ...(origin !== undefined ? { origin } : {}) });
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && sock.upgradeStatus === null && !sock.frames.some((f) => f.type === 'ready')) {
      await new Promise((r) => setTimeout(r, 10));
    }
    sock.close();
    return sock.frames.some((f) => f.type === 'ready') ? 101 : (sock.upgradeStatus ?? -1);
  }

  it('allows no Origin (native apps), the same origin and listed origins', async () => {
    expect(await upgrade()).toBe(101);
    expect(await upgrade(s.url)).toBe(101);
    expect(await upgrade('https://chat.example')).toBe(101);
  });

  it('refuses any other Origin, including "null", with 403 before the upgrade', async () => {
    for (const origin of ['https://evil.example', 'null', 'http://127.0.0.1:1', 'https://chat.example.evil.example']) {
      expect(await upgrade(origin), origin).toBe(403);
    }
  });

  it('CORS answers listed origins only', async () => {
    const ok = await s.app.inject({ method: 'OPTIONS', url: '/users/me', headers: { origin: 'https://chat.example', 'access-control-request-method': 'GET' } });
    expect(ok.headers['access-control-allow-origin']).toBe('https://chat.example');
    const evil = await s.app.inject({ method: 'OPTIONS', url: '/users/me', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
  });
});
