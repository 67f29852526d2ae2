import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../src/limits/catalog.js';
import { RateLimiter } from '../../src/limits/limiter.js';
import { RedisLimiterStore } from '../../src/limits/redis-store.js';
import { RedisPubSub } from '../../src/pubsub/redis.js';
import { Api } from '../_helpers/api.js';
import { dialects, testServer, type TestServer } from '../_helpers/server.js';
import { connect, FAST_ARGON2, waitUntil } from '../_helpers/ws.js';

const REDIS_URL = process.env.TEST_REDIS_URL;
const silent = pino({ level: 'silent' });

if (!REDIS_URL) console.warn('[tests] TEST_REDIS_URL is not set: the Redis re-check suites are SKIPPED.');

/** Decision 0021 with a real Redis: signals an instance's publisher dropped, and limiter clocks. */
for (const dialect of dialects) {
  describe.skipIf(!REDIS_URL)(`two instances with Redis, a publisher away [${dialect}]`, () => {
    let a: TestServer, b: TestServer;
    let dir: string;

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-rc-'));
      const sqlitePath = path.join(dir, 'shared.db');
      // The periodic re-check stays at its 60 s: only the publisher's return can close the socket in time.
      const instance = async (extra: { pgSchema?: string; sqlitePath?: string }) =>
        testServer({ dialect, listen: true, ...extra, overrides: { argon2: FAST_ARGON2, pubsub: await RedisPubSub.connect(REDIS_URL!, silent) } });
      a = await instance(dialect === 'sqlite' ? { sqlitePath } : {});
      b = await instance(dialect === 'sqlite' ? { sqlitePath } : { pgSchema: a.pgSchema! });
    });
    afterAll(async () => {
      await b.close();
      await a.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('a revocation dropped while A’s publisher was away closes the socket on B once that publisher is back', async () => {
      const apiA = new Api(a.app);
      const alice = await apiA.register();
      const ws = await connect(b.wsUrl, alice.token);

      const pub = (a.ctx.pubsub as RedisPubSub).pub;
      pub.disconnect();
      await waitUntil(() => pub.status === 'end', 5000, 'A’s publisher to be closed');
      expect((await apiA.post('/auth/logout', { refreshToken: alice.refreshToken })).status).toBe(204);
      // The signal was dropped, not delayed: B has nothing to act on.
      await ws.sync();
      expect(ws.closeCode).toBeNull();

      await pub.connect();
      expect(await ws.waitClose(5000)).toBe(4401);
      expect(ws.closeReason).toBe('session revoked');
    });
  });
}

describe.skipIf(!REDIS_URL)('shared rate limits with skewed instance clocks', () => {
  const clients: Redis[] = [];
  afterAll(() => Promise.all(clients.map((c) => c.quit())));

  /** A limiter as an instance builds it: its own Redis connection and its own clock, `skewMs` ahead. */
  async function instance(prefix: string, skewMs: number, time?: 'redis' | 'caller'): Promise<RateLimiter> {
    const redis = new Redis(REDIS_URL!);
    clients.push(redis);
    // Until it is ready the store would use its in-process fallback.
    await new Promise((r) => redis.once('ready', r));
    const limits = { ...LIMITS, loginPerIp: { burst: 2, perSec: 1 / 60 } };
    return new RateLimiter(new RedisLimiterStore(redis, silent, prefix, time), { now: () => Date.now() + skewMs }, true, undefined, limits);
  }

  async function allowedOfEight(one: RateLimiter, other: RateLimiter): Promise<number> {
    let allowed = 0;
    for (let i = 0; i < 8; i++) if ((await (i % 2 ? other : one).take('loginPerIp', '192.0.2.1')) === 0) allowed++;
    return allowed;
  }

  it('two instances a minute apart, taking in turn, get the burst and no more (1 a minute refill)', async () => {
    const prefix = `safechat:test:${randomBytes(4).toString('hex')}:`;
    // With each instance's own clock, the one ahead refilled a minute's token on every take: 6 of 8.
    expect(await allowedOfEight(await instance(prefix, 0), await instance(prefix, 60_000))).toBe(2);
  });

  it('with `caller` time (a test’s clock), the clock passed in still decides', async () => {
    const prefix = `safechat:test:${randomBytes(4).toString('hex')}:`;
    expect(await allowedOfEight(await instance(prefix, 0, 'caller'), await instance(prefix, 60_000, 'caller'))).toBe(6);
  });
});
