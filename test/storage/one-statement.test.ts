import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresDatabase } from '../../src/storage/db.js';
import { Api, envelope } from '../_helpers/api.js';
import { keyUpload } from '../_helpers/keys.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';


/** PostgreSQL with one pooled connection: every statement goes through it, so its log is complete. */
function onePooledConnection(): Promise<TestServer> {
  return testServer({ dialect: 'postgres', cfg: (cfg) => cfg.db.kind === 'postgres' && (cfg.db.poolSize = 1) });
}

/** The SQL of every statement sent on the only pooled connection from now on. */
async function statementLog(s: TestServer): Promise<string[]> {
  const client = await (s.ctx.db as PostgresDatabase).pool.connect();
  const sent: string[] = [];
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: typeof query }).query = (...args: unknown[]) => {
    const first = args[0];
    sent.push(typeof first === 'string' ? first : String((first as pg.QueryConfig).text));
    return query(...args);
  };
  client.release();
  return sent;
}

describeEachDialect('a send records its writer', (dialect) => {
  it("stores the sender's first write in the chat with the message, and later sends leave it", async () => {
    const s = await testServer({ dialect });
    try {
      const api = new Api(s.app);
      const [a, b] = await Promise.all([api.register(), api.register()]);
      const chat = await api.chat(a, b);
      const wroteAt = async () => {
        const rows = await s.ctx.db.db.selectFrom('chat_members').select(['user_id', 'wrote_at']).where('chat_id', '=', chat.id).execute();
        return Object.fromEntries(rows.map((r) => [r.user_id, r.wrote_at === null ? null : Number(r.wrote_at)]));
      };
      expect(await wroteAt()).toEqual({ [a.id]: null, [b.id]: null });
      const first = await api.send(a, { chatId: chat.id });
      const at = Date.parse(first.timestamp);
      expect(await wroteAt()).toEqual({ [a.id]: at, [b.id]: null });
      await new Promise((r) => setTimeout(r, 5));
      await api.send(a, { chatId: chat.id });
      const reply = await api.send(b, { chatId: chat.id });
      expect(await wroteAt()).toEqual({ [a.id]: at, [b.id]: Date.parse(reply.timestamp) });
    } finally {
      await s.close();
    }
  });
});

describeEachDialect('a status update is all or nothing', (dialect) => {
  it("whose sender's mailbox is gone fails whole: the status and the unread count stay, no event", async () => {
    const s = await testServer({ dialect });
    try {
      const api = new Api(s.app);
      const [a, b] = await Promise.all([api.register(), api.register()]);
      const m = await api.send(a, { receiverId: b.id });
      // Not reachable through the API (a mailbox goes only with its account and its messages):
      // removed by hand, to see that the event's absence fails the update instead of being skipped.
      await s.ctx.db.db.deleteFrom('mailboxes').where('user_id', '=', a.id).execute();
      const res = await api.put(`/messages/${m.id}/status`, { status: 'read' }, b.token);
      expect(res.status).toBe(500);
      const row = await s.ctx.db.db.selectFrom('messages').select(['status', 'read_at']).where('id', '=', m.id).executeTakeFirstOrThrow();
      expect(row).toEqual({ status: 'sent', read_at: null });
      const member = await s.ctx.db.db.selectFrom('chat_members').select('unread_count').where('chat_id', '=', m.chatId).where('user_id', '=', b.id).executeTakeFirstOrThrow();
      expect(Number(member.unread_count)).toBe(1);
      expect(await s.ctx.db.db.selectFrom('events').select('seq').where('user_id', '=', a.id).execute()).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('PostgreSQL sends and status updates: one round trip each', () => {
  it('stores a message, and then its status, with one autocommitted statement each; a retry reads the original', async () => {
    const s = await onePooledConnection();
    try {
      const api = new Api(s.app);
      const [a, b] = await Promise.all([api.register(), api.register()]);
      const chat = await api.chat(a, b);
      const sent = await statementLog(s);
      const writes = () => sent.filter((q) => !/^select\b/i.test(q.trim()));

      await api.send(a, { chatId: chat.id, clientMessageId: 'cm-1' });
      expect(writes()).toHaveLength(1);
      expect(writes()[0]).toMatch(/^with "c" as \(update "chats".*"w" as \(update "chat_members".*insert into "messages"/s);

      sent.length = 0;
      await api.send(a, { chatId: chat.id });
      expect(writes()).toHaveLength(1);
      expect(writes()[0]).not.toContain('"w" as');
      // b has not written: looked up once for the strangers' allowance, then remembered a while.
      expect(sent.filter((q) => q.includes('select "wrote_at"'))).toEqual([]);

      // A retry fails its one statement on the unique key and is answered with the original.
      sent.length = 0;
      const again = await api.post('/messages', { ...envelope(), chatId: chat.id, clientMessageId: 'cm-1' }, a.token);
      expect(again.status).toBe(200);
      expect(again.body.seq).toBe(1);
      expect(writes()).toHaveLength(1);
      expect(sent.some((q) => /^(begin|commit|rollback)/i.test(q.trim()))).toBe(false);

      const page = await api.get(`/messages/${chat.id}`, b.token);
      expect(page.body.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2]);

      // A status update too: the message, the receiver's unread count and the sender's event.
      const first = page.body.messages[0].id as string;
      for (const status of ['delivered', 'read', 'read'] as const) {
        sent.length = 0;
        const res = await api.put(`/messages/${first}/status`, { status }, b.token);
        expect(res.status).toBe(200);
        expect(res.body.status).toBe(status);
        expect(writes()).toHaveLength(1);
        expect(writes()[0]).toMatch(/^with "m" as \(update "messages".*insert into "events"/s);
      }
      const chats = await api.get('/chats', b.token);
      expect(chats.body.chats.find((c: { id: string }) => c.id === chat.id).unreadCount).toBe(1);
      const events = await s.ctx.db.db.selectFrom('events').select(['seq', 'type', 'data']).where('user_id', '=', a.id).orderBy('seq').execute();
      expect(events.map((e) => [e.type, JSON.parse(e.data!).status])).toEqual([
        ['message.status', 'delivered'],
        ['message.status', 'read'],
      ]);
      expect(Number(events[1]!.seq)).toBe(Number(events[0]!.seq) + 1);
    } finally {
      await s.close();
    }
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('PostgreSQL identity change: one statement for every contact', () => {
  it("appends key.changed to each contact's log once, with one statement however many contacts", async () => {
    const s = await onePooledConnection();
    try {
      const api = new Api(s.app);
      const [x, y1, y2, y3, w] = await Promise.all([api.register(), api.register(), api.register(), api.register(), api.register()]);
      await api.put('/keys', keyUpload(undefined, 2).body, x.token);
      // y1 shares two chats with x (one event, not two); w shares none.
      expect((await api.post('/chats', { participantIds: [y1.id, y2.id] }, x.token)).status).toBe(201);
      await api.chat(x, y1);
      await api.chat(x, y3);
      const sent = await statementLog(s);

      expect((await api.put('/keys', keyUpload(undefined, 2).body, x.token)).status).toBe(200);
      expect(sent.filter((q) => /insert into "events"/.test(q))).toHaveLength(1);
      expect(sent.filter((q) => /update "mailboxes"/.test(q))).toHaveLength(1);
      const events = await s.ctx.db.db.selectFrom('events').select(['user_id', 'type', 'data']).where('type', '=', 'key.changed').execute();
      expect(events.map((e) => e.user_id).sort()).toEqual([y1.id, y2.id, y3.id].sort());
      for (const e of events) expect(JSON.parse(e.data!)).toEqual({ userId: x.id });
      expect(events.some((e) => e.user_id === w.id)).toBe(false);
    } finally {
      await s.close();
    }
  });
});
