import type { Kysely, Selectable } from 'kysely';
import { prepared } from '../prepared.js';
import type { EventsTable, MessagesTable, Schema } from '../schema.js';

export type EventRow = Selectable<EventsTable>;
export type EventWithMessage = EventRow & { message: Selectable<MessagesTable> | null };

/** Allocates the user's next event sequence number; the row lock orders concurrent appenders. */
const nextSeqQ = prepared<{ userId: string }, { last_seq: number }>((db, arg) =>
  db
    .updateTable('mailboxes')
    .set((eb) => ({ last_seq: eb('last_seq', '+', 1) }))
    .where('user_id', '=', arg('userId'))
    .returning('last_seq'),
);
const insertQ = prepared<EventRow, never>((db, arg) =>
  db.insertInto('events').values({
    user_id: arg('user_id'),
    seq: arg('seq'),
    type: arg('type'),
    message_id: arg('message_id'),
    data: arg('data'),
    created_at: arg('created_at'),
  }),
);

export async function nextEventSeq(db: Kysely<Schema>, userId: string): Promise<number> {
  const row = await nextSeqQ.first(db, { userId });
  if (!row) throw new Error('mailbox missing');
  return Number(row.last_seq);
}

export async function insertEvent(db: Kysely<Schema>, row: EventRow): Promise<void> {
  await insertQ.execute(db, row);
}

export async function mailboxHead(db: Kysely<Schema>, userId: string): Promise<{ lastSeq: number; prunedThrough: number } | undefined> {
  const row = await db.selectFrom('mailboxes').select(['last_seq', 'pruned_through']).where('user_id', '=', userId).executeTakeFirst();
  return row ? { lastSeq: Number(row.last_seq), prunedThrough: Number(row.pruned_through) } : undefined;
}

const MESSAGE_COLUMNS = [
  'id', 'chat_id', 'seq', 'sender_id', 'receiver_id', 'encrypted_content', 'iv', 'mac', 'type', 'status',
  'client_message_id', 'created_at', 'delivered_at', 'read_at',
] as const;

/** Events after `afterSeq`, in order, with the message of each message.new joined in. */
export async function readEventsAfter(db: Kysely<Schema>, userId: string, afterSeq: number, limit: number): Promise<EventWithMessage[]> {
  const rows = await db
    .selectFrom('events as e')
    .leftJoin('messages as m', 'm.id', 'e.message_id')
    .select(['e.user_id', 'e.seq', 'e.type', 'e.message_id', 'e.data', 'e.created_at'])
    .select(MESSAGE_COLUMNS.map((c) => `m.${c} as m_${c}` as const))
    .where('e.user_id', '=', userId)
    .where('e.seq', '>', afterSeq)
    .orderBy('e.seq', 'asc')
    .limit(limit)
    .execute();
  return rows.map((r) => {
    const raw = r as unknown as Record<string, unknown>;
    const message =
      raw.m_id === null || raw.m_id === undefined
        ? null
        : (Object.fromEntries(MESSAGE_COLUMNS.map((c) => [c, raw[`m_${c}`]])) as unknown as Selectable<MessagesTable>);
    return { user_id: r.user_id, seq: Number(r.seq), type: r.type, message_id: r.message_id, data: r.data, created_at: r.created_at, message };
  });
}

/** Users with events older than `cutoff`, and the newest such seq of each (a page at a time). */
export function expiredEventHeads(db: Kysely<Schema>, cutoff: number, limit: number): Promise<{ user_id: string; max_seq: number }[]> {
  return db
    .selectFrom('events')
    .select(['user_id', (eb) => eb.fn.max('seq').as('max_seq')])
    .where('created_at', '<', cutoff)
    .groupBy('user_id')
    .orderBy('user_id')
    .limit(limit)
    .execute()
    .then((rows) => rows.map((r) => ({ user_id: r.user_id, max_seq: Number(r.max_seq) })));
}

/** Deletes a user's events up to `throughSeq` and records it, so an older cursor is known to be gone. */
export async function pruneEvents(db: Kysely<Schema>, userId: string, throughSeq: number): Promise<number> {
  const r = await db.deleteFrom('events').where('user_id', '=', userId).where('seq', '<=', throughSeq).executeTakeFirst();
  await db
    .updateTable('mailboxes')
    .set({ pruned_through: throughSeq })
    .where('user_id', '=', userId)
    .where('pruned_through', '<', throughSeq)
    .execute();
  return Number(r.numDeletedRows);
}
