/**
 * SECURITY.md §4b T-RL-01…07, T-ENUM-03, T-WS-18 (AUTH-07, AUTH-08, RL-01…04): the rate limits at
 * their production values, read from src/limits/catalog.ts (never restated here). The clock is
 * frozen during each burst, so no bucket refills mid-test and every Retry-After is exact.
 *
 * Every 429 of this file is checked for `Retry-After` (whole seconds, what the bucket needs to
 * refill one token) and the SPEC's error shape, and leaves the database unchanged.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Api, envelope, STRONG_PASSWORD, uniqueName, type Res, type Session } from '../_helpers/api.js';
import { keyUpload } from '../_helpers/keys.js';
import { describeEachDialect, testServer } from '../_helpers/server.js';
import { closeAllSockets, connect, FAST_ARGON2, wsServer, type WsServer } from '../_helpers/ws.js';
import { LIMITS, type LimitName } from '../../src/limits/catalog.js';
import { SOCKET_LIMITS } from '../../src/ws/connection.js';
import { expectError, freshIp, unchanged } from './_support.js';

/** Real time, until frozen; while frozen only `advance` moves it. */
function freezableClock() {
  let frozen: number | null = null;
  return {
    now: () => frozen ?? Date.now(),
    freeze: () => void (frozen = Date.now()),
    thaw: () => void (frozen = null),
    advance: (ms: number) => void (frozen = (frozen ?? Date.now()) + ms),
  };
}

/** Seconds an empty bucket of `name` needs for one token — what Retry-After must say. */
const retryAfterOf = (name: LimitName) => Math.max(1, Math.ceil(1 / LIMITS[name].perSec));

const all429: Res[] = [];
function expectRateLimited(res: Res, name: LimitName, label = ''): void {
  all429.push(res);
  expectError(res, 429, 'rate_limited', `${name} ${label}`);
  expect(Number(res.headers['retry-after']), `${name} ${label}`).toBe(retryAfterOf(name));
}

/** The parts of an answer an attacker can compare, `date` aside. */
const comparable = (r: Res) => {
  const { date: _d, ...headers } = r.headers;
  return { status: r.status, text: r.text, headers };
};

describeEachDialect('rate limits', (dialect) => {
  let srv: WsServer;
  const clock = freezableClock();
  const from = (ip = freshIp()) => new Api(srv.app, ip);

  beforeAll(async () => {
    srv = await wsServer({ dialect, overrides: { clock } });
  });
  afterAll(async () => {
    closeAllSockets();
    await srv.close();
  });
  afterEach(() => clock.thaw());

  describe('login', () => {
    const { burst } = LIMITS.loginFailuresPerAccount;

    /** `burst` wrong passwords (each from a new address), then one more, then the right one. */
    async function bruteForce(username: string, password: string): Promise<Res[]> {
      const out: Res[] = [];
      for (let i = 0; i <= burst; i++) out.push(await from().post('/auth/login', { username, password: `wrong-guess-${i}` }));
      out.push(await from().post('/auth/login', { username, password }));
      return out;
    }

    it(`T-RL-01: ${burst} wrong passwords for one account → 401s, then 429 with Retry-After, even for the right password, from any address`, async () => {
      const alice = await from().register();
      const bob = await from().register();
      clock.freeze();
      const seq = await unchanged(srv, () => bruteForce(alice.username, alice.password));
      seq.slice(0, burst).forEach((r, i) => expectError(r, 401, 'unauthorized', `attempt ${i + 1}`));
      expectRateLimited(seq[burst]!, 'loginFailuresPerAccount', 'attempt over the burst');
      expectRateLimited(seq[burst + 1]!, 'loginFailuresPerAccount', 'right password while throttled');
      // Other accounts are not affected, from a fresh address or the attacker's last one.
      expect((await from().post('/auth/login', { username: bob.username, password: bob.password })).status).toBe(200);
      // After Retry-After the owner gets in.
      clock.advance(retryAfterOf('loginFailuresPerAccount') * 1000);
      expect((await from().post('/auth/login', { username: alice.username, password: alice.password })).status).toBe(200);
    });

    it(`T-RL-01: ${4 * burst} wrong passwords sent at once → exactly ${burst} are checked (401), the rest 429; the same for re-authentication`, async () => {
      const alice = await from().register();
      const ghost = uniqueName('ghost');
      clock.freeze();
      for (const username of [alice.username, ghost]) {
        const answers = await Promise.all(Array.from({ length: 4 * burst }, (_, i) => from().post('/auth/login', { username, password: `parallel-guess-${i}` })));
        expect(answers.filter((r) => r.status === 401), username).toHaveLength(burst);
        for (const r of answers.filter((r) => r.status !== 401)) expectRateLimited(r, 'loginFailuresPerAccount', `${username} in parallel`);
      }
      // Re-authentication (account deletion asks for the password) counts against the same bucket.
      clock.advance(retryAfterOf('loginFailuresPerAccount') * burst * 1000);
      const bob = await from().register();
      const tries = await Promise.all(Array.from({ length: 4 * burst }, (_, i) => srv.api.request('DELETE', '/users/me', { body: { password: `parallel-guess-${i}` }, token: bob.token })));
      expect(tries.filter((r) => r.status === 401)).toHaveLength(burst);
      for (const r of tries.filter((r) => r.status !== 401)) expectRateLimited(r, 'loginFailuresPerAccount', 're-authentication in parallel');
      // Right passwords give back what they took: the owner logs in many times over.
      const carol = await from().register();
      for (let i = 0; i < 3 * burst; i++) expect((await from().post('/auth/login', { username: carol.username, password: carol.password })).status, `login ${i + 1}`).toBe(200);
    });

    it('T-RL-02 / AUTH-05: the same sequence against a nonexistent account gives identical answers', async () => {
      const alice = await from().register();
      clock.freeze();
      const real = await bruteForce(alice.username, alice.password);
      const ghost = await bruteForce(uniqueName('ghost'), alice.password);
      expect(ghost.map((r) => r.status)).toEqual([...Array(burst).fill(401), 429, 429]);
      expect(ghost.map(comparable)).toEqual(real.map(comparable));
      expectRateLimited(ghost[burst]!, 'loginFailuresPerAccount', 'ghost');
    });

    it(`T-RL-05: login attempts per address → 429 after ${LIMITS.loginPerIp.burst}, and X-Forwarded-For from an untrusted peer is ignored`, async () => {
      const peer = freshIp();
      const api = from(peer);
      clock.freeze();
      const { burst: perIp } = LIMITS.loginPerIp;
      await unchanged(srv, async () => {
        for (let i = 0; i < perIp; i++) {
          // A different account and a different forged client address each time.
          const res = await api.request('POST', '/auth/login', { body: { username: uniqueName('spray'), password: 'whatever-1' }, headers: { 'x-forwarded-for': `203.0.113.${i % 250}, 198.51.100.${i % 250}` } });
          expect(res.status, `attempt ${i + 1}`).toBe(401);
        }
        const over = await api.request('POST', '/auth/login', { body: { username: uniqueName('spray'), password: 'whatever-1' }, headers: { 'x-forwarded-for': '192.0.2.77' } });
        expectRateLimited(over, 'loginPerIp', 'over the per-address burst');
      });
      // Another address is not affected.
      expect((await from().post('/auth/login', { username: uniqueName('spray'), password: 'whatever-1' })).status).toBe(401);
    });

    it('T-RL-05 control: from a configured proxy, X-Forwarded-For is believed (so the test above means something)', async () => {
      const proxy = '10.250.0.1';
      const trusting = await testServer({ dialect, env: { TRUST_PROXY: proxy }, overrides: { argon2: FAST_ARGON2, clock } });
      try {
        clock.freeze();
        const api = new Api(trusting.app, proxy);
        for (let i = 0; i <= LIMITS.loginPerIp.burst; i++) {
          const res = await api.request('POST', '/auth/login', { body: { username: uniqueName('viaproxy'), password: 'whatever-1' }, headers: { 'x-forwarded-for': `203.0.113.${i % 250}, 198.51.${i >> 8}.${i & 255}` } });
          expect(res.status, `attempt ${i + 1}`).toBe(401);
        }
      } finally {
        await trusting.close();
      }
    });
  });

  describe('registration', () => {
    it(`T-ENUM-03 / AUTH-07: registrations per address → 429 after ${LIMITS.registerPerIp.burst}; nothing is stored by a refused one`, async () => {
      const api = from();
      clock.freeze();
      for (let i = 0; i < LIMITS.registerPerIp.burst; i++) {
        expect((await api.post('/auth/register', { username: uniqueName('flood'), password: STRONG_PASSWORD })).status, `registration ${i + 1}`).toBe(201);
      }
      const over = await unchanged(srv, () => api.post('/auth/register', { username: uniqueName('flood'), password: STRONG_PASSWORD }));
      expectRateLimited(over, 'registerPerIp');
    });

    it(`T-ENUM-03: "username taken" answers per address → 429 after ${LIMITS.registerTakenPerIp.burst}`, async () => {
      const taken = await from().register();
      const api = from();
      clock.freeze();
      await unchanged(srv, async () => {
        for (let i = 0; i < LIMITS.registerTakenPerIp.burst; i++) {
          expectError(await api.post('/auth/register', { username: taken.username, password: STRONG_PASSWORD }), 409, 'conflict', `probe ${i + 1}`);
        }
        expectRateLimited(await api.post('/auth/register', { username: taken.username.toUpperCase(), password: STRONG_PASSWORD }), 'registerTakenPerIp');
      });
    });

    it('per-address limits count a whole IPv6 /64 as one client: probes from its many addresses share one bucket', async () => {
      const taken = await from().register();
      // A random /64, so reruns and the other dialect's run do not share it.
      const prefix = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:${Math.floor(Math.random() * 0xffff).toString(16)}`;
      clock.freeze();
      await unchanged(srv, async () => {
        for (let i = 0; i < LIMITS.registerTakenPerIp.burst; i++) {
          const res = await from(`${prefix}:${i.toString(16)}::${(i + 1).toString(16)}`).post('/auth/register', { username: taken.username, password: STRONG_PASSWORD });
          expectError(res, 409, 'conflict', `probe ${i + 1}`);
        }
        expectRateLimited(await from(`${prefix}:ffff:ffff:ffff:fff0`).post('/auth/register', { username: taken.username, password: STRONG_PASSWORD }), 'registerTakenPerIp', 'same /64');
      });
      // The neighbouring /64 is another client.
      const next = `${prefix.slice(0, prefix.lastIndexOf(':'))}:${(parseInt(prefix.slice(prefix.lastIndexOf(':') + 1), 16) ^ 1).toString(16)}`;
      expectError(await from(`${next}::1`).post('/auth/register', { username: taken.username, password: STRONG_PASSWORD }), 409, 'conflict', 'another /64');
    });
  });

  describe('tokens, keys, requests', () => {
    it(`T-RL-07: refreshes per login → 429 after ${LIMITS.refreshPerFamily.burst}; the throttled token is not consumed`, async () => {
      const u = await from().register();
      clock.freeze();
      let token = u.refreshToken;
      for (let i = 0; i < LIMITS.refreshPerFamily.burst; i++) {
        const r = await from().post('/auth/refresh-token', { refreshToken: token });
        expect(r.status, `refresh ${i + 1}`).toBe(200);
        token = r.body.refreshToken;
      }
      const over = await unchanged(srv, () => from().post('/auth/refresh-token', { refreshToken: token }));
      expectRateLimited(over, 'refreshPerFamily');
      clock.advance(retryAfterOf('refreshPerFamily') * 1000);
      expect((await from().post('/auth/refresh-token', { refreshToken: token })).status).toBe(200);
    });

    it('T-RL-07 with ACCESS_TOKEN_TTL=20s: a client refreshing once per lifetime is never limited; back-to-back refreshes still are', async () => {
      const shortClock = freezableClock();
      const short = await wsServer({ dialect, env: { ACCESS_TOKEN_TTL: '20s' }, overrides: { clock: shortClock } });
      try {
        const refresh = (refreshToken: string) => new Api(short.app, freshIp()).post('/auth/refresh-token', { refreshToken });
        let token = (await short.user()).refreshToken;
        shortClock.freeze();
        // Three bursts' worth: at one refill a minute the bucket would be empty after ~15.
        for (let i = 0; i < 3 * LIMITS.refreshPerFamily.burst; i++) {
          shortClock.advance(20_000);
          const r = await refresh(token);
          expect(r.status, `refresh ${i + 1}`).toBe(200);
          token = r.body.refreshToken;
        }
        let last: Res | undefined;
        for (let i = 0; i <= LIMITS.refreshPerFamily.burst; i++) {
          last = await refresh(token);
          if (last.status !== 200) break;
          token = last.body.refreshToken;
        }
        expectError(last!, 429, 'rate_limited');
      } finally {
        await short.close();
      }
    });

    it(`AZ-07: pre-key bundle claims per requester → 429 after ${LIMITS.keyClaimsPerUser.burst}`, async () => {
      const [owner, crawler, other] = [await from().register(), await from().register(), await from().register()];
      expect((await srv.api.put('/keys', keyUpload(undefined, 3).body, owner.token)).status).toBe(200);
      clock.freeze();
      for (let i = 0; i < LIMITS.keyClaimsPerUser.burst; i++) expect((await srv.api.get(`/keys/${owner.id}`, crawler.token)).status).toBe(200);
      expectRateLimited(await unchanged(srv, () => srv.api.get(`/keys/${owner.id}`, crawler.token)), 'keyClaimsPerUser');
      // Another requester is not affected.
      expect((await srv.api.get(`/keys/${owner.id}`, other.token)).status).toBe(200);
    });

    it(`key uploads per user → 429 after ${LIMITS.keyUploadsPerUser.burst}; another user is not affected`, async () => {
      const [owner, other] = [await from().register(), await from().register()];
      const first = keyUpload(undefined, 1, 1);
      clock.freeze();
      expect((await srv.api.put('/keys', first.body, owner.token)).status).toBe(200);
      for (let i = 1; i < LIMITS.keyUploadsPerUser.burst; i++) {
        expect((await srv.api.put('/keys', keyUpload(first.identity, 1, 1 + i).body, owner.token)).status, `upload ${i + 1}`).toBe(200);
      }
      expectRateLimited(await unchanged(srv, () => srv.api.put('/keys', keyUpload(first.identity, 1, 999).body, owner.token)), 'keyUploadsPerUser');
      expect((await srv.api.put('/keys', keyUpload(undefined, 1, 1).body, other.token)).status).toBe(200);
    });

    it(`identity-key changes per user → 429 after ${LIMITS.identityChangesPerUser.burst}: a key flip-flop cannot flood every contact with key.changed`, async () => {
      const [owner, contact] = [await from().register(), await from().register()];
      await srv.api.chat(owner, contact);
      const keyChanges = async () =>
        Number((await srv.ctx.db.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).where('user_id', '=', contact.id).where('type', '=', 'key.changed').executeTakeFirstOrThrow()).n);
      const [a, b] = [keyUpload(undefined, 1, 1), keyUpload(undefined, 1, 1)];
      clock.freeze();
      expect((await srv.api.put('/keys', a.body, owner.token)).status).toBe(200); // the first key: not a change
      for (let i = 0; i < LIMITS.identityChangesPerUser.burst; i++) {
        expect((await srv.api.put('/keys', (i % 2 ? a : b).body, owner.token)).status, `change ${i + 1}`).toBe(200);
      }
      expect(await keyChanges()).toBe(LIMITS.identityChangesPerUser.burst);
      const current = LIMITS.identityChangesPerUser.burst % 2 ? b : a;
      const next = current === a ? b : a;
      const over = await unchanged(srv, () => srv.api.put('/keys', keyUpload(next.identity, 1, 50).body, owner.token));
      expectRateLimited(over, 'identityChangesPerUser');
      expect(over.body.error.message).toBe('the identity key changed too often, retry later');
      expect(await keyChanges()).toBe(LIMITS.identityChangesPerUser.burst);
      // Uploads with the current identity key (pre-key refills) are not changes, and still work.
      expect((await srv.api.put('/keys', keyUpload(current.identity, 1, 60).body, owner.token)).status).toBe(200);
    });

    it(`AZ-07 / T-KEY-02: looking up other users (by id or by name, one bucket) per requester → 429 after ${LIMITS.userLookupsPerUser.burst}`, async () => {
      const [target, crawler, other] = [await from().register(), await from().register(), await from().register()];
      clock.freeze();
      for (let i = 0; i < LIMITS.userLookupsPerUser.burst; i++) {
        const res = i % 2 ? await srv.api.get(`/users/${target.id}`, crawler.token) : await srv.api.get(`/users?username=${uniqueName('probe')}`, crawler.token);
        expect(res.status, `lookup ${i + 1}`).toBe(i % 2 ? 200 : 404);
      }
      expectRateLimited(await srv.api.get(`/users?username=${target.username}`, crawler.token), 'userLookupsPerUser', 'by name');
      expectRateLimited(await srv.api.get(`/users/${target.id}`, crawler.token), 'userLookupsPerUser', 'by id');
      // One's own profile is not a lookup; another requester is not affected.
      expect((await srv.api.get('/users/me', crawler.token)).status).toBe(200);
      expect((await srv.api.get(`/users/${crawler.id}`, crawler.token)).status).toBe(200);
      expect((await srv.api.get(`/users?username=${target.username}`, other.token)).status).toBe(200);
    });

    it(`chats created per user → 429 after ${LIMITS.chatsCreatedPerUser.burst}; finding an existing one-to-one chat stays free`, async () => {
      const [creator, p1, p2, p3, other] = [await from().register(), await from().register(), await from().register(), await from().register(), await from().register()];
      // Made before the burst: later it is found, not created.
      const direct = await srv.api.post('/chats', { participantIds: [p1.id] }, creator.token);
      expect(direct.status).toBe(201);
      clock.freeze();
      for (let i = 1; i < LIMITS.chatsCreatedPerUser.burst; i++) {
        expect((await srv.api.post('/chats', { participantIds: [p1.id, p2.id] }, creator.token)).status, `group ${i}`).toBe(201);
      }
      expectRateLimited(await unchanged(srv, () => srv.api.post('/chats', { participantIds: [p1.id, p2.id] }, creator.token)), 'chatsCreatedPerUser', 'group');
      expectRateLimited(await unchanged(srv, () => srv.api.post('/chats', { participantIds: [p3.id] }, creator.token)), 'chatsCreatedPerUser', 'new one-to-one');
      // A first message to someone new would make a chat: refused too; to an existing chat: sent.
      expectRateLimited(await unchanged(srv, () => srv.api.post('/messages', { receiverId: p3.id, ...envelope(16) }, creator.token)), 'chatsCreatedPerUser', 'first message');
      expect((await srv.api.post('/chats', { participantIds: [p1.id] }, creator.token)).status).toBe(200);
      expect((await srv.api.post('/messages', { receiverId: p1.id, ...envelope(16) }, creator.token)).status).toBe(201);
      // Others still create chats, with the limited user too.
      expect((await srv.api.post('/chats', { participantIds: [creator.id, p3.id] }, other.token)).status).toBe(201);
    });

    it(`authenticated requests per user → 429 after ${LIMITS.requestsPerUser.burst}`, async () => {
      const u = await from().register();
      clock.freeze();
      for (let i = 0; i < LIMITS.requestsPerUser.burst; i++) expect((await srv.api.get('/chats', u.token)).status).toBe(200);
      expectRateLimited(await srv.api.get('/users/me', u.token), 'requestsPerUser');
    });
  });

  describe('messages', () => {
    let pair: { a: Session; b: Session; chatId: string };
    beforeAll(async () => {
      const [a, b] = [await from().register(), await from().register()];
      pair = { a, b, chatId: (await srv.api.chat(a, b)).id };
    });

    it(`T-RL-06: sends per user → 429 after ${LIMITS.sendsPerUser.burst}, over REST and over the socket; nothing stored`, async () => {
      const { a, chatId } = pair;
      const ws = await connect(srv.wsUrl, a.token);
      clock.freeze();
      for (let i = 0; i < LIMITS.sendsPerUser.burst; i++) {
        expect((await srv.api.post('/messages', { chatId, ...envelope(16) }, a.token)).status, `send ${i + 1}`).toBe(201);
      }
      await unchanged(srv, async () => {
        expectRateLimited(await srv.api.post('/messages', { chatId, ...envelope(16) }, a.token), 'sendsPerUser', 'REST');
        const f = await ws.request('over', { chatId, ...envelope(16) });
        expect(f).toMatchObject({ type: 'error', requestId: 'over', error: { code: 'rate_limited', details: { retryAfter: retryAfterOf('sendsPerUser') } } });
      });
      // The receiver can still send.
      expect((await srv.api.post('/messages', { chatId, ...envelope(16) }, pair.b.token)).status).toBe(201);
    });

    /** Two new users, their chat, the clock frozen, and a first message with `clientMessageId` (201). */
    async function firstMessage(clientMessageId: string): Promise<{ a: Session; chatId: string; first: Res }> {
      const [a, b] = [await from().register(), await from().register()];
      const chatId = (await srv.api.chat(a, b)).id;
      clock.freeze();
      const first = await srv.api.post('/messages', { chatId, ...envelope(16), clientMessageId }, a.token);
      expect(first.status).toBe(201);
      return { a, chatId, first };
    }

    it('T-RL-06: retries of a stored message (200, nothing stored) do not count against the sender', async () => {
      const { a, chatId, first } = await firstMessage('retry-free');
      for (let i = 0; i < 20; i++) {
        const again = await srv.api.post('/messages', { chatId, ...envelope(16), clientMessageId: 'retry-free' }, a.token);
        expect(again.status).toBe(200);
        expect(again.body.id).toBe(first.body.id);
      }
      // The whole burst minus the one stored message is still there.
      for (let i = 1; i < LIMITS.sendsPerUser.burst; i++) expect((await srv.api.post('/messages', { chatId, ...envelope(16) }, a.token)).status, `send ${i + 1}`).toBe(201);
      expectRateLimited(await srv.api.post('/messages', { chatId, ...envelope(16) }, a.token), 'sendsPerUser', 'after the burst');
    });

    it('T-RL-06: a retry of a stored message is answered with it (200) even while its sender is limited', async () => {
      const { a, chatId, first } = await firstMessage('rl-first');
      for (let i = 1; i < LIMITS.sendsPerUser.burst; i++) expect((await srv.api.post('/messages', { chatId, ...envelope(16) }, a.token)).status).toBe(201);
      expectRateLimited(await srv.api.post('/messages', { chatId, ...envelope(16), clientMessageId: 'rl-new' }, a.token), 'sendsPerUser', 'REST');
      const retry = await unchanged(srv, () => srv.api.post('/messages', { chatId, ...envelope(16), clientMessageId: 'rl-first' }, a.token));
      expect(retry.status).toBe(200);
      expect(retry.body.id).toBe(first.body.id);
    });

    const MiB = (n: number) => n / 2 ** 20;
    const perHour = (perSec: number) => Math.round((perSec * 3600) / 2 ** 20);

    it(`RL-03 / REL-11: ciphertext bytes per receiver from strangers, all together (${MiB(LIMITS.receiveBytesFromStrangers.burst)} MiB, then ${perHour(LIMITS.receiveBytesFromStrangers.perSec)} MiB an hour); the people it writes to are not silenced`, async () => {
      // The production burst is 128 MiB (2,048 of the largest messages): this server's is 4 of them.
      const size = 64 * 1024;
      const small = { ...LIMITS.receiveBytesFromStrangers, burst: 4 * size };
      const limited = await wsServer({ dialect, overrides: { clock, limits: { receiveBytesFromStrangers: small } } });
      try {
        const [victim, other, s1, s2, friend] = await Promise.all([limited.user(), limited.user(), limited.user(), limited.user(), limited.user()]);
        const [c1, c2, c3, cf] = await Promise.all([limited.api.chat(s1, victim), limited.api.chat(s2, victim), limited.api.chat(s1, other), limited.api.chat(victim, friend)]);
        // The victim has written to its friend: the friend is a contact, s1 and s2 are strangers.
        expect((await limited.api.post('/messages', { chatId: cf.id, ...envelope(16) }, victim.token)).status).toBe(201);
        clock.freeze();
        for (let i = 0; i < 4; i++) {
          const [sender, chat] = i % 2 ? [s2, c2] : [s1, c1];
          expect((await limited.api.post('/messages', { chatId: chat.id, ...envelope(size), clientMessageId: `rb-${i}` }, sender.token)).status, `send ${i + 1}`).toBe(201);
        }
        const over = await unchanged(limited, () => limited.api.post('/messages', { chatId: c2.id, ...envelope(size) }, s2.token));
        expectError(over, 429, 'rate_limited', 'receiver bytes');
        expect(over.body.error.message).toBe('the receiver is getting too much, retry later');
        expect(Number(over.headers['retry-after'])).toBe(Math.ceil(size / small.perSec));
        // Strangers have used up the allowance; the friend still gets through, again and again.
        for (let i = 0; i < 6; i++) expect((await limited.api.post('/messages', { chatId: cf.id, ...envelope(size) }, friend.token)).status, `friend ${i + 1}`).toBe(201);
        // A retry of a stored message is still answered with it; another receiver is not affected.
        expect((await limited.api.post('/messages', { chatId: c1.id, ...envelope(size), clientMessageId: 'rb-0' }, s1.token)).status).toBe(200);
        expect((await limited.api.post('/messages', { chatId: c3.id, ...envelope(size) }, s1.token)).status).toBe(201);
        // Once the victim answers s1, s1 is a contact too; s2 is still a stranger.
        expect((await limited.api.post('/messages', { chatId: c1.id, ...envelope(16) }, victim.token)).status).toBe(201);
        expect((await limited.api.post('/messages', { chatId: c1.id, ...envelope(size) }, s1.token)).status).toBe(201);
        expect((await limited.api.post('/messages', { chatId: c2.id, ...envelope(size) }, s2.token)).status).toBe(429);
        // The bucket refills.
        clock.advance(Math.ceil(size / small.perSec) * 1000);
        expect((await limited.api.post('/messages', { chatId: c2.id, ...envelope(size) }, s2.token)).status).toBe(201);
      } finally {
        closeAllSockets();
        await limited.close();
      }
    });

    it(`RL-03 / REL-11: ciphertext bytes per receiver from each sender (${MiB(LIMITS.receiveBytesPerSender.burst)} MiB, then ${perHour(LIMITS.receiveBytesPerSender.perSec)} MiB an hour): a contact that uses up its own stops nobody else`, async () => {
      const size = 64 * 1024;
      const small = { ...LIMITS.receiveBytesPerSender, burst: 3 * size };
      const limited = await wsServer({ dialect, overrides: { clock, limits: { receiveBytesPerSender: small } } });
      try {
        const [victim, loud, quiet, stranger] = await Promise.all([limited.user(), limited.user(), limited.user(), limited.user()]);
        const [cl, cq, cs] = await Promise.all([limited.api.chat(victim, loud), limited.api.chat(victim, quiet), limited.api.chat(stranger, victim)]);
        for (const c of [cl, cq]) expect((await limited.api.post('/messages', { chatId: c.id, ...envelope(16) }, victim.token)).status).toBe(201);
        clock.freeze();
        for (let i = 0; i < 3; i++) expect((await limited.api.post('/messages', { chatId: cl.id, ...envelope(size) }, loud.token)).status, `loud ${i + 1}`).toBe(201);
        const over = await unchanged(limited, () => limited.api.post('/messages', { chatId: cl.id, ...envelope(size) }, loud.token));
        expectError(over, 429, 'rate_limited', 'bytes from one sender');
        expect(over.body.error.message).toBe('the receiver is getting too much, retry later');
        // Everyone else still reaches the victim, and the loud sender still reaches others.
        expect((await limited.api.post('/messages', { chatId: cq.id, ...envelope(size) }, quiet.token)).status).toBe(201);
        expect((await limited.api.post('/messages', { chatId: cs.id, ...envelope(size) }, stranger.token)).status).toBe(201);
        expect((await limited.api.post('/messages', { chatId: cl.id, ...envelope(size) }, victim.token)).status).toBe(201);
      } finally {
        closeAllSockets();
        await limited.close();
      }
    });

    it('a send refused for its receiver (429) costs its sender nothing', async () => {
      // Small buckets: the receiver takes 2 messages, the sender may send 3.
      const size = 16 * 1024;
      const limited = await wsServer({
        dialect,
        overrides: { clock, limits: { receiveBytesPerSender: { burst: 2 * size, perSec: size / 3600 }, sendsPerUser: { burst: 3, perSec: 1 / 60 } } },
      });
      try {
        const [sender, victim, other] = await Promise.all([limited.user(), limited.user(), limited.user()]);
        const [toVictim, toOther] = await Promise.all([limited.api.chat(sender, victim), limited.api.chat(sender, other)]);
        clock.freeze();
        for (let i = 0; i < 2; i++) expect((await limited.api.post('/messages', { chatId: toVictim.id, ...envelope(size) }, sender.token)).status).toBe(201);
        for (let i = 0; i < 5; i++) {
          const over = await limited.api.post('/messages', { chatId: toVictim.id, ...envelope(size) }, sender.token);
          expect(over.status).toBe(429);
          expect(over.body.error.message).toBe('the receiver is getting too much, retry later');
        }
        // The sender's third send is still there, and then its own limit.
        expect((await limited.api.post('/messages', { chatId: toOther.id, ...envelope(size) }, sender.token)).status).toBe(201);
        const own = await limited.api.post('/messages', { chatId: toOther.id, ...envelope(size) }, sender.token);
        expect(own.status).toBe(429);
        expect(own.body.error.message).not.toBe('the receiver is getting too much, retry later');
      } finally {
        closeAllSockets();
        await limited.close();
      }
    });

    it(`T-RL-06: ciphertext bytes per user → 429 after ${LIMITS.sendBytesPerUser.burst} bytes`, async () => {
      const [a, b] = [await from().register(), await from().register()];
      const chatId = (await srv.api.chat(a, b)).id;
      const size = 64 * 1024;
      const fits = Math.floor(LIMITS.sendBytesPerUser.burst / size);
      expect(fits).toBeLessThan(LIMITS.sendsPerUser.burst); // the byte limit trips first
      const body = { chatId, ...envelope(size) };
      clock.freeze();
      for (let i = 0; i < fits; i++) expect((await srv.api.post('/messages', body, a.token)).status, `send ${i + 1}`).toBe(201);
      const over = await unchanged(srv, () => srv.api.post('/messages', body, a.token));
      expectError(over, 429, 'rate_limited', 'bytes');
      all429.push(over);
      // One 64 KiB message needs 64 KiB of refill.
      expect(Number(over.headers['retry-after'])).toBe(Math.max(1, Math.ceil(size / LIMITS.sendBytesPerUser.perSec)));
    });
  });

  it(`T-WS-18: a socket flooding frames gets rate_limited error frames, then close 1008 after ${SOCKET_LIMITS.maxThrottledFrames}`, async () => {
    const u = await from().register();
    const ws = await connect(srv.wsUrl, u.token);
    const other = await connect(srv.wsUrl, u.token);
    clock.freeze();
    const { burst } = LIMITS.wsFramesPerSocket;
    for (let i = 0; i < burst; i++) ws.send({ type: 'ping' });
    await ws.count('pong', burst);
    for (let i = 0; i <= SOCKET_LIMITS.maxThrottledFrames; i++) ws.send({ type: 'ping' });
    expect(await ws.waitClose()).toBe(1008);
    const limited = ws.ofType('error');
    expect(limited).toHaveLength(SOCKET_LIMITS.maxThrottledFrames);
    for (const f of limited) expect(f.error).toMatchObject({ code: 'rate_limited', message: expect.any(String), details: { retryAfter: expect.any(Number) } });
    expect(ws.ofType('pong')).toHaveLength(burst);
    // The same user's other socket is unaffected.
    await other.sync();
    expect(other.closeCode).toBeNull();
  });

  it('RL-01: every 429 of this file had Retry-After and the error shape', () => {
    expect(all429.length).toBeGreaterThanOrEqual(10);
    for (const r of all429) {
      expect(r.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
      expectError(r, 429, 'rate_limited');
    }
  });
});
