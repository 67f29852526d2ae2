/**
 * SECURITY.md AUTH-06 / T-ENUM-02: a wrong password for an account that exists and any password for
 * one that does not take the same time, so login timing does not tell who has an account (the
 * unknown name pays a dummy Argon2id verification at the production cost). Rate limits off so every
 * attempt is verified; samples interleaved so machine noise falls on both classes alike.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api, uniqueName } from '../_helpers/api.js';
import { testServer, type TestServer } from '../_helpers/server.js';

const WARMUP = 20;
const SAMPLES = 200;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

describe('T-ENUM-02: login timing does not reveal whether an account exists', () => {
  let srv: TestServer;
  let api: Api;
  let known: string;

  beforeAll(async () => {
    // The production Argon2id parameters (no override); every attempt reaches the hasher.
    srv = await testServer({ dialect: 'sqlite', env: { RATE_LIMITS: 'off' } });
    api = new Api(srv.app);
    known = (await api.register(uniqueName('enum'))).username;
  });
  afterAll(() => srv.close());

  it(`${SAMPLES} interleaved samples per class: medians within 10 %, a threshold classifier no better than 60 %`, { timeout: 180_000 }, async () => {
    const time = async (username: string): Promise<number> => {
      const t = process.hrtime.bigint();
      const r = await api.post('/auth/login', { username, password: 'wrong-Password-123456' });
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      expect(r.status).toBe(401);
      return ms;
    };
    const ghost = () => uniqueName('ghost');
    for (let i = 0; i < WARMUP; i++) {
      await time(known);
      await time(ghost());
    }
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      // Alternate which class goes first, so neither always follows the other.
      if (i % 2 === 0) {
        a.push(await time(known));
        b.push(await time(ghost()));
      } else {
        b.push(await time(ghost()));
        a.push(await time(known));
      }
    }
    const ma = median(a);
    const mb = median(b);
    const gap = Math.abs(ma - mb) / Math.max(ma, mb);
    // The best a watcher can do with one threshold: guess "exists" on the side of its median.
    const threshold = (ma + mb) / 2;
    const existsIsSlower = ma >= mb;
    const right = a.filter((x) => (x >= threshold) === existsIsSlower).length + b.filter((x) => (x < threshold) === existsIsSlower).length;
    const accuracy = right / (a.length + b.length);
    console.log(`T-ENUM-02: median known ${ma.toFixed(2)} ms, unknown ${mb.toFixed(2)} ms (gap ${(gap * 100).toFixed(1)} %); threshold classifier ${(accuracy * 100).toFixed(1)} %`);
    expect(gap).toBeLessThanOrEqual(0.1);
    expect(accuracy).toBeLessThanOrEqual(0.6);
  });
});
