import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDatabase } from '../../src/storage/db.js';
import { Api } from '../_helpers/api.js';
import { testServer, type TestServer } from '../_helpers/server.js';

let s: TestServer;
let api: Api;
beforeAll(async () => {
  s = await testServer();
  api = new Api(s.app);
});
afterAll(() => s.close());

it('GET /health answers ok when the database answers', async () => {
  const res = await api.get('/health');
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ status: 'ok', checks: { database: 'ok' } });
  expect((await api.get('/health/live')).body).toEqual({ status: 'ok' });
});

it('GET /metrics exposes HTTP, WebSocket and message counters', async () => {
  const a = await api.register();
  const b = await api.register();
  await api.send(a, { receiverId: b.id });
  const res = await api.get('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/text\/plain/);
  expect(res.text).toMatch(/safechat_http_requests_total\{method="POST",route="\/messages",status="201"\} 1/);
  expect(res.text).toMatch(/safechat_messages_stored_total 1/);
  expect(res.text).toMatch(/safechat_ws_connections 0/);
  expect(res.text).toMatch(/safechat_ws_events_sent_total/);
});

it('GET /openapi.json documents every route with its schemas', async () => {
  const res = await api.get('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.body.openapi).toBe('3.0.3');
  const paths = Object.keys(res.body.paths);
  for (const p of ['/auth/register', '/auth/login', '/auth/refresh-token', '/auth/logout', '/users/me', '/users/{id}', '/users', '/chats', '/chats/{chatId}', '/messages', '/messages/{chatId}', '/messages/{id}/status', '/health', '/metrics']) {
    expect(paths, p).toContain(p);
  }
  const send = res.body.paths['/messages'].post;
  expect(send.requestBody.content['application/json'].schema.properties.iv).toBeDefined();
  expect(send.responses['201']).toBeDefined();
  expect(send.security).toEqual([{ bearer: [] }]);
});

it('GET /docs serves the browsable documentation without outside assets', async () => {
  const res = await s.app.inject({ method: 'GET', url: '/docs/' });
  expect(res.statusCode).toBe(200);
  expect(res.body).toMatch(/swagger/i);
  expect(res.body).not.toMatch(/https?:\/\/(cdn|unpkg)/);
});

it('GET /metrics counts refusals by limit and status changes by status', async () => {
  const a = await api.register();
  const b = await api.register();
  const m = await api.send(a, { receiverId: b.id });
  await api.put(`/messages/${m.id}/status`, { status: 'read' }, b.token);
  for (let i = 0; i < 6; i++) await api.post('/auth/login', { username: 'nobody_metrics', password: 'wrong-password-1' });
  const text = (await api.get('/metrics')).text;
  expect(text).toMatch(/safechat_message_status_updates_total\{status="read"\} 1/);
  expect(text).toMatch(/safechat_rate_limited_total\{limit="loginFailuresPerAccount"\} 1/);
});

it('GET /metrics reports the database: nothing waiting when idle, its one writer (SQLite)', async () => {
  const text = (await api.get('/metrics')).text;
  expect(text).toMatch(/^safechat_db_waiting 0$/m);
  expect(text).toMatch(/^safechat_db_connections\{state="idle"\} 1$/m);
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('metrics on PostgreSQL', () => {
  it('GET /metrics shows requests waiting for a pooled connection while the pool is exhausted', async () => {
    const pg = await testServer({ dialect: 'postgres', cfg: (cfg) => cfg.db.kind === 'postgres' && (cfg.db.poolSize = 1) });
    try {
      const papi = new Api(pg.app);
      const [a, b] = await Promise.all([papi.register(), papi.register()]);
      const held = await (pg.ctx.db as PostgresDatabase).pool.connect();
      let released = false;
      try {
        const sends = [papi.send(a, { receiverId: b.id }), papi.send(b, { receiverId: a.id })];
        let text = '';
        for (let i = 0; i < 100 && !/^safechat_db_waiting 2$/m.test(text); i++) {
          await new Promise((r) => setTimeout(r, 10));
          text = (await papi.get('/metrics')).text;
        }
        expect(text).toMatch(/^safechat_db_waiting 2$/m);
        expect(text).toMatch(/^safechat_db_connections\{state="busy"\} 1$/m);
        expect(text).toMatch(/^safechat_db_connections\{state="idle"\} 0$/m);
        held.release();
        released = true;
        await Promise.all(sends);
        expect((await papi.get('/metrics')).text).toMatch(/^safechat_db_waiting 0$/m);
      } finally {
        if (!released) held.release();
      }
    } finally {
      await pg.close();
    }
  });
});
