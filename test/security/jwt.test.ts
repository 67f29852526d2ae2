/**
 * SECURITY.md §4b JWT suite, T-JWT-01…11, 18, 19: every forged, tampered or misplaced token is sent
 * to a protected REST route (GET /users/me), to the WebSocket handshake (Authorization header:
 * HTTP 401, no 101) and as a first-frame `auth` (close 4401, no `ready`).
 *
 * Every token below is built from a real, accepted token by changing exactly one thing; the
 * control test re-signs the unchanged claims with the server's key and expects 200, so a refusal
 * is due to the attacked property and nothing else.
 *
 * Rate limits are off on this server: the table opens more upgrades from 127.0.0.1 than the per-IP
 * handshake limit allows, and limits are limits.test.ts's subject.
 */
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../_helpers/api.js';
import { describeEachDialect, TEST_JWT_SECRET } from '../_helpers/server.js';
import { closeAllSockets, sleep, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';
import { expectError, expectErrorBody, headerSafe, rawHttp, unchanged } from './_support.js';

/** The verifier's clock tolerance, read from src/domain/tokens.ts so it is stated in one place. */
const TOLERANCE_SEC = Number(/CLOCK_TOLERANCE_SEC = (\d+)/.exec(fs.readFileSync(new URL('../../src/domain/tokens.ts', import.meta.url), 'utf8'))?.[1]);

type Json = Record<string, unknown>;
const b64u = (v: Json | Buffer | string) => Buffer.from(typeof v === 'object' && !Buffer.isBuffer(v) ? JSON.stringify(v) : v).toString('base64url');
const hmac = (alg: 'sha256' | 'sha384' | 'sha512', key: string | Uint8Array, input: string) => createHmac(alg, key).update(input).digest('base64url');

/** A compact JWS signed with HMAC (HS256 unless the header says HS384/HS512), any key material. */
function forge(header: Json, payload: Json, key: string | Uint8Array = TEST_JWT_SECRET): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  const alg = header.alg === 'HS384' ? 'sha384' : header.alg === 'HS512' ? 'sha512' : 'sha256';
  return `${input}.${hmac(alg, key, input)}`;
}

/** A token signed by an asymmetric key the attacker holds, with whatever header they like. */
function signWith(alg: string, privateKey: KeyObject, header: Json, payload: Json): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ ...header, alg }).sign(privateKey);
}

const decode = (token: string) => {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Json, payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) as Json, sig: s! };
};

/** Flips one bit of a base64url segment's decoded bytes. */
function flipBit(segment: string, byte: number, bit = 0): string {
  const b = Buffer.from(segment, 'base64url');
  const i = byte < 0 ? b.length + byte : byte;
  b[i] = b[i]! ^ (1 << bit);
  return b.toString('base64url');
}

describeEachDialect('JWT attacks', (dialect) => {
  let srv: WsServer;
  let alice: Session, bob: Session;
  let H: Json, P: Json, SIG: string;
  const now = () => Math.floor(Date.now() / 1000);

  // A listener standing in for an attacker's key server: jku/x5u/kid point here; nothing may connect.
  const canary = net.createServer((sock) => {
    canaryHits.push(new Date().toISOString());
    sock.destroy();
  });
  const canaryHits: string[] = [];
  let canaryUrl = '';

  // Attacker key pairs; their public halves are the "public-key-shaped material" of T-JWT-02.
  const ed = generateKeyPairSync('ed25519');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

  beforeAll(async () => {
    expect(TOLERANCE_SEC).toBeGreaterThan(0);
    srv = await wsServer({ dialect, env: { RATE_LIMITS: 'off' } });
    [alice, bob] = await Promise.all([srv.user(), srv.user()]);
    ({ header: H, payload: P, sig: SIG } = decode(alice.token));
    await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
    canaryUrl = `http://127.0.0.1:${(canary.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    canary.close();
    await srv.close();
  });
  afterEach(() => closeAllSockets());

  /** REST 401, WebSocket upgrade 401 (no 101), first-frame auth close 4401 (no `ready`). */
  async function expectRefused(token: string, label: string, wsUpgradeStatus = 401, frameClose = 4401): Promise<void> {
    await unchanged(srv, async () => {
      const rest = await srv.api.request('GET', '/users/me', { headers: { authorization: `Bearer ${token}` } });
      expectError(rest, 401, 'unauthorized', `REST ${label}`);

      if (headerSafe(token)) {
        const up = new TestSocket(srv.wsUrl, { token });
        const res = await up.refused();
        expect(res.status, `WS upgrade ${label}`).toBe(wsUpgradeStatus);
        if (wsUpgradeStatus === 401) expectErrorBody(res.body, `WS upgrade ${label}`);
        expect(up.frames, `WS upgrade ${label}`).toEqual([]);
        up.close();
      }

      const byFrame = new TestSocket(srv.wsUrl);
      await byFrame.opened;
      byFrame.send({ type: 'auth', token });
      expect(await byFrame.waitClose(), `WS auth frame ${label}`).toBe(frameClose);
      expect(byFrame.frames, `WS auth frame ${label}`).toEqual([]);
    }, label);
  }

  it('control: the unchanged claims re-signed with the server key are accepted on all three paths', async () => {
    const token = forge(H, P);
    expect((await srv.api.get('/users/me', token)).status).toBe(200);
    const up = new TestSocket(srv.wsUrl, { token });
    await up.next((f) => f.type === 'ready');
    const byFrame = new TestSocket(srv.wsUrl);
    await byFrame.opened;
    byFrame.send({ type: 'auth', token });
    await byFrame.next((f) => f.type === 'ready');
  });

  type Row = [id: string, what: string, make: () => string | Promise<string>];

  const rows = (): Row[] => [
    // ---- T-JWT-01: alg none, any spelling ----
    ...['none', 'None', 'NONE', 'nOnE', 'noNE'].map((alg): Row => ['T-JWT-01', `alg "${alg}", empty signature`, () => `${b64u({ ...H, alg })}.${b64u(P)}.`]),
    ['T-JWT-01', 'alg "none" keeping the original signature', () => `${b64u({ ...H, alg: 'none' })}.${b64u(P)}.${SIG}`],
    ['T-JWT-01', 'no alg at all', () => forge({ typ: H.typ }, P)],
    ['T-JWT-01', 'alg as an array', () => forge({ ...H, alg: ['HS256'] }, P)],
    ['T-JWT-01', 'alg empty string', () => forge({ ...H, alg: '' }, P)],

    // ---- T-JWT-02: HMAC keyed with public-key material (fast-jwt CVE-2023-48223 / CVE-2026-34950) ----
    ...(() => {
      const materials: [string, string | Buffer][] = [];
      for (const [name, kp] of [['Ed25519', ed], ['P-256', ec], ['RSA', rsa]] as const) {
        const pem = kp.publicKey.export({ type: 'spki', format: 'pem' }).toString();
        materials.push(
          [`${name} PEM`, pem],
          [`${name} PEM, leading newline`, `\n${pem}`],
          [`${name} PEM, leading spaces`, `   ${pem}`],
          [`${name} PEM, leading tab`, `\t${pem}`],
          [`${name} PEM, no trailing newline`, pem.trimEnd()],
          [`${name} PEM, CRLF line ends`, pem.replace(/\n/g, '\r\n')],
          [`${name} DER`, kp.publicKey.export({ type: 'spki', format: 'der' })],
          [`${name} JWK JSON`, JSON.stringify(kp.publicKey.export({ format: 'jwk' }))],
        );
      }
      materials.push(['raw 32-byte Ed25519 key', Buffer.from(ed.publicKey.export({ format: 'jwk' }).x!, 'base64url')]);
      return materials.map(([what, key]): Row => ['T-JWT-02', `HS256 keyed with ${what}`, () => forge(H, P, key)]);
    })(),
    ['T-JWT-02', 'EdDSA signed by an attacker key', () => signWith('EdDSA', ed.privateKey, H, P)],
    ['T-JWT-02', 'ES256 signed by an attacker key', () => signWith('ES256', ec.privateKey, H, P)],
    ['T-JWT-02', 'RS256 signed by an attacker key', () => signWith('RS256', rsa.privateKey, H, P)],
    ['T-JWT-02', 'PS256 signed by an attacker key', () => signWith('PS256', rsa.privateKey, H, P)],

    // ---- T-JWT-03: right algorithm family, wrong key ----
    ['T-JWT-03', 'HS256, attacker secret', () => forge(H, P, 'attacker-chosen-secret-attacker-chosen')],
    ['T-JWT-03', 'HS256, empty key', () => forge(H, P, '')],
    ['T-JWT-03', 'HS256, server secret with one bit flipped', () => forge(H, P, Buffer.from(TEST_JWT_SECRET).map((b, i) => (i === 0 ? b ^ 1 : b)))],
    ['T-JWT-03', 'HS256, server secret truncated by one byte', () => forge(H, P, TEST_JWT_SECRET.slice(0, -1))],
    ['T-JWT-03', 'HS256, server secret plus a trailing newline', () => forge(H, P, Buffer.concat([TEST_JWT_SECRET, Buffer.from('\n')]))],
    ['T-JWT-03', 'HS256, server secret with a leading space', () => forge(H, P, Buffer.concat([Buffer.from(' '), TEST_JWT_SECRET]))],
    ['T-JWT-03', 'HS256, server secret base64-encoded', () => forge(H, P, Buffer.from(TEST_JWT_SECRET).toString('base64'))],
    ['T-JWT-03', 'HS384 with the server secret (algorithm pinned)', () => forge({ ...H, alg: 'HS384' }, P)],
    ['T-JWT-03', 'HS512 with the server secret (algorithm pinned)', () => forge({ ...H, alg: 'HS512' }, P)],

    // ---- T-JWT-04: tampered signatures ----
    ['T-JWT-04', 'signature: first bit flipped', () => `${alice.token.slice(0, alice.token.lastIndexOf('.'))}.${flipBit(SIG, 0)}`],
    ['T-JWT-04', 'signature: a middle bit flipped', () => `${alice.token.slice(0, alice.token.lastIndexOf('.'))}.${flipBit(SIG, 16, 5)}`],
    ['T-JWT-04', 'signature: last bit flipped', () => `${alice.token.slice(0, alice.token.lastIndexOf('.'))}.${flipBit(SIG, -1, 7)}`],
    ['T-JWT-04', 'payload: one bit flipped, signature kept', () => `${b64u(H)}.${flipBit(b64u(P), 10)}.${SIG}`],
    ['T-JWT-04', 'header: one bit flipped, signature kept', () => `${flipBit(b64u(H), 3)}.${b64u(P)}.${SIG}`],
    ['T-JWT-04', 'signature truncated by one character', () => alice.token.slice(0, -1)],
    ['T-JWT-04', 'signature truncated to half', () => alice.token.slice(0, alice.token.length - SIG.length / 2)],
    ['T-JWT-04', 'signature removed (header.payload.)', () => alice.token.slice(0, alice.token.lastIndexOf('.') + 1)],
    ['T-JWT-04', 'two segments only', () => alice.token.slice(0, alice.token.lastIndexOf('.'))],
    ['T-JWT-04', "signature swapped in from bob's token", () => `${alice.token.slice(0, alice.token.lastIndexOf('.'))}.${decode(bob.token).sig}`],
    ['T-JWT-04', "alice's claims with bob's header and signature", () => `${bob.token.split('.')[0]}.${b64u(P)}.${decode(bob.token).sig}`],
    ['T-JWT-04', 'a fourth segment appended', () => `${alice.token}.${SIG}`],
    ['T-JWT-04', 'ES256 with r = s = 0 (CVE-2022-21449 class)', () => `${b64u({ ...H, alg: 'ES256' })}.${b64u(P)}.${Buffer.alloc(64).toString('base64url')}`],

    // ---- T-JWT-05: time claims (tolerance: TOLERANCE_SEC) ----
    ['T-JWT-05', 'exp a minute ago', () => forge(H, { ...P, exp: now() - 60 })],
    ['T-JWT-05', 'exp just past the clock tolerance', () => forge(H, { ...P, exp: now() - TOLERANCE_SEC - 3 })],
    ['T-JWT-05', 'exp missing', () => forge(H, { ...P, exp: undefined })],
    ['T-JWT-05', 'exp as a string', () => forge(H, { ...P, exp: String(now() + 600) })],
    ['T-JWT-05', 'exp as a fraction in the past', () => forge(H, { ...P, exp: now() - 60.5 })],
    ['T-JWT-05', 'nbf a minute ahead', () => forge(H, { ...P, nbf: now() + 60 })],
    ['T-JWT-05', 'nbf just past the clock tolerance', () => forge(H, { ...P, nbf: now() + TOLERANCE_SEC + 3 })],
    ['T-JWT-05', 'iat an hour ahead', () => forge(H, { ...P, iat: now() + 3600, exp: now() + 4500 })],
    ['T-JWT-05', 'iat just past the clock tolerance', () => forge(H, { ...P, iat: now() + TOLERANCE_SEC + 3 })],
    ['T-JWT-05', 'iat missing', () => forge(H, { ...P, iat: undefined })],

    // ---- T-JWT-06: audience, issuer, type ----
    ['T-JWT-06', 'aud wrong', () => forge(H, { ...P, aud: 'other-api' })],
    ['T-JWT-06', 'aud missing', () => forge(H, { ...P, aud: undefined })],
    ['T-JWT-06', 'aud an array with only a wrong value', () => forge(H, { ...P, aud: ['other-api'] })],
    ['T-JWT-06', 'aud empty', () => forge(H, { ...P, aud: '' })],
    ['T-JWT-06', 'aud differing in case', () => forge(H, { ...P, aud: String(P.aud).toUpperCase() })],
    ['T-JWT-06', 'iss wrong', () => forge(H, { ...P, iss: 'evil' })],
    ['T-JWT-06', 'iss missing', () => forge(H, { ...P, iss: undefined })],
    ['T-JWT-06', 'iss with a trailing space', () => forge(H, { ...P, iss: `${String(P.iss)} ` })],
    ['T-JWT-06', 'typ "JWT"', () => forge({ ...H, typ: 'JWT' }, P)],
    ['T-JWT-06', 'typ missing', () => forge({ alg: H.alg }, P)],
    ['T-JWT-06', 'typ "rt+jwt"', () => forge({ ...H, typ: 'rt+jwt' }, P)],
    ['T-JWT-06', 'typ "at+jwt " (trailing space)', () => forge({ ...H, typ: 'at+jwt ' }, P)],

    // ---- T-JWT-07: subject ----
    ['T-JWT-07', 'sub of a user that does not exist', () => forge(H, { ...P, sub: '01900000-0000-7000-8000-000000000000' })],
    ['T-JWT-07', "sub of another user (bob) with alice's session", () => forge(H, { ...P, sub: bob.id })],
    ['T-JWT-07', 'sub as a number', () => forge(H, { ...P, sub: 42 })],
    ['T-JWT-07', 'sub as an array', () => forge(H, { ...P, sub: [alice.id] })],
    ['T-JWT-07', 'sub as an object', () => forge(H, { ...P, sub: { id: alice.id } })],
    ['T-JWT-07', 'sub null', () => forge(H, { ...P, sub: null })],
    ['T-JWT-07', 'sub missing', () => forge(H, { ...P, sub: undefined })],
    ['T-JWT-07', 'sid of no session', () => forge(H, { ...P, sid: '01900000-0000-7000-8000-000000000000' })],
    ['T-JWT-07', "sid of bob's session", () => forge(H, { ...P, sid: decode(bob.token).payload.sid })],
    ['T-JWT-07', 'sid missing', () => forge(H, { ...P, sid: undefined })],

    // ---- T-JWT-08/09: keys named by the token ----
    ['T-JWT-08', 'header jwk (oct) carrying the signing key', () => forge({ ...H, jwk: { kty: 'oct', k: b64u('attacker') } }, P, 'attacker')],
    ['T-JWT-08', 'header jwk (Ed25519) of the attacker key, EdDSA', () => signWith('EdDSA', ed.privateKey, { ...H, jwk: ed.publicKey.export({ format: 'jwk' }) }, P)],
    ['T-JWT-08', 'header jwk (RSA) of the attacker key, RS256', () => signWith('RS256', rsa.privateKey, { ...H, jwk: rsa.publicKey.export({ format: 'jwk' }) }, P)],
    ['T-JWT-08', 'header jku pointing at the canary, HS256', () => forge({ ...H, jku: `${canaryUrl}/jwks.json` }, P, 'attacker')],
    ['T-JWT-08', 'header jku pointing at the canary, RS256', () => signWith('RS256', rsa.privateKey, { ...H, jku: `${canaryUrl}/jwks.json` }, P)],
    ['T-JWT-08', 'header x5u pointing at the canary', () => signWith('ES256', ec.privateKey, { ...H, x5u: `${canaryUrl}/cert.pem` }, P)],
    ['T-JWT-08', 'header x5c with an attacker certificate chain', () => signWith('ES256', ec.privateKey, { ...H, x5c: [Buffer.alloc(300, 7).toString('base64')] }, P)],
    ['T-JWT-08', 'crit naming jku', () => forge({ ...H, jku: `${canaryUrl}/jwks.json`, crit: ['jku'] }, P, 'attacker')],
    ['T-JWT-09', 'kid ../../dev/null, signed with an empty key', () => forge({ ...H, kid: '../../../../../../dev/null' }, P, '')],
    ['T-JWT-09', "kid ' OR 1=1--", () => forge({ ...H, kid: "' OR 1=1--" }, P, '')],
    ['T-JWT-09', 'kid with a SQL UNION selecting a known key', () => forge({ ...H, kid: "x' UNION SELECT 'key'--" }, P, 'key')],
    ['T-JWT-09', 'kid a URL of the canary', () => forge({ ...H, kid: `${canaryUrl}/key` }, P, 'attacker')],
    ['T-JWT-09', 'kid of 10 KB', () => forge({ ...H, kid: 'k'.repeat(10_000) }, P, 'attacker')],
    ['T-JWT-09', 'kid as an object', () => forge({ ...H, kid: { $ne: null } }, P, 'attacker')],

    // ---- T-JWT-10: the refresh token is not an access token ----
    ['T-JWT-10', 'refresh token as the bearer token', () => alice.refreshToken],

    // ---- T-JWT-19: other serializations and shapes ----
    ['T-JWT-19', 'JWS JSON serialization (flattened), validly signed', () => {
      const [h, p, s] = forge(H, P).split('.');
      return JSON.stringify({ protected: h, payload: p, signature: s });
    }],
    ['T-JWT-19', 'JWS JSON serialization (general), validly signed', () => {
      const [h, p, s] = forge(H, P).split('.');
      return JSON.stringify({ payload: p, signatures: [{ protected: h, signature: s }] });
    }],
    ['T-JWT-19', 'JWS JSON serialization, base64url-wrapped', () => {
      const [h, p, s] = forge(H, P).split('.');
      return b64u({ protected: h, payload: p, signature: s });
    }],
    ['T-JWT-19', 'a valid token with a space inside', () => alice.token.replace('.', '. ')],
    ['T-JWT-19', 'a valid token with a newline inside', () => alice.token.replace('.', '.\n')],
    ['T-JWT-19', 'a valid token twice, space-separated', () => `${alice.token} ${alice.token}`],
    ['T-JWT-19', 'empty segments', () => '..'],
    ['T-JWT-19', 'many dots', () => '.'.repeat(50)],
    ['T-JWT-19', 'non-ASCII', () => 'é.é.é'],
    ['T-JWT-19', '5,000 characters', () => forge(H, { ...P, pad: 'x'.repeat(3600) })],
  ];

  describe.each(['T-JWT-01', 'T-JWT-02', 'T-JWT-03', 'T-JWT-04', 'T-JWT-05', 'T-JWT-06', 'T-JWT-07', 'T-JWT-08', 'T-JWT-09', 'T-JWT-10', 'T-JWT-19'])('%s', (id) => {
    it('every token of the table is refused: REST 401, upgrade 401 without 101, auth frame 4401', async () => {
      const mine = rows().filter((r) => r[0] === id);
      expect(mine.length).toBeGreaterThan(0);
      for (const [, what, make] of mine) await expectRefused(await make(), `${id} ${what}`);
    });
  });

  it(`T-JWT-05: within the documented ${TOLERANCE_SEC} s clock tolerance, exp/nbf/iat are accepted`, async () => {
    const t = now();
    for (const claims of [{ exp: t - 2 }, { nbf: t + 2 }, { iat: t + 2 }]) {
      expect((await srv.api.get('/users/me', forge(H, { ...P, ...claims }))).status, JSON.stringify(claims)).toBe(200);
    }
  });

  // Was a bug: padded or standard-alphabet spellings were accepted; tokens must be unpadded base64url.
  it('T-JWT-04: non-canonical spellings of a valid token are refused', async () => {
    const [h, p, sig] = alice.token.split('.');
    const std = (x: string) => x.replace(/-/g, '+').replace(/_/g, '/');
    const spellings = [`${alice.token}=`, ...(/[-_]/.test(sig!) ? [`${h}.${p}.${std(sig!)}`] : [])];
    for (const t of spellings) expectError(await srv.api.get('/users/me', t), 401, 'unauthorized', t);
  });

  it('T-JWT-08/09: no outbound connection was made for jku, x5u or kid', async () => {
    await sleep(300);
    expect(canaryHits).toEqual([]);
  });

  it('T-JWT-11: an access token at /auth/refresh-token or /auth/logout is refused and rotates nothing', async () => {
    const u = await srv.user();
    for (const route of ['/auth/refresh-token', '/auth/logout']) {
      await unchanged(srv, async () => {
        expectError(await srv.api.post(route, { refreshToken: u.token }), 401, 'unauthorized', route);
        // Sent as a bearer header instead of the body: the body is still required.
        expectError(await srv.api.request('POST', route, { token: u.token, body: {} }), 400, 'validation_error', `${route} bearer`);
      }, route);
    }
    // The session is intact: its access token works and its refresh token rotates exactly once.
    expect((await srv.api.get('/users/me', u.token)).status).toBe(200);
    expect((await srv.api.post('/auth/refresh-token', { refreshToken: u.refreshToken })).status).toBe(200);
  });

  it('T-JWT-18: a token anywhere but the Authorization header does not authenticate', async () => {
    const t = alice.token;
    await unchanged(srv, async () => {
      for (const q of [`access_token=${t}`, `token=${t}`, `jwt=${t}`, `authorization=Bearer%20${t}`, `bearer=${t}`]) {
        expectError(await srv.api.get(`/users/me?${q}`), 401, 'unauthorized', `REST ?${q.split('=')[0]}`);
        expectError(await srv.api.get(`/chats?${q}`), 401, 'unauthorized', `REST /chats ?${q.split('=')[0]}`);
      }
      const elsewhere: Record<string, string>[] = [{ cookie: `access_token=${t}` }, { cookie: `token=${t}; session=${t}` }, { 'x-access-token': t }, { authorization: t }, { authorization: `Token ${t}` }, { authorization: `Basic ${t}` }];
      for (const headers of elsewhere) {
        expectError(await srv.api.request('GET', '/users/me', { headers }), 401, 'unauthorized', JSON.stringify(Object.keys(headers)));
        const up = new TestSocket(srv.wsUrl, { headers });
        if ('authorization' in headers) {
          // A malformed Authorization header refuses the upgrade at once…
          const res = await up.refused();
          expect(res.status).toBe(401);
          expectErrorBody(res.body);
        } else {
          // …without one the socket waits for a first-frame auth: anything else closes it, never `ready`.
          await up.opened;
          up.send({ type: 'ping' });
          expect(await up.waitClose()).toBe(4401);
          expect(up.frames).toEqual([]);
        }
        up.close();
      }
      // WebSocket: only `since` is a known query parameter, so a token in the URL refuses the
      // upgrade before any 101 — with 400 (unknown field), not 401: the socket never gets to auth.
      for (const q of [`access_token=${t}`, `token=${t}`, `since=0&access_token=${t}`]) {
        const up = new TestSocket(`${srv.wsUrl}?${q}`);
        const res = await up.refused();
        expect(res.status, q).toBe(400);
        expectErrorBody(res.body, q);
        expect(up.frames).toEqual([]);
      }
    });
  });

  it('T-JWT-19: a 100 KB token gets 401 in-process and 431 on the wire — never a 5xx, never a 101', async () => {
    const huge = forge(H, { ...P, pad: 'x'.repeat(100 * 1024) });
    expectError(await srv.api.get('/users/me', huge), 401, 'unauthorized', '100 KB via inject');
    const port = Number(new URL(srv.url).port);
    const wire = await rawHttp(port, [`GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${huge}\r\n\r\n`]);
    expect(wire.statuses).toEqual([431]);
    // The auth frame carrying it is over the 128 KiB frame limit: 1009.
    await expectRefused(huge, '100 KB', 431, 1009);
    const health = await srv.api.get('/health/live');
    expect(health.status).toBe(200);
  });
});
