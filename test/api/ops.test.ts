import { afterAll, beforeAll, expect, it } from 'vitest';
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
