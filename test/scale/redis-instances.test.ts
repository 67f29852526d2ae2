import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLimiterStore } from '../../src/limits/redis-store.js';
import { RedisPubSub } from '../../src/pubsub/redis.js';
import { Api, envelope, type Session } from '../_helpers/api.js';
import { dialects, testServer, type TestServer } from '../_helpers/server.js';
import { connect, TestSocket } from '../_helpers/ws.js';

const REDIS_URL = process.env.TEST_REDIS_URL;
const silent = pino({ level: 'silent' });

if (!REDIS_URL) console.warn('[tests] TEST_REDIS_URL is not set: the two-instance Redis suite is SKIPPED.');

/** Two app instances on one database and one Redis, like two containers behind a load balancer. */
for (const dialect of dialects) {
  describe.skipIf(!REDIS_URL)(`two instances with Redis [${dialect}]`, () => {
    let a: TestServer, b: TestServer;
    let apiA: Api, apiB: Api;
    let dir: string;
    const prefix = `safechat:test:${randomBytes(4).toString('hex')}:`;

    async function instance(extra: { pgSchema?: string; sqlitePath?: string }): Promise<TestServer> {
      const pubsub = await RedisPubSub.connect(REDIS_URL!, silent);
      return testServer({
        dialect,
        listen: true,
        ...extra,
        overrides: { pubsub, limiterStore: new RedisLimiterStore(new Redis(REDIS_URL!), silent, prefix) },
      });
    }

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-2i-'));
      const sqlitePath = path.join(dir, 'shared.db');
      a = await instance(dialect === 'sqlite' ? { sqlitePath } : {});
      b = await instance(dialect === 'sqlite' ? { sqlitePath } : { pgSchema: a.pgSchema! });
      apiA = new Api(a.app);
      apiB = new Api(b.app);
    });
    afterAll(async () => {
      await b.close();
      await a.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    async function pair(): Promise<[Session, Session, string]> {
      const alice = await apiA.register();
      const bob = await apiB.register();
      const chat = await apiA.chat(alice, bob);
      return [alice, bob, chat.id];
    }

    it('a user on A receives live what was sent through B, and the sender on B sees the status set on A', async () => {
      const [alice, bob, chatId] = await pair();
      const aliceWs = await connect(a.wsUrl, alice.token);
      const bobWs = await connect(b.wsUrl, bob.token);
      const m = await apiB.send(bob, { chatId });
      const got = await aliceWs.next((f) => f.type === 'message.new');
      expect(got.data).toMatchObject({ id: m.id, seq: m.seq, senderId: bob.id });
      expect((await apiA.put(`/messages/${m.id}/status`, { status: 'read' }, alice.token)).status).toBe(200);
      const status = await bobWs.next((f) => f.type === 'message.status');
      expect(status.data).toMatchObject({ messageId: m.id, chatId, status: 'read' });
      expect(bobWs.ofType('message.new')).toHaveLength(0);
      aliceWs.close();
      bobWs.close();
    });

    it('many messages across instances arrive once each, in seq order', async () => {
      const [alice, bob, chatId] = await pair();
      const aliceWs = await connect(a.wsUrl, alice.token);
      const sent = await Promise.all(Array.from({ length: 60 }, () => apiB.send(bob, { chatId })));
      const frames = await aliceWs.count('message.new', 60, 10_000);
      expect(frames.map((f) => f.data.seq)).toEqual(sent.map((m) => m.seq).sort((x, y) => x - y));
      expect(new Set(frames.map((f) => f.data.id)).size).toBe(60);
      aliceWs.close();
    });

    it('resume works on whichever instance the client reconnects to', async () => {
      const [alice, bob, chatId] = await pair();
      const first = await connect(a.wsUrl, alice.token);
      await apiB.send(bob, { chatId });
      const live = await first.next((f) => f.type === 'message.new');
      first.close();
      const missed = [];
      for (let i = 0; i < 5; i++) missed.push(await apiA.send(bob, { chatId }));
      const again = await connect(b.wsUrl, alice.token, live.cursor);
      const replayed = await again.count('message.new', 5);
      expect(replayed.map((f) => f.data.id)).toEqual(missed.map((m) => m.id));
      const later = await apiA.send(bob, { chatId });
      expect((await again.next((f) => f.type === 'message.new' && f.data.id === later.id)).data.seq).toBe(later.seq);
      again.close();
    });

    it('logout on one instance closes that session’s sockets on the other', async () => {
      const alice = await apiA.register();
      const ws = await connect(b.wsUrl, alice.token);
      expect((await apiA.post('/auth/logout', { refreshToken: alice.refreshToken })).status).toBe(204);
      expect(await ws.waitClose(5000)).toBe(4401);
    });

    it('rate limits are shared: a budget spent on A is spent on B', async () => {
      const name = `ghost_${randomBytes(4).toString('hex')}`;
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await (i % 2 ? apiB : apiA).post('/auth/login', { username: name, password: 'wrong-password-1' })).status);
      expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    });

    it('a right password gives back the failure it reserved, in the shared bucket too', async () => {
      const bob = await apiA.register();
      const login = (api: Api, password: string) => api.post('/auth/login', { username: bob.username, password }).then((r) => r.status);
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push(await login(i % 2 ? apiB : apiA, 'wrong-password-1'));
      // Four failures spent; each right login takes the last token and gives it back.
      for (let i = 0; i < 3; i++) statuses.push(await login(i % 2 ? apiA : apiB, bob.password));
      statuses.push(await login(apiB, 'wrong-password-1'), await login(apiA, bob.password));
      expect(statuses).toEqual([401, 401, 401, 401, 200, 200, 200, 401, 429]);
    });

    it('GET /health reports Redis', async () => {
      const res = await apiA.get('/health');
      expect(res.body).toEqual({ status: 'ok', checks: { database: 'ok', redis: 'ok' } });
    });

    it('sockets on both instances of one user both receive', async () => {
      const [alice, bob, chatId] = await pair();
      const onA = await connect(a.wsUrl, alice.token);
      const onB = new TestSocket(b.wsUrl);
      await onB.opened;
      onB.send({ type: 'auth', token: alice.token });
      await onB.next((f) => f.type === 'ready');
      const m = await apiA.send(bob, { chatId, ...envelope(10) });
      await onA.next((f) => f.type === 'message.new' && f.data.id === m.id);
      await onB.next((f) => f.type === 'message.new' && f.data.id === m.id);
      onA.close();
      onB.close();
    });
  });
}
