import { createHmac } from 'node:crypto';
import { hash } from '@node-rs/argon2';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api, isErrorShape, STRONG_PASSWORD, uniqueName } from '../_helpers/api.js';
import { identityKeyPair } from '../_helpers/keys.js';
import { connect } from '../_helpers/ws.js';
import { describeEachDialect, testServer, TEST_JWT_SECRET, type TestServer } from '../_helpers/server.js';

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The token with one character in the middle of its signature changed (all six of its bits count). */
function tamperSignature(token: string): string {
  const i = token.lastIndexOf('.') + 20;
  return token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
}

function forge(header: object, payload: object, key: Uint8Array | string = TEST_JWT_SECRET): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc(header)}.${enc(payload)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

describeEachDialect('auth', (dialect) => {
  let s: TestServer;
  let api: Api;
  const clock = { now: () => Date.now() + skew };
  let skew = 0;

  beforeAll(async () => {
    s = await testServer({ dialect, overrides: { clock } });
    api = new Api(s.app);
  });
  afterAll(() => s.close());

  it('registers: 201 with user, tokens and expiresIn; never a hash', async () => {
    const username = uniqueName('Reg');
    const res = await api.post('/auth/register', { username, password: STRONG_PASSWORD });
    expect(res.status).toBe(201);
    expect(res.body.user).toEqual({ id: expect.any(String), username, publicKey: null, createdAt: expect.any(String) });
    expect(res.body.expiresIn).toBe(900);
    expect(res.body.accessToken.split('.')).toHaveLength(3);
    expect(res.body.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The tokens are random text (a signature can spell "hasH"): searched everywhere else.
    const { accessToken: _a, refreshToken: _r, ...rest } = res.body;
    expect(JSON.stringify(rest)).not.toMatch(/hash|argon/i);
    expect(res.text).not.toMatch(/\$argon2/);
    expect(new Date(res.body.user.createdAt).toISOString()).toBe(res.body.user.createdAt);
  });

  it('accepts a 32-byte identity publicKey and refuses a malformed one', async () => {
    const key = identityKeyPair().publicKey;
    const ok = await api.post('/auth/register', { username: uniqueName(), password: STRONG_PASSWORD, publicKey: key });
    expect(ok.status).toBe(201);
    expect(ok.body.user.publicKey).toBe(key);
    const notAPoint = Buffer.alloc(32, 0xff).toString('base64');
    const smallOrder = Buffer.alloc(32).toString('base64');
    for (const bad of [Buffer.alloc(31).toString('base64'), 'QUJD$$$$', Buffer.alloc(32, 0xfb).toString('base64url'), notAPoint, smallOrder]) {
      const res = await api.post('/auth/register', { username: uniqueName(), password: STRONG_PASSWORD, publicKey: bad });
      expect(res.status).toBe(400);
    }
  });

  it('usernames are unique case-insensitively (409)', async () => {
    const name = uniqueName('Case');
    await api.register(name);
    const res = await api.post('/auth/register', { username: name.toUpperCase(), password: STRONG_PASSWORD });
    expect(res.status).toBe(409);
    expect(isErrorShape(res.body, 'conflict')).toBe(true);
  });

  it('validates username and password', async () => {
    const cases: [unknown, unknown][] = [
      ['ab', STRONG_PASSWORD],
      ['a'.repeat(33), STRONG_PASSWORD],
      ['has space', STRONG_PASSWORD],
      ['bad\u0000nul', STRONG_PASSWORD],
      ['emoji😀x', STRONG_PASSWORD],
      [uniqueName(), 'short7!'],
      [uniqueName(), 'x'.repeat(257)],
      [uniqueName(), 'lone\ud800surrogate'],
      [123, STRONG_PASSWORD],
      [uniqueName(), null],
    ];
    for (const [username, password] of cases) {
      const res = await api.post('/auth/register', { username, password });
      expect(res.status, JSON.stringify(username)).toBe(400);
      expect(isErrorShape(res.body, 'validation_error')).toBe(true);
    }
    expect((await api.post('/auth/register', { username: uniqueName(), password: 'Tq7-'.repeat(64) })).status).toBe(201);
    expect((await api.post('/auth/register', { username: uniqueName(), password: '12345678' })).status).toBe(400);
  });

  it('refuses common passwords with a reason', async () => {
    const res = await api.post('/auth/register', { username: uniqueName(), password: 'password123' });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].reason).toBe('weak_password');
  });

  it('refuses unknown fields (mass assignment)', async () => {
    const res = await api.post('/auth/register', { username: uniqueName(), password: STRONG_PASSWORD, isAdmin: true });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].reason).toBe('unknown_field');
  });

  it('logs in; unknown user and wrong password get the same 401', async () => {
    const u = await api.register();
    const ok = await api.post('/auth/login', { username: u.username.toUpperCase(), password: u.password });
    expect(ok.status).toBe(200);
    expect(ok.body.user.id).toBe(u.id);
    const wrong = await api.post('/auth/login', { username: u.username, password: 'not-the-password' });
    const unknown = await api.post('/auth/login', { username: uniqueName('ghost'), password: 'not-the-password' });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual(unknown.body);
    expect(isErrorShape(wrong.body, 'unauthorized')).toBe(true);
  });

  it('rotates refresh tokens: the old one stops working', async () => {
    const u = await api.register();
    const r1 = await api.post('/auth/refresh-token', { refreshToken: u.refreshToken });
    expect(r1.status).toBe(200);
    expect(Object.keys(r1.body).sort()).toEqual(['accessToken', 'expiresIn', 'refreshToken']);
    expect(r1.body.refreshToken).not.toBe(u.refreshToken);
    expect((await api.get('/users/me', r1.body.accessToken)).status).toBe(200);
    const r2 = await api.post('/auth/refresh-token', { refreshToken: r1.body.refreshToken });
    expect(r2.status).toBe(200);
  });

  it('reuse of a rotated token revokes the whole family, access tokens included', async () => {
    const u = await api.register();
    const other = await api.post('/auth/login', { username: u.username, password: u.password });
    const r1 = await api.post('/auth/refresh-token', { refreshToken: u.refreshToken });
    expect(r1.status).toBe(200);
    const reuse = await api.post('/auth/refresh-token', { refreshToken: u.refreshToken });
    expect(reuse.status).toBe(401);
    expect((await api.post('/auth/refresh-token', { refreshToken: r1.body.refreshToken })).status).toBe(401);
    expect((await api.get('/users/me', r1.body.accessToken)).status).toBe(401);
    expect((await api.get('/users/me', u.token)).status).toBe(401);
    // Another login of the same user is a different family and keeps working.
    expect((await api.get('/users/me', other.body.accessToken)).status).toBe(200);
  });

  it('concurrent refreshes with one token: at most one succeeds and the family ends revoked', async () => {
    const u = await api.register();
    const results = await Promise.all(Array.from({ length: 10 }, () => api.post('/auth/refresh-token', { refreshToken: u.refreshToken })));
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeLessThanOrEqual(1);
    expect(results.filter((r) => r.status === 401).length).toBeGreaterThanOrEqual(9);
    for (const r of ok) expect((await api.get('/users/me', r.body.accessToken)).status).toBe(401);
  });

  it('logout revokes the family: refresh and access tokens both stop working', async () => {
    const u = await api.register();
    const res = await api.post('/auth/logout', { refreshToken: u.refreshToken });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect((await api.post('/auth/refresh-token', { refreshToken: u.refreshToken })).status).toBe(401);
    expect((await api.get('/users/me', u.token)).status).toBe(401);
    expect((await api.post('/auth/logout', { refreshToken: 'A'.repeat(43) })).status).toBe(401);
  });

  it('refuses malformed refresh tokens and access tokens used as refresh tokens', async () => {
    const u = await api.register();
    expect((await api.post('/auth/refresh-token', { refreshToken: u.token })).status).toBe(401);
    expect((await api.post('/auth/refresh-token', { refreshToken: 'nope' })).status).toBe(401);
    expect((await api.post('/auth/refresh-token', {})).status).toBe(400);
    expect((await api.get('/users/me', u.refreshToken)).status).toBe(401);
  });

  it('access tokens: algorithm pinned, typ/iss/aud/exp checked, forged ones refused', async () => {
    const u = await api.register();
    const [h, p] = u.token.split('.').map((x, i) => (i < 2 ? JSON.parse(Buffer.from(x, 'base64url').toString()) : x));
    expect(h).toEqual({ alg: 'HS256', typ: 'at+jwt' });
    expect(p).toMatchObject({ sub: u.id, iss: 'safechat', aud: 'safechat-api', sid: expect.any(String), jti: expect.any(String) });
    expect(p.exp - p.iat).toBe(900);
    // Sanity: re-signing the same header and claims with the real key is accepted.
    expect((await api.get('/users/me', forge(h, p))).status).toBe(200);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(p)).toString('base64url')}.`;
    const forged = [
      none,
      none.replace('none', 'NoNe'),
      forge({ ...h, alg: 'HS512' }, p),
      forge(h, p, 'attacker-key-attacker-key-attacker'),
      forge({ ...h, typ: 'JWT' }, p),
      forge(h, { ...p, aud: 'other' }),
      forge(h, { ...p, iss: 'other' }),
      forge(h, { ...p, exp: Math.floor(Date.now() / 1000) - 60 }),
      forge(h, { ...p, iat: Math.floor(Date.now() / 1000) + 3600, exp: Math.floor(Date.now() / 1000) + 7200 }),
      forge(h, { ...p, nbf: Math.floor(Date.now() / 1000) + 600 }),
      forge(h, { ...p, sub: '00000000-0000-7000-8000-000000000000' }),
      forge({ ...h, jwk: { kty: 'oct', k: 'AAAA' } }, p, 'AAAA'),
      tamperSignature(u.token),
      // The same signature bytes spelled with the last character's two unused bits set.
      u.token.slice(0, -1) + B64URL[B64URL.indexOf(u.token.at(-1)!) | 1],
    ];
    for (const t of forged) {
      const res = await api.get('/users/me', t);
      expect(res.status, t).toBe(401);
      expect(isErrorShape(res.body, 'unauthorized')).toBe(true);
    }
    // Tokens only count in the Authorization header.
    expect((await api.get(`/users/me?access_token=${u.token}`)).status).toBe(401);
    expect((await api.request('GET', '/users/me', { headers: { authorization: `Basic ${u.token}` } })).status).toBe(401);
  });

  it('an access token expires after its TTL', async () => {
    const u = await api.register();
    skew = 16 * 60 * 1000;
    try {
      const res = await api.get('/users/me', u.token);
      expect(res.status).toBe(401);
      expect(res.body.error.message).toMatch(/expired/);
      // The refresh token still works and yields a usable access token.
      const r = await api.post('/auth/refresh-token', { refreshToken: u.refreshToken });
      expect(r.status).toBe(200);
      expect((await api.get('/users/me', r.body.accessToken)).status).toBe(200);
    } finally {
      skew = 0;
    }
  });

  it('T-AUTH-02: a password stored with weaker Argon2id parameters is re-hashed at the policy on the next login', async () => {
    const u = await api.register();
    // algorithm 2 is Argon2id (the package's const enum is not importable here).
    const weak = await hash(u.password, { algorithm: 2, memoryCost: 1024, timeCost: 1, parallelism: 1 });
    await s.ctx.db.db.updateTable('users').set({ password_hash: weak }).where('id', '=', u.id).execute();
    const stored = async () => (await s.ctx.db.db.selectFrom('users').select('password_hash').where('id', '=', u.id).executeTakeFirstOrThrow()).password_hash;
    expect((await api.post('/auth/login', { username: u.username, password: 'wrong-password-1' })).status).toBe(401);
    expect(await stored()).toBe(weak);
    expect((await api.post('/auth/login', { username: u.username, password: u.password })).status).toBe(200);
    const now = await stored();
    expect(now).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(now).not.toBe(weak);
    // The new hash works.
    expect((await api.post('/auth/login', { username: u.username, password: u.password })).status).toBe(200);
  });

  it('T-JWT-13: a login ends after 30 days unused (refresh idle expiry) and 90 days after it began however often it is used', async () => {
    const DAY = 86_400_000;
    const refresh = (refreshToken: string) => api.post('/auth/refresh-token', { refreshToken });
    try {
      const idle = await api.register();
      skew = 30 * DAY + 60_000;
      expect((await refresh(idle.refreshToken)).status).toBe(401);

      skew = 0;
      const busy = await api.register();
      let token = busy.refreshToken;
      for (const day of [29, 58, 87]) {
        skew = day * DAY;
        const r = await refresh(token);
        expect(r.status, `refresh on day ${day}`).toBe(200);
        token = r.body.refreshToken;
      }
      skew = 90 * DAY + 60_000;
      const late = await refresh(token);
      expect(late.status).toBe(401);
      expect(isErrorShape(late.body, 'unauthorized')).toBe(true);
    } finally {
      skew = 0;
    }
  });

  it('stores Argon2id with explicit OWASP parameters, a random salt per user', async () => {
    const a = await api.register(uniqueName(), STRONG_PASSWORD);
    const b = await api.register(uniqueName(), STRONG_PASSWORD);
    const rows = await s.ctx.db.db.selectFrom('users').select(['id', 'password_hash']).where('id', 'in', [a.id, b.id]).execute();
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22,}\$[A-Za-z0-9+/]{43}$/);
    expect(rows[0]!.password_hash).not.toBe(rows[1]!.password_hash);
  });

  it('stores refresh tokens only as hashes', async () => {
    const u = await api.register();
    const rows = await s.ctx.db.db.selectFrom('refresh_tokens').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(u.refreshToken);
  });
});

describeEachDialect('password change and account deletion', (dialect) => {
  let s: TestServer;
  let api: Api;
  beforeAll(async () => {
    s = await testServer({ dialect, listen: true });
    api = new Api(s.app);
  });
  afterAll(() => s.close());

  it('changing the password needs the current one, ends every session and returns a new pair', async () => {
    const u = await api.register();
    const other = (await api.post('/auth/login', { username: u.username, password: u.password })).body;
    const ws = await connect(s.wsUrl, other.accessToken);
    expect((await api.request('POST', '/auth/change-password', { token: u.token, body: { currentPassword: 'wrong-one-123', newPassword: 'fresh-Meadow-77-kite' } })).status).toBe(401);
    expect((await api.request('POST', '/auth/change-password', { token: u.token, body: { currentPassword: u.password, newPassword: 'password1' } })).status).toBe(400);
    const res = await api.request('POST', '/auth/change-password', { token: u.token, body: { currentPassword: u.password, newPassword: 'fresh-Meadow-77-kite' } });
    expect(res.status).toBe(200);
    expect(await ws.waitClose(3000)).toBe(4401);
    for (const t of [u.token, other.accessToken]) expect((await api.get('/users/me', t)).status).toBe(401);
    for (const r of [u.refreshToken, other.refreshToken]) expect((await api.post('/auth/refresh-token', { refreshToken: r })).status).toBe(401);
    expect((await api.get('/users/me', res.body.accessToken)).status).toBe(200);
    expect((await api.post('/auth/login', { username: u.username, password: u.password })).status).toBe(401);
    expect((await api.post('/auth/login', { username: u.username, password: 'fresh-Meadow-77-kite' })).status).toBe(200);
  });

  it('deleting the account needs the password and ends every token and socket at once', async () => {
    const u = await api.register();
    const peer = await api.register();
    await api.send(peer, { receiverId: u.id });
    const ws = await connect(s.wsUrl, u.token);
    expect((await api.request('DELETE', '/users/me', { token: u.token, body: { password: 'nope-nope-nope' } })).status).toBe(401);
    const res = await api.request('DELETE', '/users/me', { token: u.token, body: { password: u.password } });
    expect(res.status).toBe(204);
    expect(await ws.waitClose(3000)).toBe(4401);
    expect((await api.get('/users/me', u.token)).status).toBe(401);
    expect((await api.post('/auth/refresh-token', { refreshToken: u.refreshToken })).status).toBe(401);
    expect((await api.post('/auth/login', { username: u.username, password: u.password })).status).toBe(401);
    expect((await api.get(`/users/${u.id}`, peer.token)).status).toBe(404);
    // The name is free again.
    expect((await api.post('/auth/register', { username: u.username, password: STRONG_PASSWORD })).status).toBe(201);
  });

  it('keeps at most 10 sessions per account: the least recently used ends', async () => {
    const u = await api.register();
    const logins = [];
    for (let i = 0; i < 10; i++) logins.push((await api.post('/auth/login', { username: u.username, password: u.password })).body);
    expect((await api.get('/users/me', u.token)).status).toBe(401);
    for (const l of logins) expect((await api.get('/users/me', l.accessToken)).status).toBe(200);
  });
});
