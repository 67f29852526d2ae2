import { sql, type Kysely, type Selectable } from 'kysely';
import { dialectOf } from '../dialect.js';
import { prepared } from '../prepared.js';
import { contactIds } from './chats.js';
import { MESSAGE_COLUMNS, type EventsTable, type MessagesTable, type Schema } from '../schema.js';

export type EventRow = Selectable<EventsTable>;
/** A log entry: an event, or (type message.new) a message. */
export type LogEntry = { seq: number; type: string; data: string | null; message: Selectable<MessagesTable> | null };

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
    data: arg('data'),
    created_at: arg('created_at'),
  }),
);
/**
 * One query, so both halves of the log come from one snapshot: two queries could see a later
 * commit's message without its earlier event, and the cursor would move past that event.
 */
const logAfterQ = prepared<{ userId: string; afterSeq: number; limit: number }, Record<string, unknown>>((db, arg) =>
  db
    .selectFrom('events')
    .select(['seq as log_seq', 'type as log_type', 'data as log_data'])
    .select(MESSAGE_COLUMNS.map((c) => sql<null>`null`.as(`m_${c}`)))
    .where('user_id', '=', arg('userId'))
    .where('seq', '>', arg('afterSeq'))
    .unionAll(
      db
        .selectFrom('messages')
        .select(['receiver_seq as log_seq', sql<string>`'message.new'`.as('log_type'), sql<null>`null`.as('log_data')])
        .select(MESSAGE_COLUMNS.map((c) => `${c} as m_${c}` as const))
        .where('receiver_id', '=', arg('userId'))
        .where('receiver_seq', '>', arg('afterSeq')) as never,
    )
    .orderBy('log_seq', 'asc')
    .limit(arg('limit')),
);

/** Undefined when the user has no mailbox (the account is gone). */
export async function nextEventSeq(db: Kysely<Schema>, userId: string): Promise<number | undefined> {
  const row = await nextSeqQ.first(db, { userId });
  return row ? Number(row.last_seq) : undefined;
}

export async function insertEvent(db: Kysely<Schema>, row: EventRow): Promise<void> {
  await insertQ.execute(db, row);
}

/** Appends an event at the user's next log position; undefined (nothing written) without a mailbox. */
export async function appendEvent(db: Kysely<Schema>, userId: string, event: Omit<EventRow, 'user_id' | 'seq'>): Promise<number | undefined> {
  const seq = await nextEventSeq(db, userId);
  if (seq !== undefined) await insertEvent(db, { user_id: userId, seq, ...event });
  return seq;
}

/**
 * Appends one event to the log of everyone who shares a chat with `userId`; returns where each
 * entry went. PostgreSQL: one statement (the contacts, their mailboxes' next positions, the rows)
 * instead of two round trips per contact while the transaction holds their mailboxes. SQLite:
 * contact by contact, in id order.
 */
export async function appendToContacts(
  db: Kysely<Schema>,
  userId: string,
  event: Omit<EventRow, 'user_id' | 'seq'>,
): Promise<{ userId: string; seq: number }[]> {
  if (dialectOf(db) === 'postgres') {
    const rows = await db
      .with('c', (qb) =>
        qb
          .selectFrom('chat_members as other')
          .innerJoin('chat_members as mine', 'mine.chat_id', 'other.chat_id')
          .select('other.user_id')
          .distinct()
          .where('mine.user_id', '=', userId)
          .where('other.user_id', '!=', userId),
      )
      // The mailboxes are locked in key order before any changes, as batched sends lock them
      // (message-batches.ts): no deadlock cycle. The count is a one-time filter run before the update.
      .with('lk', (qb) =>
        qb
          .selectFrom('mailboxes')
          .select('user_id')
          .where('user_id', 'in', qb.selectFrom('c').select('c.user_id'))
          .orderBy('user_id')
          .forUpdate(),
      )
      .with('mb', (qb) =>
        qb
          .updateTable('mailboxes')
          .set((eb) => ({ last_seq: eb('last_seq', '+', 1) }))
          .where('user_id', 'in', qb.selectFrom('c').select('c.user_id'))
          .where((eb) => eb(eb.selectFrom('lk').select((e) => e.fn.countAll().as('n')), '>=', 0))
          .returning(['user_id', 'last_seq']),
      )
      .insertInto('events')
      .columns(['user_id', 'seq', 'type', 'data', 'created_at'])
      .expression((eb) =>
        eb
          .selectFrom('mb')
          .select([
            'mb.user_id',
            'mb.last_seq',
            eb.val(event.type).as('type'),
            eb.val(event.data).as('data'),
            eb.cast(eb.val(event.created_at), 'bigint').as('created_at'),
          ]) as never,
      )
      .returning(['user_id', 'seq'])
      .execute();
    return rows.map((r) => ({ userId: r.user_id, seq: Number(r.seq) }));
  }
  const placed: { userId: string; seq: number }[] = [];
  for (const contact of await contactIds(db, userId)) {
    // No mailbox, no entry: as PostgreSQL's update finds no row.
    const seq = await appendEvent(db, contact, event);
    if (seq !== undefined) placed.push({ userId: contact, seq });
  }
  return placed;
}

const headQ = prepared<{ userId: string }, { last_seq: number; pruned_through: number }>((db, arg) =>
  db.selectFrom('mailboxes').select(['last_seq', 'pruned_through']).where('user_id', '=', arg('userId')),
);

/** Where the user's log stands; every socket start asks. */
export async function mailboxHead(db: Kysely<Schema>, userId: string): Promise<{ lastSeq: number; prunedThrough: number } | undefined> {
  const row = await headQ.first(db, { userId });
  return row ? { lastSeq: Number(row.last_seq), prunedThrough: Number(row.pruned_through) } : undefined;
}

/** The user's log after `afterSeq`, in order: events and messages merged by seq. */
export async function readLogAfter(db: Kysely<Schema>, userId: string, afterSeq: number, limit: number): Promise<LogEntry[]> {
  const rows = await logAfterQ.all(db, { userId, afterSeq, limit });
  return rows.map((r) => ({
    seq: Number(r.log_seq),
    type: r.log_type as string,
    data: r.log_data as string | null,
    message:
      r.m_id === null || r.m_id === undefined
        ? null
        : (Object.fromEntries(MESSAGE_COLUMNS.map((c) => [c, r[`m_${c}`]])) as unknown as Selectable<MessagesTable>),
  }));
}

/**
 * Users with log entries older than `cutoff` (events, or messages still in the log), and the
 * newest such seq of each — a page at a time.
 */
export async function expiredLogHeads(db: Kysely<Schema>, cutoff: number, limit: number): Promise<{ user_id: string; max_seq: number }[]> {
  const [events, messages] = await Promise.all([
    db
      .selectFrom('events')
      .select(['user_id', (eb) => eb.fn.max('seq').as('max_seq')])
      .where('created_at', '<', cutoff)
      .groupBy('user_id')
      .orderBy('user_id')
      .limit(limit)
      .execute(),
    db
      .selectFrom('messages')
      .select(['receiver_id as user_id', (eb) => eb.fn.max('receiver_seq').as('max_seq')])
      .where('created_at', '<', cutoff)
      .where('receiver_seq', 'is not', null)
      .groupBy('receiver_id')
      .orderBy('receiver_id')
      .limit(limit)
      .execute(),
  ]);
  const heads = new Map<string, number>();
  for (const r of [...events, ...messages]) heads.set(r.user_id, Math.max(heads.get(r.user_id) ?? 0, Number(r.max_seq)));
  return [...heads].map(([user_id, max_seq]) => ({ user_id, max_seq }));
}

/**
 * Takes a user's log up to `throughSeq` out of replay: deletes those events, detaches those
 * messages from the log (the messages stay: history), and records the mark so an older cursor is
 * known to be gone. Returns how many entries left the log.
 */
export async function pruneLog(db: Kysely<Schema>, userId: string, throughSeq: number): Promise<number> {
  const events = await db.deleteFrom('events').where('user_id', '=', userId).where('seq', '<=', throughSeq).executeTakeFirst();
  const messages = await db
    .updateTable('messages')
    .set({ receiver_seq: null })
    .where('receiver_id', '=', userId)
    .where('receiver_seq', '<=', throughSeq)
    .executeTakeFirst();
  await db
    .updateTable('mailboxes')
    .set({ pruned_through: throughSeq })
    .where('user_id', '=', userId)
    .where('pruned_through', '<', throughSeq)
    .execute();
  return Number(events.numDeletedRows) + Number(messages.numUpdatedRows);
}
