import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LocalPubSub } from '../../src/pubsub/local.js';
import { Api, STRONG_PASSWORD, uniqueName } from '../_helpers/api.js';
import { keyUpload } from '../_helpers/keys.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';

/** Races between two instances on one database are settled by constraints, not by luck. */
describeEachDialect('races across two instances', (dialect) => {
  let a: TestServer, b: TestServer;
  let apiA: Api, apiB: Api;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-race-'));
    const pubsub = new LocalPubSub();
    const sqlitePath = path.join(dir, 'shared.db');
    a = await testServer({ dialect, sqlitePath, overrides: { pubsub } });
    b = await testServer({ dialect, sqlitePath, overrides: { pubsub }, ...(a.pgSchema ? { pgSchema: a.pgSchema } : {}) });
    // Distinct client addresses: the per-IP registration budget is not what these tests are about.
    apiA = new Api(a.app, '10.0.0.1');
    apiB = new Api(b.app, '10.0.0.2');
  });
  afterAll(async () => {
    await b.close();
    await a.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the same username registered at once on both instances: one 201, the rest 409', async () => {
    const name = uniqueName('race');
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? apiA : apiB).post('/auth/register', { username: i < 3 ? name : name.toUpperCase(), password: STRONG_PASSWORD })),
    );
    expect(results.map((r) => r.status).sort(), JSON.stringify(results.map((r) => r.body))).toEqual([201, 409, 409, 409, 409, 409]);
    const rows = await a.ctx.db.db.selectFrom('users').select('id').where('username_lower', '=', name.toLowerCase()).execute();
    expect(rows).toHaveLength(1);
  });

  it('the same one-to-one chat created at once on both instances: one chat', async () => {
    const x = await apiA.register();
    const y = await apiB.register();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? apiA.post('/chats', { participantIds: [y.id] }, x.token) : apiB.post('/chats', { participantIds: [x.id] }, y.token))),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
  });

  it('one-time pre-keys claimed at once through both instances: none handed out twice', async () => {
    const owner = await apiA.register();
    await apiA.put('/keys', keyUpload(undefined, 12, 1).body, owner.token);
    const claimers = await Promise.all(Array.from({ length: 4 }, (_, i) => (i % 2 ? apiA : apiB).register()));
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 ? apiA : apiB).get(`/keys/${owner.id}`, claimers[i % 4]!.token)),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const ids = results.map((r) => r.body.oneTimePreKey?.keyId).filter((k) => k !== undefined);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeLessThanOrEqual(12);
    expect((await apiB.get('/keys/count', owner.token)).body.oneTimePreKeys).toBe(12 - ids.length);
  });

  it('one clientMessageId sent at once through both instances: one message', async () => {
    const x = await apiA.register();
    const y = await apiB.register();
    const chat = await apiA.chat(x, y);
    const body = { chatId: chat.id, encryptedContent: Buffer.alloc(32, 1).toString('base64'), iv: Buffer.alloc(16, 2).toString('base64'), mac: Buffer.alloc(32, 3).toString('base64'), type: 'text', clientMessageId: 'same-1' };
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? apiA : apiB).post('/messages', body, x.token)));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect((await apiB.get(`/messages/${chat.id}`, y.token)).body.messages).toHaveLength(1);
  });
});
