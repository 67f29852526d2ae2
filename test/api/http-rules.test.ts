import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api, envelope, isErrorShape, type Session } from '../_helpers/api.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';

describeEachDialect('HTTP rules', (dialect) => {
  let s: TestServer;
  let api: Api;
  let alice: Session, bob: Session;
  let chatId: string;

  beforeAll(async () => {
    s = await testServer({ dialect });
    api = new Api(s.app);
    [alice, bob] = await Promise.all([api.register(), api.register()]);
    chatId = (await api.chat(alice, bob)).id;
  });
  afterAll(() => s.close());

  const count = async () => Number((await s.ctx.db.db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  it('refuses malformed and hostile JSON with 400, changing nothing', async () => {
    const before = await count();
    const good = JSON.stringify({ chatId, ...envelope() });
    const bodies = [
      '{',
      '{"a":}',
      "{'a':1}",
      '{"a":NaN}',
      '\ufeff' + good,
      '',
      'null',
      '[]',
      '"s"',
      good.replace('{', '{"chatId":"' + chatId + '",'), // duplicate key
      good.replace('{', '{"__proto__":{"isAdmin":true},'),
      good.replace('{', '{"constructor":{"prototype":{"x":1}},'),
      '['.repeat(20) + ']'.repeat(20),
    ];
    for (const raw of bodies) {
      const res = await api.request('POST', '/messages', { token: alice.token, raw });
      expect(res.status, raw.slice(0, 40)).toBe(400);
      expect(isErrorShape(res.body, 'validation_error')).toBe(true);
    }
    expect(await count()).toBe(before);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  it('refuses invalid UTF-8 and non-JSON content types', async () => {
    const bad = Buffer.concat([Buffer.from('{"username":"ab'), Buffer.from([0xc0, 0xaf]), Buffer.from('c","password":"x"}')]);
    const res = await s.app.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': 'application/json' }, payload: bad });
    expect(res.statusCode).toBe(400);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16']) {
      const r = await api.request('POST', '/auth/login', { raw: '{"username":"abc","password":"abcdefgh"}', headers: { 'content-type': type } });
      expect(r.status, type).toBe(415);
      expect(isErrorShape(r.body, 'unsupported_media_type')).toBe(true);
    }
    const noType = await s.app.inject({ method: 'POST', url: '/auth/login', payload: '{"username":"abc","password":"abcdefgh"}', headers: { 'content-type': '' } });
    expect([400, 415]).toContain(noType.statusCode);
  });

  it('auth bodies over 4 KiB get 413 before any hashing', async () => {
    const res = await api.post('/auth/login', { username: 'someone', password: 'p'.repeat(5000) });
    expect(res.status).toBe(413);
    expect(isErrorShape(res.body, 'payload_too_large')).toBe(true);
  });

  it('unknown routes → 404; known routes with another method → 405 with Allow', async () => {
    const nf = await api.get('/nope', alice.token);
    expect(nf.status).toBe(404);
    expect(isErrorShape(nf.body, 'not_found')).toBe(true);
    const m = await api.request('DELETE', `/messages/${chatId}`, { token: alice.token });
    expect(m.status).toBe(405);
    expect(m.headers.allow).toBe('GET, HEAD');
    const m2 = await api.request('PATCH', '/auth/login');
    expect(m2.status).toBe(405);
    expect(m2.headers.allow).toBe('POST');
  });

  it('GET /ws without a WebSocket upgrade → 400 in the error shape (not an empty 404)', async () => {
    for (const token of [undefined, alice.token]) {
      const res = await api.request('GET', '/ws', { token });
      expect(res.status).toBe(400);
      expect(isErrorShape(res.body, 'validation_error')).toBe(true);
      expect(res.body.error.message).toBe('/ws accepts only a WebSocket upgrade');
    }
  });

  it('sends security headers on every response', async () => {
    for (const res of [await api.get('/health'), await api.get('/nope'), await api.get('/users/me')]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toBe(
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' 'unsafe-inline';connect-src 'self'",
      );
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['strict-transport-security']).toMatch(/^max-age=\d+; includeSubDomains$/);
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
      expect(res.headers['cross-origin-embedder-policy']).toBeUndefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it('a 500 says nothing of what failed but carries the request id that its log line carries', async () => {
    const lines: { reqId?: string; msg?: string; err?: { message?: string } }[] = [];
    const logDestination = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    });
    const broken = await testServer({ dialect, env: { LOG_LEVEL: 'error' }, overrides: { logDestination } });
    try {
      const api2 = new Api(broken.app);
      const carol = await api2.register();
      // A bug's stand-in: a table the route needs is gone.
      await sql`drop table one_time_prekeys`.execute(broken.ctx.db.db);
      const res = await api2.get('/keys/count', carol.token);
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: { code: 'internal_error', message: 'internal error', details: { requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) } } });
      expect(res.text).not.toMatch(/prekeys|sqlite|postgres|relation|table/i);
      const logged = lines.find((l) => l.msg === 'unhandled error');
      expect(logged?.reqId).toBe(res.body.error.details.requestId);
      expect(logged?.err?.message).toMatch(/one_time_prekeys/);
    } finally {
      await broken.close();
    }
  });

  it('never answers with a stack trace or internals', async () => {
    const res = await api.request('POST', '/messages', { token: alice.token, raw: '{"chatId": ' });
    expect(res.text).not.toMatch(/node_modules|at .*:\d+:\d+|SyntaxError/);
  });
});
