import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api, b64, envelope, isErrorShape, type Session } from '../_helpers/api.js';
import { deleteUser } from '../../src/storage/repositories/users.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';

const MISSING = '01900000-0000-7000-8000-000000000000';

describeEachDialect('messages', (dialect) => {
  let s: TestServer;
  let api: Api;
  let alice: Session, bob: Session, carol: Session;
  let chatId: string;

  beforeAll(async () => {
    s = await testServer({ dialect });
    api = new Api(s.app);
    [alice, bob, carol] = await Promise.all([api.register(), api.register(), api.register()]);
    chatId = (await api.chat(alice, bob)).id;
  });
  afterAll(() => s.close());

  it('POST /messages by chatId: 201 with the message object, stored as sent', async () => {
    const body = { chatId, ...envelope(100), clientMessageId: 'c-1' };
    const res = await api.post('/messages', body, alice.token);
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      chatId,
      seq: expect.any(Number),
      senderId: alice.id,
      receiverId: bob.id,
      encryptedContent: body.encryptedContent,
      iv: body.iv,
      mac: body.mac,
      type: 'text',
      status: 'sent',
      clientMessageId: 'c-1',
      timestamp: expect.any(String),
    });
    const chat = await api.get(`/chats/${chatId}`, bob.token);
    expect(chat.body.lastMessageId).toBe(res.body.id);
  });

  it('POST /messages by receiverId finds the pair’s chat, or makes one', async () => {
    const viaReceiver = await api.post('/messages', { receiverId: bob.id, ...envelope() }, alice.token);
    expect(viaReceiver.status).toBe(201);
    expect(viaReceiver.body.chatId).toBe(chatId);
    const fresh = await api.post('/messages', { receiverId: carol.id, ...envelope() }, bob.token);
    expect(fresh.status).toBe(201);
    expect(fresh.body.seq).toBe(1);
    const chats = await api.get('/chats', carol.token);
    expect(chats.body.chats.map((c: { id: string }) => c.id)).toContain(fresh.body.chatId);
    expect((await api.post('/messages', { receiverId: MISSING, ...envelope() }, bob.token)).status).toBe(404);
    expect((await api.post('/messages', { receiverId: bob.id, ...envelope() }, bob.token)).status).toBe(400);
  });

  it('seq increases by one per message in a chat, also under concurrent sends', async () => {
    const [x, y] = await Promise.all([api.register(), api.register()]);
    const c = await api.chat(x, y);
    const sent = await Promise.all(Array.from({ length: 40 }, (_, i) => api.send(i % 2 ? x : y, { chatId: c.id })));
    expect(sent.map((m) => m.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  it('a retry with the same clientMessageId returns the original (200) and stores nothing new', async () => {
    const first = await api.post('/messages', { chatId, ...envelope(), clientMessageId: 'retry-1' }, alice.token);
    expect(first.status).toBe(201);
    const retry = await api.post('/messages', { chatId, ...envelope(), clientMessageId: 'retry-1' }, alice.token);
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);
    // Concurrent retries: one message.
    const burst = await Promise.all(Array.from({ length: 8 }, () => api.post('/messages', { chatId, ...envelope(), clientMessageId: 'retry-2' }, alice.token)));
    expect(new Set(burst.map((r) => r.body.id)).size).toBe(1);
    expect(burst.filter((r) => r.status === 201)).toHaveLength(1);
    // The id is per sender: bob may use the same one.
    expect((await api.post('/messages', { chatId, ...envelope(), clientMessageId: 'retry-1' }, bob.token)).status).toBe(201);
    const count = await s.ctx.db.db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).where('client_message_id', '=', 'retry-2').executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
  });

  it('validates the envelope strictly and changes nothing on 4xx', async () => {
    const before = await api.get(`/messages/${chatId}?limit=100`, alice.token);
    const good = { chatId, ...envelope() };
    const bad: [Record<string, unknown>, string?][] = [
      [{ ...good, encryptedContent: 'QU JD' }, 'invalid_base64'],
      [{ ...good, encryptedContent: 'Q!U@J#D=' }, 'invalid_base64'],
      [{ ...good, encryptedContent: 'QR==' }, 'invalid_base64'],
      [{ ...good, encryptedContent: 'QQ' }, 'invalid_base64'],
      [{ ...good, encryptedContent: 'QUJD-_==' }, 'invalid_base64'],
      [{ ...good, encryptedContent: '' }],
      [{ ...good, iv: b64(15) }, 'invalid_length'],
      [{ ...good, iv: b64(17) }, 'invalid_length'],
      [{ ...good, mac: b64(31) }, 'invalid_length'],
      [{ ...good, mac: b64(33) }, 'invalid_length'],
      [{ ...good, mac: b64(16) }, 'invalid_length'], // a GCM tag with CBC's 16-byte iv
      [{ ...good, iv: b64(12), mac: b64(15) }, 'invalid_length'],
      [{ ...good, type: 'video' }],
      [{ ...good, type: 'TEXT' }],
      [{ ...good, clientMessageId: 'has space' }],
      [{ ...good, clientMessageId: 'x'.repeat(65) }],
      [{ ...good, senderId: bob.id }, 'unknown_field'],
      [{ ...good, seq: 1 }, 'unknown_field'],
      [{ ...good, status: 'read' }, 'unknown_field'],
      [{ ...good, chatId: 'not-an-id' }],
      [{ ...good, chatId: 42 }],
      [{ encryptedContent: good.encryptedContent, iv: good.iv, mac: good.mac, type: 'text' }],
      [{ chatId, iv: good.iv, mac: good.mac, type: 'text' }],
    ];
    for (const [body, reason] of bad) {
      const res = await api.post('/messages', body, alice.token);
      expect(res.status, JSON.stringify(body).slice(0, 120)).toBe(400);
      expect(isErrorShape(res.body, 'validation_error')).toBe(true);
      if (reason) expect(JSON.stringify(res.body.error.details)).toContain(reason);
    }
    expect((await api.post('/messages', { ...good, iv: b64(12) }, alice.token)).status).toBe(201);
    // AES-256-GCM as the SPEC allows it: a 12-byte iv and the 16-byte tag as the mac, stored as sent.
    const gcm = { ...good, iv: b64(12), mac: b64(16) };
    const stored = await api.post('/messages', gcm, alice.token);
    expect(stored.status).toBe(201);
    expect(stored.body).toMatchObject({ iv: gcm.iv, mac: gcm.mac });
    const after = await api.get(`/messages/${chatId}?limit=100`, alice.token);
    expect(after.body.messages.length).toBe(before.body.messages.length + 2);
  });

  it('ciphertext over 64 KiB decoded → 413; a body over 128 KiB → 413', async () => {
    expect((await api.post('/messages', { chatId, ...envelope(64 * 1024) }, alice.token)).status).toBe(201);
    const tooBig = await api.post('/messages', { chatId, ...envelope(64 * 1024 + 1) }, alice.token);
    expect(tooBig.status).toBe(413);
    expect(isErrorShape(tooBig.body, 'payload_too_large')).toBe(true);
    const huge = await api.post('/messages', { chatId, ...envelope(200 * 1024) }, alice.token);
    expect(huge.status).toBe(413);
    expect(isErrorShape(huge.body, 'payload_too_large')).toBe(true);
  });

  it('at the largest MAX_MESSAGE_BYTES (1 MiB), a ciphertext just over it is 413 too, not a schema 400', async () => {
    const big = await testServer({ dialect, env: { MAX_MESSAGE_BYTES: String(1024 * 1024) } });
    try {
      const api2 = new Api(big.app);
      const [x, y] = await Promise.all([api2.register(), api2.register()]);
      const chat = await api2.chat(x, y);
      expect((await api2.post('/messages', { chatId: chat.id, ...envelope(1024 * 1024) }, x.token)).status).toBe(201);
      const over = await api2.post('/messages', { chatId: chat.id, ...envelope(1024 * 1024 + 3) }, x.token);
      expect(over.status).toBe(413);
      expect(isErrorShape(over.body, 'payload_too_large')).toBe(true);
    } finally {
      await big.close();
    }
  });

  it('a non-member cannot send to or read a chat (404, as for a missing chat)', async () => {
    const send = await api.post('/messages', { chatId, ...envelope() }, carol.token);
    expect(send.status).toBe(404);
    const read = await api.get(`/messages/${chatId}`, carol.token);
    const missing = await api.get(`/messages/${MISSING}`, carol.token);
    expect(read.status).toBe(404);
    expect(read.body).toEqual(missing.body);
    expect((await api.post('/messages', { chatId, receiverId: carol.id, ...envelope() }, alice.token)).status).toBe(400);
  });

  it('pages history with limit, before and after; oldest first; latest page by default', async () => {
    const [x, y] = await Promise.all([api.register(), api.register()]);
    const c = await api.chat(x, y);
    const sent = [];
    for (let i = 0; i < 25; i++) sent.push(await api.send(i % 3 ? x : y, { chatId: c.id }));
    const latest = await api.get(`/messages/${c.id}?limit=10`, x.token);
    expect(latest.body.messages.map((m: { seq: number }) => m.seq)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    expect(latest.body.hasMore).toBe(true);
    const older = await api.get(`/messages/${c.id}?limit=10&before=${sent[15]!.id}`, x.token);
    expect(older.body.messages.map((m: { seq: number }) => m.seq)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(older.body.hasMore).toBe(true);
    const oldest = await api.get(`/messages/${c.id}?limit=10&before=${sent[5]!.id}`, x.token);
    expect(oldest.body.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(oldest.body.hasMore).toBe(false);
    const after = await api.get(`/messages/${c.id}?after=${sent[19]!.id}`, y.token);
    expect(after.body.messages.map((m: { seq: number }) => m.seq)).toEqual([21, 22, 23, 24, 25]);
    expect(after.body.hasMore).toBe(false);
    const between = await api.get(`/messages/${c.id}?after=${sent[4]!.id}&before=${sent[10]!.id}&limit=3`, y.token);
    expect(between.body.messages.map((m: { seq: number }) => m.seq)).toEqual([6, 7, 8]);
    expect(between.body.hasMore).toBe(true);
    const all = await api.get(`/messages/${c.id}`, x.token);
    expect(all.body.messages).toHaveLength(25);
    expect(all.body.hasMore).toBe(false);
    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'limit=-1', 'before=nope', `before=${MISSING}`, 'limit=1&limit=2', 'cursor=1']) {
      expect((await api.get(`/messages/${c.id}?${q}`, x.token)).status, q).toBe(400);
    }
    // A message of another chat is no cursor here.
    expect((await api.get(`/messages/${c.id}?before=${(await api.send(alice, { chatId })).id}`, x.token)).status).toBe(400);
  });

  it('status: receiver only, forward only, idempotent; read lowers unreadCount', async () => {
    const [x, y, z] = await Promise.all([api.register(), api.register(), api.register()]);
    const c = await api.chat(x, y);
    const m1 = await api.send(x, { chatId: c.id });
    const m2 = await api.send(x, { chatId: c.id });
    expect((await api.get(`/chats/${c.id}`, y.token)).body.unreadCount).toBe(2);

    const bySender = await api.put(`/messages/${m1.id}/status`, { status: 'delivered' }, x.token);
    expect(bySender.status).toBe(403);
    expect(isErrorShape(bySender.body, 'forbidden')).toBe(true);
    expect((await api.put(`/messages/${m1.id}/status`, { status: 'read' }, z.token)).status).toBe(404);
    expect((await api.put(`/messages/${MISSING}/status`, { status: 'read' }, y.token)).status).toBe(404);
    expect((await api.put(`/messages/${m1.id}/status`, { status: 'sent' }, y.token)).status).toBe(400);
    expect((await api.put(`/messages/${m1.id}/status`, { status: 'READ' }, y.token)).status).toBe(400);

    const delivered = await api.put(`/messages/${m1.id}/status`, { status: 'delivered' }, y.token);
    expect(delivered.status).toBe(200);
    expect(delivered.body).toMatchObject({ id: m1.id, status: 'delivered', deliveredAt: expect.any(String) });
    expect(delivered.body.readAt).toBeUndefined();
    expect((await api.get(`/chats/${c.id}`, y.token)).body.unreadCount).toBe(2);

    const read = await api.put(`/messages/${m1.id}/status`, { status: 'read' }, y.token);
    expect(read.body).toMatchObject({ status: 'read', deliveredAt: delivered.body.deliveredAt, readAt: expect.any(String) });
    expect((await api.get(`/chats/${c.id}`, y.token)).body.unreadCount).toBe(1);

    const again = await api.put(`/messages/${m1.id}/status`, { status: 'read' }, y.token);
    expect(again.status).toBe(200);
    expect((await api.get(`/chats/${c.id}`, y.token)).body.unreadCount).toBe(1);
    const back = await api.put(`/messages/${m1.id}/status`, { status: 'delivered' }, y.token);
    expect(back.status).toBe(409);
    expect(isErrorShape(back.body, 'conflict')).toBe(true);

    // sent → read directly also sets deliveredAt.
    const direct = await api.put(`/messages/${m2.id}/status`, { status: 'read' }, y.token);
    expect(direct.body).toMatchObject({ status: 'read', deliveredAt: expect.any(String), readAt: expect.any(String) });
    expect((await api.get(`/chats/${c.id}`, y.token)).body.unreadCount).toBe(0);
    // The sender sees the status in history.
    const hist = await api.get(`/messages/${c.id}`, x.token);
    expect(hist.body.messages.map((m: { status: string }) => m.status)).toEqual(['read', 'read']);
  });

  it('a key_exchange message marks the chat’s encryption established', async () => {
    const [x, y] = await Promise.all([api.register(), api.register()]);
    const c = await api.chat(x, y);
    expect(c.encryptionStatus).toBe('pending');
    await api.send(x, { chatId: c.id, type: 'key_exchange' });
    expect((await api.get(`/chats/${c.id}`, y.token)).body.encryptionStatus).toBe('established');
  });

  it('group chats: messages are addressed to one member; history shows only one’s own', async () => {
    const [x, y, z] = await Promise.all([api.register(), api.register(), api.register()]);
    const g = (await api.post('/chats', { participantIds: [y.id, z.id] }, x.token)).body;
    expect((await api.post('/messages', { chatId: g.id, ...envelope() }, x.token)).status).toBe(400);
    const toY = await api.send(x, { chatId: g.id, receiverId: y.id });
    const toZ = await api.send(x, { chatId: g.id, receiverId: z.id });
    expect([toY.seq, toZ.seq]).toEqual([1, 2]);
    expect((await api.get(`/messages/${g.id}`, y.token)).body.messages.map((m: { id: string }) => m.id)).toEqual([toY.id]);
    expect((await api.get(`/messages/${g.id}`, x.token)).body.messages).toHaveLength(2);
    expect((await api.put(`/messages/${toY.id}/status`, { status: 'read' }, z.token)).status).toBe(404);
  });
});

describeEachDialect('messages to a deleted account', (dialect) => {
  const storedIn = async (s: TestServer, chatId: string) =>
    Number((await s.ctx.db.db.selectFrom('messages').select((eb) => eb.fn.countAll().as('n')).where('chat_id', '=', chatId).executeTakeFirstOrThrow()).n);

  it('sending to someone whose account is gone answers 404, by receiverId or chatId', async () => {
    const s = await testServer({ dialect });
    const api = new Api(s.app);
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const first = await api.send(a, { receiverId: b.id });
    // By chatId too, so this server has the chat's members in memory when the account goes.
    await api.send(a, { chatId: first.chatId });
    expect((await api.request('DELETE', '/users/me', { token: b.token, body: { password: b.password } })).status).toBe(204);
    const byReceiver = await api.post('/messages', { receiverId: b.id, ...envelope() }, a.token);
    expect(byReceiver.status).toBe(404);
    const byChat = await api.post('/messages', { chatId: first.chatId, ...envelope() }, a.token);
    expect(byChat.status).toBe(404);
    expect((await api.post('/messages', { chatId: first.chatId, receiverId: b.id, ...envelope() }, a.token)).status).toBe(400);
    expect(await storedIn(s, first.chatId)).toBe(0); // the account's messages went with it; nothing new
    await s.close();
  });

  it('an account deleted elsewhere (another instance): the store refuses a send this server still routes', async () => {
    const s = await testServer({ dialect });
    const api = new Api(s.app);
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const first = await api.send(a, { receiverId: b.id });
    await api.send(a, { chatId: first.chatId });
    // Gone from the database without this server's account service knowing: its member list is stale.
    await deleteUser(s.ctx.db.db, b.id);
    const byChat = await api.post('/messages', { chatId: first.chatId, receiverId: b.id, ...envelope() }, a.token);
    expect(byChat.status).toBe(404);
    expect(byChat.body.error.message).toBe('receiver not found');
    expect(await storedIn(s, first.chatId)).toBe(0); // the account's messages went with it; nothing new
    await s.close();
  });

  it('a status update racing the sender’s account deletion answers 404, not 500', async () => {
    const s = await testServer({ dialect });
    const api = new Api(s.app);
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const m = await api.send(a, { receiverId: b.id });
    // The sender's account (and with it the message) goes after the route found the message and
    // before its write runs: the one interleaving that reaches the re-read.
    const db = s.ctx.db;
    const oneStatement = db.oneStatement.bind(db);
    db.oneStatement = (async (fn: Parameters<typeof oneStatement>[0]) => {
      db.oneStatement = oneStatement;
      await deleteUser(db.db, a.id);
      return oneStatement(fn);
    }) as typeof db.oneStatement;
    const res = await api.put(`/messages/${m.id}/status`, { status: 'read' }, b.token);
    expect(res.status).toBe(404);
    expect(isErrorShape(res.body, 'not_found')).toBe(true);
    await s.close();
  });
});
