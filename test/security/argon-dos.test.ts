/**
 * SECURITY.md AUTH-10 / T-DOS-ARGON: a login flood with long passwords at the production Argon2id
 * cost. Hashing runs on the thread pool, at most ARGON2_MAX_IN_FLIGHT at once with a bounded queue;
 * past that the answer is 503 + Retry-After at once. So every request is answered, quickly, the
 * event loop stays responsive and memory stays bounded.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api, uniqueName, type Res, type Session } from '../_helpers/api.js';
import { testServer, type TestServer } from '../_helpers/server.js';
import { LIMITS } from '../../src/limits/catalog.js';
import { expectError, freshIp } from './_support.js';

const LONG = (seed: string) => `${seed}-`.padEnd(128, 'x7Q');

describe('T-DOS-ARGON: 200 concurrent logins with 128-character passwords (production Argon2id)', () => {
  let srv: TestServer;
  const users: Session[] = [];

  beforeAll(async () => {
    // No argon2 override: the production parameters (m=19 MiB, t=2).
    srv = await testServer({ dialect: 'sqlite' });
    for (let i = 0; i < 5; i++) {
      const password = LONG(`pw${i}`);
      users.push(await new Api(srv.app, freshIp()).register(uniqueName('dos'), password));
    }
  });
  afterAll(() => srv.close());

  it('every request is answered (200/401/429/503) within 10 s; loop delay p99 < 100 ms; RSS < 1 GiB', async () => {
    // 10 right passwords, 90 wrong ones for the 5 accounts, 100 for names that do not exist
    // (a dummy verify each); every request from its own address, so per-IP limits do not decide.
    const attempts = Array.from({ length: 200 }, (_, i) => {
      if (i < 100) {
        const u = users[i % users.length]!;
        return { username: u.username, password: i < 10 ? u.password : LONG(`wrong${i}`) };
      }
      return { username: uniqueName('ghost'), password: LONG(`guess${i}`) };
    });
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);
    const t0 = performance.now();
    let answers: Res[];
    try {
      answers = await Promise.all(attempts.map((a) => new Api(srv.app, freshIp()).post('/auth/login', a)));
    } finally {
      clearInterval(sampler);
      loop.disable();
    }
    const elapsedMs = performance.now() - t0;

    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => ![200, 401, 429, 503].includes(s))).toEqual([]);
    // The right passwords that got through to a hasher logged in; none of the wrong ones did.
    expect(statuses.slice(10).filter((s) => s === 200)).toEqual([]);
    for (const r of answers.filter((a) => a.status === 503)) expectError(r, 503, 'unavailable', 'argon2 overload');
    for (const r of answers.filter((a) => a.status === 429)) expectError(r, 429, 'rate_limited', 'login limit');
    // More verifications than the hashers and their queue take: some were turned away at once.
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);

    expect(elapsedMs).toBeLessThan(10_000);
    expect(loop.percentile(99) / 1e6).toBeLessThan(100);
    expect(rssPeak).toBeLessThan(1024 ** 3);
    console.log(
      `T-DOS-ARGON: ${Math.round(elapsedMs)} ms; ` +
        `200: ${statuses.filter((s) => s === 200).length}, 401: ${statuses.filter((s) => s === 401).length}, ` +
        `429: ${statuses.filter((s) => s === 429).length}, 503: ${statuses.filter((s) => s === 503).length}; ` +
        `loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms; ` +
        `RSS ${Math.round(rssBefore / 2 ** 20)} → peak ${Math.round(rssPeak / 2 ** 20)} MiB`,
    );
  });

  it('a login turned away because the hashers are full (503) does not count as a failed guess for its account', async () => {
    const target = await new Api(srv.app, freshIp()).register(uniqueName('dos'), LONG('target'));
    // Fill the hashers and their queue with names that do not exist, then try the account.
    const flood = Array.from({ length: 300 }, (_, i) => new Api(srv.app, freshIp()).post('/auth/login', { username: uniqueName('flood'), password: LONG(`f${i}`) }));
    const turnedAway = Array.from({ length: 3 }, (_, i) => new Api(srv.app, freshIp()).post('/auth/login', { username: target.username, password: LONG(`w${i}`) }));
    const [floodAnswers, targetAnswers] = await Promise.all([Promise.all(flood), Promise.all(turnedAway)]);
    // The premise: some of the account's attempts met full hashers (503); any that got through were
    // checked (401) and count. Which is which depends on scheduling, so the count follows from it.
    const statuses = targetAnswers.map((r) => r.status);
    expect(statuses.every((st) => st === 503 || st === 401)).toBe(true);
    expect(statuses.filter((st) => st === 503).length).toBeGreaterThan(0);
    expect(floodAnswers.some((r) => r.status === 503)).toBe(true);
    // Its failure bucket lost only the checked ones: the rest of the burst is still checked, then 429.
    const left = LIMITS.loginFailuresPerAccount.burst - statuses.filter((st) => st === 401).length;
    for (let i = 0; i < left; i++) expect((await new Api(srv.app, freshIp()).post('/auth/login', { username: target.username, password: LONG(`x${i}`) })).status, `guess ${i + 1}`).toBe(401);
    expect((await new Api(srv.app, freshIp()).post('/auth/login', { username: target.username, password: LONG('y') })).status).toBe(429);
  });
});
