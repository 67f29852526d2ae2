import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api } from '../_helpers/api.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';
import { connect } from '../_helpers/ws.js';

const DAY = 86_400_000;

describeEachDialect('event retention', (dialect) => {
  let s: TestServer;
  let api: Api;
  let skew = 0;
  const clock = { now: () => Date.now() + skew };

  beforeAll(async () => {
    s = await testServer({ dialect, listen: true, overrides: { clock, noJobs: true } });
    api = new Api(s.app);
  });
  afterAll(() => s.close());

  it('keeps events 30 days, prunes older ones, and tells a client resuming from before them to resync', async () => {
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const chat = await api.chat(a, b);
    const first = await connect(s.wsUrl, b.token);
    const startCursor = first.frames[0]!.data.cursor as string;
    first.close();
    await api.send(a, { chatId: chat.id });
    await api.send(a, { chatId: chat.id });

    skew = 29 * DAY;
    expect(await s.ctx.jobs.pruneEvents.runOnce()).toBe(0);
    const at29 = (await api.post('/auth/login', { username: b.username, password: b.password })).body;
    const stillThere = await connect(s.wsUrl, at29.accessToken, startCursor);
    await stillThere.count('message.new', 2);
    stillThere.close();

    skew = 31 * DAY;
    // A fresh login: the first token has long expired in this future.
    const later = (await api.post('/auth/login', { username: b.username, password: b.password })).body;
    const aLater = (await api.post('/auth/login', { username: a.username, password: a.password })).body;
    const recent = await api.send({ ...a, token: aLater.accessToken }, { chatId: chat.id });
    expect(await s.ctx.jobs.pruneEvents.runOnce()).toBeGreaterThanOrEqual(2);

    const stale = await connect(s.wsUrl, later.accessToken, startCursor);
    const resync = await stale.next((f) => f.type === 'resync');
    expect(resync.data).toEqual({ reason: 'cursor_expired' });
    expect(Number(resync.cursor)).toBeGreaterThanOrEqual(3);
    stale.close();

    // From a cursor inside the retained window, replay is exact.
    const fromPruneEdge = await connect(s.wsUrl, later.accessToken, String(Number(resync.cursor) - 1));
    const replay = await fromPruneEdge.next((f) => f.type === 'message.new');
    expect(replay.data.id).toBe(recent.id);
    fromPruneEdge.close();
    // History over REST is not affected by event retention.
    expect((await api.get(`/messages/${chat.id}`, later.accessToken)).body.messages).toHaveLength(3);
    skew = 0;
  });
});
