/**
 * SECURITY.md T-LOG-01/02 and T-JWT-18 (DATA-02, TOK-11): everything a server logs at debug level
 * during a full session — registration, logins good and bad (one with CR/LF in the username), token
 * refresh and reuse, a rate-limited login, messages over REST and WebSocket, a password change,
 * a token in a query string, logout — is captured, then:
 *   - no line contains any password, access token (or its signature), refresh token, ciphertext,
 *     IV or MAC that the session used;
 *   - every line is one JSON record: a CR/LF username cannot start a forged line.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api, envelope, uniqueName } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, connectByFrame, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';
import { LIMITS } from '../../src/limits/catalog.js';

describeEachDialect('log redaction', (dialect) => {
  let srv: WsServer;
  const lines: string[] = [];
  /** Every secret the session handled; none may appear in a log line. */
  const secrets = new Map<string, string>();
  const keep = (what: string, value: string | undefined) => {
    if (value) secrets.set(value, what);
  };
  const ids: { alice?: string; bob?: string; outsider?: string } = {};
  const INJECTED = ['mallory-crlf\nINFO fake entry: admin logged in', 'xavier-crlf\r\n{"level":30,"msg":"forged"}', 'yolanda-crlf\u2028z\u0085w'];

  beforeAll(async () => {
    let partial = '';
    const logDestination = new Writable({
      write(chunk: Buffer, _enc, done) {
        const text = partial + chunk.toString('utf8');
        const parts = text.split('\n');
        partial = parts.pop()!;
        lines.push(...parts);
        done();
      },
    });
    srv = await wsServer({ dialect, env: { LOG_LEVEL: 'debug' }, overrides: { logDestination } });

    const pw = () => `Pw-${randomBytes(9).toString('base64url')}-secret`;
    const apiFrom = (ip: string) => new Api(srv.app, ip);
    const [aliceApi, bobApi] = [apiFrom('10.200.0.1'), apiFrom('10.200.0.2')];
    const alicePw = pw();
    const bobPw = pw();
    keep('alice password', alicePw);
    keep('bob password', bobPw);
    const alice = await aliceApi.register(uniqueName('alice'), alicePw);
    const bob = await bobApi.register(uniqueName('bob'), bobPw);
    for (const s of [alice, bob]) {
      keep('access token', s.token);
      keep('access token signature', s.token.split('.')[2]);
      keep('refresh token', s.refreshToken);
    }

    // Logins: good, wrong password, unknown user, CR/LF in the name, then throttled.
    const good = await aliceApi.post('/auth/login', { username: alice.username, password: alicePw });
    expect(good.status).toBe(200);
    keep('access token', good.body.accessToken);
    keep('refresh token', good.body.refreshToken);
    const wrong = [pw(), pw()];
    wrong.forEach((p) => keep('wrong password', p));
    await aliceApi.post('/auth/login', { username: alice.username, password: wrong[0] });
    await aliceApi.post('/auth/login', { username: uniqueName('ghost'), password: wrong[1] });
    for (const username of INJECTED) {
      const p = pw();
      keep('password of a CR/LF login', p);
      expect((await apiFrom('10.200.0.3').post('/auth/login', { username, password: p })).status).toBe(401);
      expect((await apiFrom('10.200.0.3').post('/auth/register', { username, password: p })).status).toBe(400);
    }
    const target = uniqueName('target');
    for (let i = 0; i <= LIMITS.loginFailuresPerAccount.burst; i++) {
      const p = pw();
      keep('brute-force password', p);
      await apiFrom(`10.200.1.${i}`).post('/auth/login', { username: target, password: p });
    }

    // Refresh, then reuse of the rotated token (revokes the family, logged as a warning).
    const r1 = await bobApi.post('/auth/refresh-token', { refreshToken: bob.refreshToken });
    expect(r1.status).toBe(200);
    keep('access token', r1.body.accessToken);
    keep('refresh token', r1.body.refreshToken);
    expect((await bobApi.post('/auth/refresh-token', { refreshToken: bob.refreshToken })).status).toBe(401);
    const bobLogin = await bobApi.post('/auth/login', { username: bob.username, password: bobPw });
    keep('access token', bobLogin.body.accessToken);
    keep('refresh token', bobLogin.body.refreshToken);
    const bobToken = bobLogin.body.accessToken as string;

    // Messages over REST and over the socket; a token in a URL; bad frames.
    const aliceWs = await connect(srv.wsUrl, good.body.accessToken);
    const bobWs = await connectByFrame(srv.wsUrl, bobToken);
    for (let i = 0; i < 3; i++) {
      const e = envelope(48);
      Object.entries(e).forEach(([k, v]) => k !== 'type' && keep(k, v));
      const m = await srv.api.post('/messages', { receiverId: bob.id, ...e, clientMessageId: `log-${i}` }, good.body.accessToken);
      expect(m.status).toBe(201);
      await srv.api.put(`/messages/${m.body.id}/status`, { status: 'read' }, bobToken);
    }
    // Authorization denied (the sender may not set her own message's status) and a refused bearer token.
    const own = await srv.api.post('/messages', { receiverId: bob.id, ...envelope(16) }, good.body.accessToken);
    expect((await aliceApi.put(`/messages/${own.body.id}/status`, { status: 'read' }, good.body.accessToken)).status).toBe(403);
    expect((await aliceApi.get('/users/me', `${good.body.accessToken.slice(0, -2)}xx`)).status).toBe(401);
    // A non-member asking for the chat: the same 404 as for a missing one, but logged as a denial.
    const outsider = await apiFrom('10.200.0.4').register(uniqueName('outsider'), pw());
    expect((await apiFrom('10.200.0.4').get(`/chats/${own.body.chatId}`, outsider.token)).status).toBe(404);
    expect((await apiFrom('10.200.0.4').get(`/chats/${randomUUID()}`, outsider.token)).status).toBe(404);
    ids.outsider = outsider.id;
    ids.alice = alice.id;
    ids.bob = bob.id;
    const e = envelope(48);
    Object.entries(e).forEach(([k, v]) => k !== 'type' && keep(k, v));
    expect((await aliceWs.request('ws-1', { receiverId: bob.id, ...e })).type).toBe('message.sent');
    aliceWs.send('{"type":"message.send","requestId":"bad","data":{"encryptedContent":"' + e.encryptedContent + '"}}');
    aliceWs.send(`{"type":"auth","token":"${good.body.accessToken}"}`);
    await bobWs.next((f) => f.type === 'message.new' && f.data.encryptedContent === e.encryptedContent);
    await srv.api.get(`/users/me?access_token=${good.body.accessToken}`);
    const q = new TestSocket(`${srv.wsUrl}?access_token=${bobToken}`);
    await q.refused();
    const bad = new TestSocket(srv.wsUrl, { token: `${bobToken}x` });
    await bad.refused();

    // A password change (both passwords are secrets), then logout.
    const newPw = pw();
    keep('new password', newPw);
    const change = await srv.api.post('/auth/change-password', { currentPassword: alicePw, newPassword: newPw }, good.body.accessToken);
    if (change.status === 200) {
      keep('access token', change.body.accessToken);
      keep('refresh token', change.body.refreshToken);
    }
    await srv.api.post('/auth/logout', { refreshToken: bobLogin.body.refreshToken });
    closeAllSockets();
    await new Promise((r) => setTimeout(r, 100));
  });
  afterAll(() => srv.close());

  it('the session was logged (the checks below are not vacuous)', () => {
    const msgs = lines.map((l) => (JSON.parse(l) as { msg?: string }).msg);
    for (const m of ['user registered', 'login succeeded', 'login failed', 'rate limited']) expect(msgs, m).toContain(m);
    expect(msgs.some((m) => m?.includes('reuse'))).toBe(true);
    expect(secrets.size).toBeGreaterThan(30);
  });

  it('T-LOG-01: no password, token, refresh token, ciphertext, IV or MAC in any line', () => {
    const found: string[] = [];
    for (const [value, what] of secrets) {
      const escaped = JSON.stringify(value).slice(1, -1);
      lines.forEach((line, i) => {
        if (line.includes(value) || line.includes(escaped)) found.push(`${what} in line ${i}: ${line.slice(0, 200)}`);
      });
    }
    expect(found).toEqual([]);
  });

  it('T-LOG-02: every line is exactly one JSON record; a CR/LF username cannot forge a line', () => {
    for (const line of lines) {
      expect(() => JSON.parse(line), line.slice(0, 200)).not.toThrow();
      const rec = JSON.parse(line) as Record<string, unknown>;
      expect(typeof rec.level, line.slice(0, 200)).toBe('number');
      expect(rec.msg).not.toBe('forged');
    }
    expect(lines.some((l) => /^\s*INFO fake entry/.test(l))).toBe(false);
    // If a name is logged at all, it is inside a JSON string with its line breaks escaped.
    for (const name of INJECTED) {
      const head = name.split(/[\r\n\u2028\u0085]/)[0]!;
      for (const line of lines.filter((l) => l.includes(head))) expect(line).toContain(JSON.stringify(name).slice(1, -1));
    }
  });

  it('the failed logins are one line each', () => {
    const failed = lines.filter((l) => (JSON.parse(l) as { msg?: string }).msg === 'login failed');
    // alice's wrong password, the unknown user, the CR/LF names, the brute force up to its limit.
    expect(failed.length).toBe(2 + INJECTED.length + LIMITS.loginFailuresPerAccount.burst);
  });

  it('T-LOG-03 / DATA-03: security events are one line each, with the user (when known), the address and the UTC time', () => {
    type Rec = { msg?: string; time?: string; ip?: string; userId?: string; familyId?: string; limit?: string; route?: string; reason?: string };
    const recs = lines.map((l) => JSON.parse(l) as Rec);
    const of = (msg: string) => recs.filter((r) => r.msg === msg);
    for (const r of recs) if (r.time !== undefined) expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const failed = of('login failed');
    expect(failed.filter((r) => r.userId === ids.alice)).toHaveLength(1);
    expect(failed.every((r) => typeof r.ip === 'string')).toBe(true);
    expect(of('login succeeded').some((r) => r.userId === ids.alice && r.ip === '10.200.0.1')).toBe(true);
    expect(of('session refreshed')).toEqual([expect.objectContaining({ userId: ids.bob, familyId: expect.any(String), ip: '10.200.0.2' })]);
    expect(of('refresh token reuse detected: family revoked')).toEqual([expect.objectContaining({ userId: ids.bob, familyId: expect.any(String), ip: '10.200.0.2' })]);
    expect(of('rate limited')).toContainEqual(expect.objectContaining({ limit: 'loginFailuresPerAccount', ip: expect.stringMatching(/^10\.200\.1\./) }));
    // The 403, and the non-member's 404 (not the 404 for a chat that does not exist).
    expect(of('authorization denied')).toEqual([
      expect.objectContaining({ userId: ids.alice, ip: '10.200.0.1', route: '/messages/:id/status' }),
      expect.objectContaining({ userId: ids.outsider, ip: '10.200.0.4', route: '/chats/:chatId', reason: 'not a member (answered 404)' }),
    ]);
    // The refused bearer token over REST, and the one on a WebSocket upgrade.
    expect(of('authentication failed')).toEqual([
      expect.objectContaining({ ip: '10.200.0.1', reason: 'invalid access token', route: '/users/me' }),
      expect.objectContaining({ ip: '127.0.0.1', reason: 'invalid access token', route: '/ws' }),
    ]);
  });
});
