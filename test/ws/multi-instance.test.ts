import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { envelope } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, wsServer, type WsServer } from '../_helpers/ws.js';
import { LocalPubSub } from '../../src/pubsub/local.js';

/**
 * Two app instances in one process, as two servers behind a load balancer: one database, one
 * pub/sub (LocalPubSub stands in for Redis). A user's sockets may be on either.
 */
describeEachDialect('ws across two instances', (dialect) => {
  let one: WsServer;
  let two: WsServer;
  let dir: string | undefined;

  beforeAll(async () => {
    const pubsub = new LocalPubSub();
    dir = dialect === 'sqlite' ? fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-ws-')) : undefined;
    const sqlitePath = dir ? path.join(dir, 'shared.db') : undefined;
    one = await wsServer({ dialect, sqlitePath, overrides: { pubsub } });
    two = await wsServer({ dialect, sqlitePath, ...(one.pgSchema ? { pgSchema: one.pgSchema } : {}), overrides: { pubsub } });
  });
  afterAll(async () => {
    await two?.close();
    await one?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => closeAllSockets());

  it('a user on instance one receives live what was sent through instance two, REST and socket', async () => {
    const { a, b, chat } = await one.pair();
    const sb = await connect(one.wsUrl, b.token);
    const sa = await connect(two.wsUrl, a.token);

    const viaRest = await two.api.send(a, { chatId: chat.id });
    const viaSocket = await sa.request('x1', { chatId: chat.id, ...envelope() });
    const [n1, n2] = await sb.count('message.new', 2);
    expect(n1!.data).toEqual(viaRest);
    expect(n2!.data).toEqual(viaSocket.data);
    expect(Number(n2!.cursor)).toBeGreaterThan(Number(n1!.cursor));
  });

  it('statuses cross instances, and sockets of one user on both instances each get every event once', async () => {
    const { a, b, chat } = await one.pair();
    const aOnOne = await connect(one.wsUrl, a.token);
    const aOnTwo = await connect(two.wsUrl, a.token);
    const sent = await Promise.all([0, 1, 2].map(() => one.api.send(a, { chatId: chat.id })));
    for (const m of sent) expect((await two.api.put(`/messages/${m.id}/status`, { status: 'read' }, b.token)).status).toBe(200);

    for (const s of [aOnOne, aOnTwo]) {
      await s.count('message.status', 3);
      await s.sync();
      expect(s.ofType('message.status').map((f) => f.data.messageId)).toEqual(sent.map((m) => m.id));
      expect(s.ofType('message.status').every((f) => f.data.status === 'read')).toBe(true);
    }
    expect(aOnOne.events().map((f) => f.cursor)).toEqual(aOnTwo.events().map((f) => f.cursor));
  });

  it('a client that drops on one instance resumes on the other with its cursor', async () => {
    const { a, b, chat } = await one.pair();
    const first = await connect(one.wsUrl, b.token);
    await one.api.send(a, { chatId: chat.id });
    await first.count('message.new', 1);
    const processed = first.lastCursor();
    first.close();

    const missed = [];
    for (let i = 0; i < 5; i++) missed.push(await (i % 2 ? one : two).api.send(a, { chatId: chat.id }));
    const s = await connect(two.wsUrl, b.token, processed);
    await s.count('message.new', 5);
    const live = await one.api.send(a, { chatId: chat.id });
    await s.next((f) => f.data?.id === live.id);
    await s.sync();
    expect(s.ofType('message.new').map((f) => f.data.id)).toEqual([...missed, live].map((m) => m.id));
  });

  it('logout through one instance closes the session’s socket on the other', async () => {
    const u = await one.user();
    const onTwo = await connect(two.wsUrl, u.token);
    const login = await two.api.post('/auth/login', { username: u.username, password: u.password });
    const otherSession = await connect(two.wsUrl, login.body.accessToken);
    expect((await one.api.post('/auth/logout', { refreshToken: u.refreshToken })).status).toBe(204);
    expect(await onTwo.waitClose()).toBe(4401);
    await otherSession.sync();
    expect(otherSession.closeCode).toBeNull();
  });
});
