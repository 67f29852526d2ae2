import { randomUUID } from 'node:crypto';
import type { Chat } from '@safechat/protocol';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api, isErrorShape, type Session } from '../_helpers/api.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';

const MISSING = '01900000-0000-7000-8000-000000000000';

/** Lets the clock move on: activity in the same millisecond as a chat's creation would tie. */
const later = () => new Promise((r) => setTimeout(r, 3));

describeEachDialect('users and chats', (dialect) => {
  let s: TestServer;
  let api: Api;
  let alice: Session, bob: Session, carol: Session;

  beforeAll(async () => {
    s = await testServer({ dialect });
    api = new Api(s.app);
    [alice, bob, carol] = await Promise.all([api.register(), api.register(), api.register()]);
  });
  afterAll(() => s.close());

  it('GET /users/me, /users/:id and /users?username= return user objects', async () => {
    const me = await api.get('/users/me', alice.token);
    expect(me.status).toBe(200);
    expect(me.body).toEqual({ id: alice.id, username: alice.username, publicKey: null, createdAt: expect.any(String) });
    expect((await api.get(`/users/${bob.id}`, alice.token)).body.username).toBe(bob.username);
    const byName = await api.get(`/users?username=${bob.username.toUpperCase()}`, alice.token);
    expect(byName.status).toBe(200);
    expect(byName.body.id).toBe(bob.id);
  });

  it('user lookups: 404 for unknown, 400 for malformed, 401 without a token', async () => {
    expect((await api.get(`/users/${MISSING}`, alice.token)).status).toBe(404);
    expect((await api.get('/users?username=nobody_here_at_all', alice.token)).status).toBe(404);
    expect((await api.get('/users/not-an-id', alice.token)).status).toBe(400);
    expect((await api.get('/users', alice.token)).status).toBe(400);
    expect((await api.get('/users?username=a&username=b', alice.token)).status).toBe(400);
    const anon = await api.get('/users/me');
    expect(anon.status).toBe(401);
    expect(isErrorShape(anon.body, 'unauthorized')).toBe(true);
    expect(anon.headers['www-authenticate']).toBe('Bearer');
  });

  it('POST /chats: 201 for a new pair, 200 with the same chat afterwards, from either side', async () => {
    const a = await api.post('/chats', { participantIds: [bob.id] }, alice.token);
    expect(a.status).toBe(201);
    expect(a.body).toEqual({
      id: expect.any(String),
      participantIds: [alice.id, bob.id].sort(),
      lastMessageId: null,
      unreadCount: 0,
      encryptionStatus: 'pending',
      lastActivityAt: expect.any(String),
      createdAt: expect.any(String),
    });
    const again = await api.post('/chats', { participantIds: [bob.id, alice.id] }, alice.token);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(a.body.id);
    const fromBob = await api.post('/chats', { participantIds: [alice.id] }, bob.token);
    expect(fromBob.status).toBe(200);
    expect(fromBob.body.id).toBe(a.body.id);
  });

  it('concurrent creation of one pair yields one chat', async () => {
    const [x, y] = await Promise.all([api.register(), api.register()]);
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => api.post('/chats', { participantIds: [y.id] }, x.token)),
      ...Array.from({ length: 5 }, () => api.post('/chats', { participantIds: [x.id] }, y.token)),
    ]);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(9);
  });

  it('group chats are always new (201)', async () => {
    const g1 = await api.post('/chats', { participantIds: [bob.id, carol.id] }, alice.token);
    const g2 = await api.post('/chats', { participantIds: [bob.id, carol.id] }, alice.token);
    expect(g1.status).toBe(201);
    expect(g2.status).toBe(201);
    expect(g1.body.id).not.toBe(g2.body.id);
    expect(g1.body.participantIds).toEqual([alice.id, bob.id, carol.id].sort());
  });

  it('POST /chats refuses bad input', async () => {
    expect((await api.post('/chats', { participantIds: [MISSING] }, alice.token)).status).toBe(404);
    expect((await api.post('/chats', { participantIds: [alice.id] }, alice.token)).status).toBe(400);
    expect((await api.post('/chats', { participantIds: [] }, alice.token)).status).toBe(400);
    expect((await api.post('/chats', { participantIds: ['x'] }, alice.token)).status).toBe(400);
    expect((await api.post('/chats', { participantIds: [bob.id], name: 'x' }, alice.token)).status).toBe(400);
    expect((await api.post('/chats', { participantIds: [bob.id] })).status).toBe(401);
  });

  it('GET /chats lists the caller’s chats, most recent activity first, with own unread counts', async () => {
    const [u, v, w] = await Promise.all([api.register(), api.register(), api.register()]);
    const uv = await api.chat(u, v);
    const uw = await api.chat(u, w);
    await api.send(v, { chatId: uv.id });
    await api.send(v, { chatId: uv.id });
    await api.send(w, { chatId: uw.id });
    const list = await api.get('/chats', u.token);
    expect(list.status).toBe(200);
    expect(list.body.chats.map((c: { id: string }) => c.id)).toEqual([uw.id, uv.id]);
    expect(list.body.chats[1].unreadCount).toBe(2);
    expect(list.body.chats[0].unreadCount).toBe(1);
    const vList = await api.get('/chats', v.token);
    expect(vList.body.chats).toHaveLength(1);
    expect(vList.body.chats[0].unreadCount).toBe(0);
    expect(vList.body.chats[0].lastMessageId).toBe(list.body.chats[1].lastMessageId);
  });

  it('GET /chats pages: limit and nextCursor walk every chat once, in order, with hasMore on all but the last page', async () => {
    const [u, ...others] = (await Promise.all(Array.from({ length: 6 }, () => api.register()))) as [Session, ...Session[]];
    const chats = [];
    // A few ms apart: chats made in one millisecond would be ordered by their random ids.
    for (const o of others) {
      chats.push(await api.chat(u, o));
      await later();
    }
    await later();
    await api.send(others[1]!, { chatId: chats[1]!.id }); // activity reorders: chats[1] is the most recent
    const whole = await api.get('/chats', u.token);
    expect(whole.status).toBe(200);
    expect(whole.body.hasMore).toBe(false);
    expect(whole.body.nextCursor).toBeNull();
    const order = whole.body.chats.map((c: Chat) => c.id);
    expect(order).toEqual([chats[1]!.id, chats[4]!.id, chats[3]!.id, chats[2]!.id, chats[0]!.id]);

    const seen: string[] = [];
    const pages: { size: number; hasMore: boolean }[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: any } = await api.get(`/chats?limit=2${cursor ? `&cursor=${cursor}` : ''}`, u.token);
      expect(res.status).toBe(200);
      seen.push(...res.body.chats.map((c: Chat) => c.id));
      pages.push({ size: res.body.chats.length, hasMore: res.body.hasMore });
      expect(res.body.nextCursor === null).toBe(!res.body.hasMore);
      cursor = res.body.nextCursor;
    } while (cursor !== null && pages.length < 10);
    expect(seen).toEqual(order);
    expect(pages).toEqual([{ size: 2, hasMore: true }, { size: 2, hasMore: true }, { size: 1, hasMore: false }]);
  });

  it('GET /chats: a chat that becomes active between pages moves to the top and is not repeated further down', async () => {
    const [u, ...others] = (await Promise.all(Array.from({ length: 4 }, () => api.register()))) as [Session, ...Session[]];
    const chats = [];
    // A few ms apart: chats made in one millisecond would be ordered by their random ids.
    for (const o of others) {
      chats.push(await api.chat(u, o));
      await later();
    }
    const first = await api.get('/chats?limit=1', u.token);
    expect(first.body.chats.map((c: Chat) => c.id)).toEqual([chats[2]!.id]);
    await later();
    await api.send(others[0]!, { chatId: chats[0]!.id }); // the last chat of the list becomes the first
    const rest = await api.get(`/chats?limit=10&cursor=${first.body.nextCursor}`, u.token);
    expect(rest.body.chats.map((c: Chat) => c.id)).toEqual([chats[1]!.id]);
    expect(rest.body.hasMore).toBe(false);
    expect((await api.get('/chats?limit=1', u.token)).body.chats[0].id).toBe(chats[0]!.id);
  });

  it('GET /chats refuses a bad limit or cursor with a 400 in the error shape', async () => {
    const ab = await api.chat(alice, bob);
    const good = (await api.get('/chats?limit=1', alice.token)).body.nextCursor ?? `1700000000000_${ab.id}`;
    for (const q of ['limit=0', 'limit=201', 'limit=abc', 'limit=1.5', 'cursor=', 'cursor=abc', `cursor=${ab.id}`, `cursor=12_${ab.id.toUpperCase()}`, `cursor=1234567890123456_${ab.id}`, `cursor=${good}&cursor=${good}`, 'sort=asc']) {
      const res = await api.get(`/chats?${q}`, alice.token);
      expect(res.status, q).toBe(400);
      expect(isErrorShape(res.body, 'validation_error'), q).toBe(true);
    }
    expect((await api.get(`/chats?limit=200&cursor=${good}`, alice.token)).status).toBe(200);
  });

  it('GET /chats stays bounded when others have put the caller into tens of thousands of chats', async () => {
    const [victim, spammer] = await Promise.all([api.register(), api.register()]);
    // More chats than SQLite allows variables in one statement (32,766): written directly, as
    // creating them through the API would take hours under the chat-creation limit.
    const total = 33_000;
    const base = Date.now() - total;
    const ids = Array.from({ length: total }, () => randomUUID());
    await s.ctx.db.transaction(async (tx) => {
      for (let i = 0; i < total; i += 1_000) {
        const slice = ids.slice(i, i + 1_000);
        await tx.db
          .insertInto('chats')
          .values(slice.map((id, j) => ({ id, kind: 'group' as const, direct_key: null, last_message_id: null, last_activity_at: base + i + j, encryption_status: 'pending' as const, created_by: spammer.id, created_at: base + i + j })))
          .execute();
        await tx.db
          .insertInto('chat_members')
          .values(slice.flatMap((chat_id) => [victim.id, spammer.id].map((user_id) => ({ chat_id, user_id, joined_at: base }))))
          .execute();
      }
    });
    const page = await api.get('/chats', victim.token);
    expect(page.status).toBe(200);
    expect(page.body.chats).toHaveLength(100);
    expect(page.body.hasMore).toBe(true);
    expect(page.body.chats[0].id).toBe(ids[total - 1]);
    expect(page.body.chats[0].participantIds).toEqual([victim.id, spammer.id].sort());
    const next = await api.get(`/chats?limit=200&cursor=${page.body.nextCursor}`, victim.token);
    expect(next.status).toBe(200);
    expect(next.body.chats.map((c: Chat) => c.id)).toEqual(ids.slice(total - 300, total - 100).reverse());
  });

  it('a deleted member’s unread messages leave the others’ unread counts with them', async () => {
    const [u, v, w] = await Promise.all([api.register(), api.register(), api.register()]);
    const g = (await api.post('/chats', { participantIds: [v.id, w.id] }, u.token)).body as Chat;
    const uw = await api.chat(u, w);
    await api.send(v, { chatId: g.id, receiverId: u.id });
    const read = await api.send(w, { chatId: g.id, receiverId: u.id });
    await api.send(w, { chatId: g.id, receiverId: u.id });
    await api.send(w, { chatId: g.id, receiverId: v.id });
    await api.send(w, { chatId: uw.id });
    expect((await api.put(`/messages/${read.id}/status`, { status: 'read' }, u.token)).status).toBe(200);
    expect((await api.get(`/chats/${g.id}`, u.token)).body.unreadCount).toBe(2);
    expect((await api.get(`/chats/${g.id}`, v.token)).body.unreadCount).toBe(1);
    expect((await api.request('DELETE', '/users/me', { token: w.token, body: { password: w.password } })).status).toBe(204);
    expect((await api.get(`/chats/${g.id}`, u.token)).body.unreadCount).toBe(1);
    expect((await api.get(`/chats/${g.id}`, v.token)).body.unreadCount).toBe(0);
    expect((await api.get(`/chats/${uw.id}`, u.token)).body.unreadCount).toBe(0);
  });

  it('a non-member gets the same 404 as for a chat that does not exist', async () => {
    const ab = await api.chat(alice, bob);
    const foreign = await api.get(`/chats/${ab.id}`, carol.token);
    const missing = await api.get(`/chats/${MISSING}`, carol.token);
    expect(foreign.status).toBe(404);
    expect(foreign.body).toEqual(missing.body);
    expect((await api.get(`/chats/${ab.id}`, alice.token)).status).toBe(200);
    expect((await api.get('/chats', carol.token)).body.chats.find((c: { id: string }) => c.id === ab.id)).toBeUndefined();
  });
});
