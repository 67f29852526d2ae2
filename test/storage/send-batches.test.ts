/**
 * PostgreSQL: sends that arrive together share one statement (decision 0025). What each send is
 * told and what is stored must be what the same sends one by one would have made.
 */
import type pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresDatabase } from '../../src/storage/db.js';
import { MIN_BATCH } from '../../src/storage/repositories/message-batches.js';
import { storeMessage, type MessageRow } from '../../src/storage/repositories/messages.js';
import { uuidv7 } from '../../src/util/ids.js';
import { Api, envelope, type Session } from '../_helpers/api.js';
import { testServer, type TestServer } from '../_helpers/server.js';

function row(chatId: string, from: Session, to: Session, extra: Partial<MessageRow> = {}): MessageRow {
  const now = Date.now();
  return {
    id: uuidv7(now), chat_id: chatId, seq: 0, sender_id: from.id, receiver_id: to.id, ...envelopeRow(), status: 'sent',
    client_message_id: null, created_at: now, delivered_at: null, read_at: null, receiver_seq: null, ...extra,
  };
}
function envelopeRow() {
  const e = envelope();
  return { encrypted_content: e.encryptedContent, iv: e.iv, mac: e.mac, type: 'text' };
}
/** Sends started in one turn, each as the server runs it (one autocommitted unit). */
function sendOn(db: PostgresDatabase, rows: MessageRow[], opts: { establish?: Set<MessageRow>; markWriter?: boolean } = {}) {
  return Promise.allSettled(
    rows.map((r) => db.oneStatement((tx) => storeMessage(tx.db, r, { establishesEncryption: opts.establish?.has(r) ?? false, markWriter: opts.markWriter ?? false }))),
  );
}

describe.skipIf(!process.env.TEST_DATABASE_URL)('PostgreSQL: the batch statement is planned for the tables as they are', () => {
  // A named statement's generic plan, made while `messages` was nearly empty, scanned the whole
  // table for the retry check on every batch; with autovacuum off nothing ever re-planned it, and
  // T-LOAD-02's latency climbed with the table (decision 0025).
  it('after batches on a small table, a grown messages table is not scanned by the next batch', async () => {
    const s = await testServer({ dialect: 'postgres', cfg: (c) => void (c.db.kind === 'postgres' && (c.db.poolSize = 1)) });
    try {
      const db = s.ctx.db as PostgresDatabase;
      const api = new Api(s.app);
      const [a, b, c, d] = await Promise.all([api.register(), api.register(), api.register(), api.register()]);
      const ab = await api.chat(a, b);
      // Batches big enough that PostgreSQL settles on a generic plan (it estimates an array
      // parameter at 10 elements, so after five custom plans of bigger batches the generic is cheaper).
      for (let i = 0; i < 8; i++) {
        const results = await sendOn(db, Array.from({ length: 30 }, (_, j) => row(ab.id, j % 2 ? a : b, j % 2 ? b : a, { client_message_id: `small-${i}-${j}` })));
        expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
      }
      // The table grows, with no ANALYZE in between (as with autovacuum off, or between its runs).
      const cd = await api.chat(c, d);
      await sql`insert into messages (id, chat_id, seq, sender_id, receiver_id, encrypted_content, iv, mac, type, status, client_message_id, created_at)
        select 'bulk-' || n, ${cd.id}, n, ${c.id}, ${d.id}, repeat('A', 344), 'iv', 'mac', 'text', 'sent', 'bulk-' || n, n
        from generate_series(1, 40000) n`.execute(db.db);
      await sql`update chats set last_seq = 40000 where id = ${cd.id}`.execute(db.db);

      // One pooled connection: the statistics flushed here include every statement it ran.
      const scans = async () => {
        await sql`select pg_stat_force_next_flush()`.execute(db.db);
        const r = await sql<{ seq_scan: string; idx_scan: string }>`select seq_scan, idx_scan from pg_stat_user_tables where schemaname = ${s.pgSchema!} and relname = 'messages'`.execute(db.db);
        return { seq: Number(r.rows[0]!.seq_scan), idx: Number(r.rows[0]!.idx_scan) };
      };
      const before = await scans();
      const rows = Array.from({ length: 10 }, (_, i) => (i % 2 ? row(ab.id, a, b, { client_message_id: `grown-${i}` }) : row(cd.id, c, d, { client_message_id: `grown-${i}` })));
      const results = await sendOn(db, rows);
      expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
      expect(rows.filter((r) => r.chat_id === cd.id).map((r) => r.seq)).toEqual([40001, 40002, 40003, 40004, 40005]);
      const after = await scans();
      expect({ seqScans: after.seq - before.seq, indexUsed: after.idx > before.idx }).toEqual({ seqScans: 0, indexUsed: true });
    } finally {
      await s.close();
    }
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('PostgreSQL: concurrent sends share a statement', () => {
  let s: TestServer;
  let api: Api;
  let db: PostgresDatabase;
  let a: Session, b: Session, c: Session;
  /** The SQL of every statement the pool's connections are sent. */
  const sent: string[] = [];

  beforeAll(async () => {
    s = await testServer({ dialect: 'postgres' });
    api = new Api(s.app);
    db = s.ctx.db as PostgresDatabase;
    db.pool.on('acquire', (client: pg.PoolClient & { logged?: boolean }) => {
      if (client.logged) return;
      client.logged = true;
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: typeof query }).query = (...args: unknown[]) => {
        const first = args[0];
        sent.push(typeof first === 'string' ? first : String((first as pg.QueryConfig).text));
        return query(...args);
      };
    });
    [a, b, c] = await Promise.all([api.register(), api.register(), api.register()]);
  });
  afterAll(() => s?.close());

  const sendAll = (rows: MessageRow[], opts: { establish?: Set<MessageRow>; markWriter?: boolean } = {}) => sendOn(db, rows, opts);

  it('thirty sends in one turn are one statement, numbered in order per chat and per receiver, counters summed', async () => {
    const ab = await api.chat(a, b);
    const group = (await api.post<{ id: string }>('/chats', { participantIds: [b.id, c.id] }, a.token)).body;
    await api.send(a, { chatId: ab.id }); // numbers already taken: the batch continues from them
    const rows: MessageRow[] = [];
    for (let i = 0; i < 30; i++) {
      if (i % 3 === 0) rows.push(row(ab.id, b, a));
      else if (i % 3 === 1) rows.push(row(group.id, a, i % 2 ? c : b));
      else rows.push(row(group.id, c, b, { type: 'key_exchange' }));
    }
    const mark = sent.length;
    const results = await sendAll(rows, { establish: new Set(rows.filter((r) => r.type === 'key_exchange')), markWriter: true });
    expect(results.every((r) => r.status === 'fulfilled' && r.value.stored)).toBe(true);
    const batchWrites = sent.slice(mark).filter((q) => /insert\s+into\s+"?messages/i.test(q));
    expect(batchWrites).toHaveLength(1);

    const stored = await db.db.selectFrom('messages').select(['id', 'chat_id', 'receiver_id', 'seq', 'receiver_seq']).where('id', 'in', rows.map((r) => r.id)).execute();
    const byId = new Map(stored.map((m) => [m.id, m]));
    // Each send was told its own numbers, and they are the stored ones.
    for (const r of rows) expect({ seq: r.seq, receiver_seq: r.receiver_seq }).toEqual({ seq: Number(byId.get(r.id)!.seq), receiver_seq: Number(byId.get(r.id)!.receiver_seq) });
    // Per chat: the next numbers after what was there, in the order sent.
    expect(rows.filter((r) => r.chat_id === ab.id).map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 2));
    expect(rows.filter((r) => r.chat_id === group.id).map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // Per receiver: contiguous log positions, in the order sent, after the ones already taken.
    for (const who of [a, b, c]) {
      const mine = rows.filter((r) => r.receiver_id === who.id).map((r) => r.receiver_seq!);
      expect(mine.every((v, i) => i === 0 || v === mine[i - 1]! + 1), who.username).toBe(true);
    }
    const chats = await db.db.selectFrom('chats').select(['id', 'last_seq', 'last_message_id', 'last_activity_at', 'encryption_status']).where('id', 'in', [ab.id, group.id]).execute();
    const lastOf = (id: string) => rows.filter((r) => r.chat_id === id).at(-1)!;
    expect(chats.find((x) => x.id === ab.id)).toMatchObject({ last_seq: 11, last_message_id: lastOf(ab.id).id, last_activity_at: lastOf(ab.id).created_at, encryption_status: 'pending' });
    expect(chats.find((x) => x.id === group.id)).toMatchObject({ last_seq: 20, last_message_id: lastOf(group.id).id, encryption_status: 'established' });
    const members = await db.db.selectFrom('chat_members').select(['chat_id', 'user_id', 'unread_count', 'wrote_at']).where('chat_id', 'in', [ab.id, group.id]).execute();
    const member = (chat: string, who: Session) => members.find((m) => m.chat_id === chat && m.user_id === who.id)!;
    const unread = (chat: string, who: Session) => rows.filter((r) => r.chat_id === chat && r.receiver_id === who.id).length;
    expect(Number(member(ab.id, a).unread_count)).toBe(10);
    expect(Number(member(ab.id, b).unread_count)).toBe(1); // the send before the batch
    for (const who of [b, c]) expect(Number(member(group.id, who).unread_count)).toBe(unread(group.id, who));
    // First writes: the earliest of the sender's sends in the batch.
    expect(Number(member(ab.id, b).wrote_at)).toBe(rows.find((r) => r.chat_id === ab.id)!.created_at);
    expect(Number(member(group.id, c).wrote_at)).toBe(rows.find((r) => r.chat_id === group.id && r.sender_id === c.id)!.created_at);
  });

  it('retries of stored messages are left out of the batch and answered alone; the rest share the statement', async () => {
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const ab = await api.chat(a, b);
    const earlier = [row(ab.id, a, b, { client_message_id: 'left-out-1' }), row(ab.id, a, b, { client_message_id: 'left-out-2' })];
    await sendAll(earlier);
    const fresh = Array.from({ length: 5 }, (_, i) => row(ab.id, b, a, { client_message_id: `fresh-${i}` }));
    const retries = earlier.map((e) => row(ab.id, a, b, { client_message_id: e.client_message_id }));
    const mark = sent.length;
    const twice = row(ab.id, b, a, { client_message_id: 'fresh-1' }); // the same id twice in one batch
    const results = await sendAll([fresh[0]!, retries[0]!, fresh[1]!, twice, ...fresh.slice(2, 4), retries[1]!, fresh[4]!]);
    const codes = results.map((r) => (r.status === 'fulfilled' ? 'stored' : (r.reason as { code?: string }).code));
    expect(codes).toEqual(['stored', '23505', 'stored', '23505', 'stored', 'stored', '23505', 'stored']);
    // One batch for the five, then each retry and the repeat alone (not the five again).
    expect(sent.slice(mark).filter((q) => /insert\s+into\s+"?messages/i.test(q))).toHaveLength(4);
    expect(fresh.map((r) => r.seq)).toEqual([3, 4, 5, 6, 7]);
  });

  it('fewer sends than a batch is worth go out one by one, each as the one-row statement', async () => {
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const ab = await api.chat(a, b);
    const rows = Array.from({ length: MIN_BATCH - 1 }, (_, i) => row(ab.id, i % 2 ? a : b, i % 2 ? b : a));
    const mark = sent.length;
    const results = await sendAll(rows);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    const writes = sent.slice(mark).filter((q) => /insert\s+into\s+"?messages/i.test(q));
    expect({ statements: writes.length, batches: writes.filter((q) => /unnest/i.test(q)).length }).toEqual({ statements: MIN_BATCH - 1, batches: 0 });
    expect(new Set(rows.map((r) => r.seq))).toEqual(new Set(Array.from({ length: MIN_BATCH - 1 }, (_, i) => i + 1)));
  });

  it("a chat's last activity never moves backwards, alone or in a batch", async () => {
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const ab = await api.chat(a, b);
    const later = Date.now() + 3_600_000; // as if a statement that took the lock first carried a later time
    await db.db.updateTable('chats').set({ last_activity_at: later }).where('id', '=', ab.id).execute();
    await sendAll([row(ab.id, a, b)]);
    await sendAll(Array.from({ length: MIN_BATCH }, (_, i) => row(ab.id, i % 2 ? a : b, i % 2 ? b : a)));
    const chat = await db.db.selectFrom('chats').select(['last_activity_at', 'last_seq']).where('id', '=', ab.id).executeTakeFirstOrThrow();
    expect({ at: Number(chat.last_activity_at), seq: Number(chat.last_seq) }).toEqual({ at: later, seq: 1 + MIN_BATCH });
  });

  it('a batch with a refused send runs them one by one: each gets its own answer, the rest are stored in order', async () => {
    const [a, b] = await Promise.all([api.register(), api.register()]);
    const ab = await api.chat(a, b);
    const used = 'batch-dup-1';
    const first = row(ab.id, a, b, { client_message_id: used });
    expect((await sendAll([first]))[0]!.status).toBe('fulfilled');
    const rows = [
      row(ab.id, a, b),
      row(ab.id, a, b, { client_message_id: used }), // already stored
      row(ab.id, a, b, { client_message_id: 'batch-dup-2' }),
      row(ab.id, a, b, { client_message_id: 'batch-dup-2' }), // twice in the batch
      row(uuidv7(), a, b), // no such chat
      row(ab.id, b, a),
      row(ab.id, a, b),
      row(ab.id, b, a),
    ];
    expect(rows.length).toBeGreaterThanOrEqual(MIN_BATCH); // enough waiting for a batch
    const mark = sent.length;
    const results = await sendAll(rows);
    const codes = results.map((r) => (r.status === 'fulfilled' ? 'stored' : (r.reason as { code?: string }).code));
    expect(codes).toEqual(['stored', '23505', 'stored', '23505', '23502', 'stored', 'stored', 'stored']);
    // The batch was tried (and refused), then each of its sends ran alone.
    expect(sent.slice(mark).filter((q) => /unnest/i.test(q))).toHaveLength(1);
    const seqs = await db.db.selectFrom('messages').select(['id', 'seq']).where('chat_id', '=', ab.id).orderBy('seq').execute();
    expect(seqs.map((m) => m.id)).toEqual([first.id, rows[0]!.id, rows[2]!.id, rows[5]!.id, rows[6]!.id, rows[7]!.id]);
    expect(seqs.map((m) => Number(m.seq))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('through the API: concurrent sends from many users all arrive once, numbered without gaps per chat', async () => {
    const users = await Promise.all(Array.from({ length: 6 }, () => api.register()));
    const chat = await api.chat(users[0]!, users[1]!);
    const sends = await Promise.all(users.slice(1).flatMap((u) => Array.from({ length: 8 }, () => api.send(u, { receiverId: users[0]!.id }))));
    expect(new Set(sends.map((m) => m.id)).size).toBe(40);
    const page = await api.get<{ messages: { id: string; seq: number }[] }>(`/messages/${chat.id}?limit=100`, users[0]!.token);
    const inChat = sends.filter((m) => m.chatId === chat.id);
    expect(page.body.messages.map((m) => m.seq)).toEqual(Array.from({ length: inChat.length }, (_, i) => i + 1));
    expect(Number((await api.get<{ unreadCount: number }>(`/chats/${chat.id}`, users[0]!.token)).body.unreadCount)).toBe(8);
  });
});
