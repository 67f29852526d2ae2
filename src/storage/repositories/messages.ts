import type { Kysely, QueryCreator, Selectable } from 'kysely';
import { dialectOf } from '../dialect.js';
import { prepared } from '../prepared.js';
import { MESSAGE_COLUMNS, type MessagesTable, type Schema } from '../schema.js';
import { changeUnread, markWritten, oneLessUnread, settleChat } from './chats.js';
import { appendEvent } from './events.js';
import { SendBatcher, type StoreOne } from './message-batches.js';

export type MessageRow = Selectable<MessagesTable>;
export type MessageStatus = MessageRow['status'];

const byIdQ = prepared<{ id: string }, MessageRow>((db, arg) => db.selectFrom('messages').selectAll().where('id', '=', arg('id')));
const byClientIdQ = prepared<{ senderId: string; clientMessageId: string }, MessageRow>((db, arg) =>
  db.selectFrom('messages').selectAll().where('sender_id', '=', arg('senderId')).where('client_message_id', '=', arg('clientMessageId')),
);

type StoreArgs = Omit<MessageRow, 'seq' | 'receiver_seq'>;

/**
 * PostgreSQL: the whole send in one statement, run autocommitted (one round trip instead of four;
 * decision 0023). Every part is atomic with the insert: a chat or mailbox that is gone leaves a
 * NULL that the insert's NOT NULL or foreign key refuses, failing the statement, and so does a
 * repeated `clientMessageId` (the unique key; the caller then reads the original). Row locks are
 * always taken in one order: the chat, the receiver's mailbox, the member rows (the chat's lock
 * orders every send of the chat). `markWriter` also records the sender's first write (`wrote_at`).
 */
const storePgQ = (establish: boolean, markWriter: boolean) =>
  prepared<StoreArgs, { seq: number; receiver_seq: number }>((db, arg) => {
    const q = db
      .with('c', (qb) =>
        qb
          .updateTable('chats')
          .set((eb) => ({
            last_seq: eb('last_seq', '+', 1),
            last_message_id: arg('id'),
            // Never backwards: a statement that took the chat's lock later may carry an earlier time.
            last_activity_at: eb.fn('greatest', ['last_activity_at', eb.val(arg('created_at'))]),
            ...(establish ? { encryption_status: 'established' as const } : {}),
          }))
          .where('id', '=', arg('chat_id'))
          .returning('last_seq'),
      )
      .with('mb', (qb) =>
        qb
          .updateTable('mailboxes')
          .set((eb) => ({ last_seq: eb('last_seq', '+', 1) }))
          .where('user_id', '=', arg('receiver_id'))
          .returning('last_seq'),
      )
      .with('u', (qb) =>
        qb
          .updateTable('chat_members')
          .set((eb) => ({ unread_count: eb('unread_count', '+', 1) }))
          .where('chat_id', '=', arg('chat_id'))
          .where('user_id', '=', arg('receiver_id'))
          .returning('user_id'),
      );
    return (
      markWriter
        ? q.with('w', (qb) =>
            qb
              .updateTable('chat_members')
              .set({ wrote_at: arg('created_at') })
              .where('chat_id', '=', arg('chat_id'))
              .where('user_id', '=', arg('sender_id'))
              .where('wrote_at', 'is', null)
              .returning('user_id'),
          )
        : q
    )
      .insertInto('messages')
      .values((eb) => ({
        ...(Object.fromEntries(MESSAGE_COLUMNS.filter((c) => c !== 'seq' && c !== 'receiver_seq').map((c) => [c, arg(c)])) as unknown as StoreArgs),
        seq: eb.selectFrom('c').select('last_seq'),
        receiver_seq: eb.selectFrom('mb').select('last_seq'),
      }))
      .returning(['seq', 'receiver_seq']);
  });
/** Indexed by `establish * 2 + markWriter`. */
const storePgQs = [storePgQ(false, false), storePgQ(false, true), storePgQ(true, false), storePgQ(true, true)];

const storeOnePg: StoreOne = (db, row, opts) => storePgQs[Number(opts.establishesEncryption) * 2 + Number(opts.markWriter)]!.first(db, row);

const batchers = new WeakMap<Kysely<Schema>, SendBatcher>();
function batcherFor(db: Kysely<Schema>): SendBatcher {
  let b = batchers.get(db);
  if (!b) batchers.set(db, (b = new SendBatcher(db, storeOnePg)));
  return b;
}

/**
 * SQLite: the insert takes its numbers from the chat and the receiver's mailbox, and a retry with a
 * `clientMessageId` already used by this sender inserts nothing (so a duplicate is no error: an
 * error would make the commit group start over with savepoints). No row back means a duplicate or
 * a receiver whose account is gone. The counters are then set to the numbers the row took.
 */
const placeSqliteQ = prepared<StoreArgs, { seq: number; receiver_seq: number }>((db, arg) =>
  db
    .insertInto('messages')
    .columns([...MESSAGE_COLUMNS])
    .expression(
      db
        .selectFrom(['chats as c', 'mailboxes as mb'])
        .select((eb) =>
          MESSAGE_COLUMNS.map((col) =>
            col === 'seq'
              ? eb('c.last_seq', '+', 1).as(col)
              : col === 'receiver_seq'
                ? eb('mb.last_seq', '+', 1).as(col)
                : eb.val(arg(col)).as(col),
          ),
        )
        .where('c.id', '=', arg('chat_id'))
        .where('mb.user_id', '=', arg('receiver_id')) as never,
    )
    .onConflict((oc) => oc.columns(['sender_id', 'client_message_id']).doNothing())
    .returning(['seq', 'receiver_seq']),
);
const settleMailboxQ = prepared<{ userId: string; seq: number }, never>((db, arg) =>
  db.updateTable('mailboxes').set({ last_seq: arg('seq') }).where('user_id', '=', arg('userId')),
);

export type StoreOutcome = { stored: true } | { stored: false; earlier: MessageRow | undefined };
const STORED: StoreOutcome = Object.freeze({ stored: true });

/**
 * Stores a message and moves its counters: the chat's `seq` (and its latest message), the
 * receiver's log position (`receiver_seq`: the row is their message.new event) and their unread
 * count; with `markWriter`, the sender's first write in the chat. Fills in `row.seq` and
 * `row.receiver_seq`. SQLite: inside a transaction. PostgreSQL: one statement (run it with
 * `Database.oneStatement`), shared with the sends that arrive meanwhile (message-batches.ts). Not stored: `earlier` is the sender's message with the same
 * `clientMessageId`, or undefined when the receiver's account is gone. PostgreSQL reports both
 * as errors instead (unique and foreign key violations).
 */
export async function storeMessage(
  db: Kysely<Schema>,
  row: MessageRow,
  opts: { establishesEncryption: boolean; markWriter: boolean },
): Promise<StoreOutcome> {
  if (dialectOf(db) === 'postgres') {
    // Outside a transaction, concurrent sends share one statement (decision 0025).
    const placed = db.isTransaction ? await storeOnePg(db, row, opts) : await batcherFor(db).store(row, opts);
    if (!placed) return { stored: false, earlier: undefined };
    row.seq = Number(placed.seq);
    row.receiver_seq = Number(placed.receiver_seq);
    return STORED;
  }
  // Synchronous on the commit group's connection: no promise per statement.
  const placed = placeSqliteQ.allNow(db, row)[0];
  if (!placed) {
    const earlier = row.client_message_id === null ? undefined : await findMessageByClientId(db, row.sender_id, row.client_message_id);
    return { stored: false, earlier };
  }
  row.seq = Number(placed.seq);
  row.receiver_seq = Number(placed.receiver_seq);
  settleChat(db, row.chat_id, row.seq, row.id, row.created_at, opts.establishesEncryption);
  settleMailboxQ.runNow(db, { userId: row.receiver_id, seq: row.receiver_seq });
  changeUnread(db, row.chat_id, row.receiver_id, 1);
  if (opts.markWriter) markWritten(db, row.chat_id, row.sender_id, row.created_at);
  return STORED;
}

export function findMessageById(db: Kysely<Schema>, id: string): Promise<MessageRow | undefined> {
  return byIdQ.first(db, { id });
}

export function findMessageByClientId(db: Kysely<Schema>, senderId: string, clientMessageId: string): Promise<MessageRow | undefined> {
  return byClientIdQ.first(db, { senderId, clientMessageId });
}

export interface PageRange {
  afterSeq?: number;
  beforeSeq?: number;
  limit: number;
}

/**
 * One page of a chat's messages that `userId` sent or received, oldest first. Reads `limit + 1`
 * rows to learn whether more exist in the paging direction.
 */
export async function pageMessages(db: Kysely<Schema>, chatId: string, userId: string, range: PageRange): Promise<{ rows: MessageRow[]; hasMore: boolean }> {
  const forward = range.afterSeq !== undefined;
  let q = db
    .selectFrom('messages')
    .selectAll()
    .where('chat_id', '=', chatId)
    .where((eb) => eb.or([eb('sender_id', '=', userId), eb('receiver_id', '=', userId)]));
  if (range.afterSeq !== undefined) q = q.where('seq', '>', range.afterSeq);
  if (range.beforeSeq !== undefined) q = q.where('seq', '<', range.beforeSeq);
  const rows = await q
    .orderBy('seq', forward ? 'asc' : 'desc')
    .limit(range.limit + 1)
    .execute();
  const hasMore = rows.length > range.limit;
  if (hasMore) rows.pop();
  if (!forward) rows.reverse();
  return { rows, hasMore };
}

const STATUS_FROM = { delivered: ['sent'], read: ['sent', 'delivered'] } as const satisfies Record<string, MessageStatus[]>;
type StatusTo = keyof typeof STATUS_FROM;

/** The message moves to `to` if it is behind; returns its new row (none if it was not behind). */
const advance = (db: QueryCreator<Schema>, to: StatusTo, arg: <K extends 'id' | 'now'>(name: K) => { id: string; now: number }[K]) =>
  db
    .updateTable('messages')
    .set((eb) => ({
      status: to,
      delivered_at: eb.fn.coalesce('delivered_at', eb.val(arg('now'))),
      ...(to === 'read' ? { read_at: arg('now') } : {}),
    }))
    .where('id', '=', arg('id'))
    .where('status', 'in', [...STATUS_FROM[to]])
    .returningAll();
const advanceQ = (to: StatusTo) => prepared<{ id: string; now: number }, MessageRow>((db, arg) => advance(db, to, arg));
const advanceQs = { delivered: advanceQ('delivered'), read: advanceQ('read') };

type StatusArgs = {
  id: string;
  now: number;
  /** The message's chat, sender and receiver, as read before (they never change). */
  chatId: string;
  senderId: string;
  receiverId: string;
  /** The sender's message.status event data, as JSON. */
  data: string;
};

/**
 * PostgreSQL: the status update in one statement, run autocommitted (decision 0023): the message
 * moves forward, a read takes one off the receiver's unread count, and the sender's log gets its
 * message.status event at the next position of their mailbox. Nothing changes unless the message
 * was behind (every other part waits for `m`). The event row is one per moved message, its
 * position from `mb` by an outer join: a sender's mailbox that is gone leaves a NULL position that
 * the NOT NULL refuses, failing the whole statement rather than committing a change with no event.
 * Row locks, in order: the message, the sender's mailbox, the receiver's member row (a send takes
 * a mailbox before any member row too).
 */
const statusPgQ = (to: StatusTo) =>
  prepared<StatusArgs, MessageRow & { event_seq: number }>((db, arg) => {
    const q = db
      .with('m', (qb) => advance(qb, to, arg))
      .with('mb', (qb) =>
        qb
          .updateTable('mailboxes')
          .set((eb) => ({ last_seq: eb('last_seq', '+', 1) }))
          .where('user_id', '=', arg('senderId'))
          .where((eb) => eb.exists(eb.selectFrom('m').select('m.id')))
          .returning('last_seq'),
      )
      .with('e', (qb) =>
        qb
          .insertInto('events')
          .columns(['user_id', 'seq', 'type', 'data', 'created_at'])
          .expression(
            qb
              .selectFrom('m')
              .leftJoin('mb', (join) => join.onTrue())
              .select((eb) => [
                eb.val(arg('senderId')).as('user_id'),
                'mb.last_seq as seq',
                eb.val('message.status').as('type'),
                eb.val(arg('data')).as('data'),
                eb.cast(eb.val(arg('now')), 'bigint').as('created_at'),
              ]) as never,
          )
          .returning('seq'),
      );
    return (
      to === 'read'
        ? q.with('u', (qb) =>
            qb
              .updateTable('chat_members')
              .set((eb) => ({ unread_count: oneLessUnread(eb) }))
              .where('chat_id', '=', arg('chatId'))
              .where('user_id', '=', arg('receiverId'))
              .where((eb) => eb.exists(eb.selectFrom('m').select('m.id')))
              .returning('user_id'),
          )
        : q
    )
      .selectFrom(['m', 'mb'])
      .selectAll('m')
      .select('mb.last_seq as event_seq');
  });
const statusPgQs = { delivered: statusPgQ('delivered'), read: statusPgQ('read') };

/**
 * Moves a message's status forward only, and appends the sender's message.status event (`data`)
 * at `eventSeq`; a read also takes one off the receiver's unread count. SQLite: inside a
 * transaction. PostgreSQL: one statement (run it with `Database.oneStatement`). Undefined when
 * the message was not behind (or is gone, or its sender's mailbox is).
 */
export async function recordStatus(db: Kysely<Schema>, to: StatusTo, args: StatusArgs): Promise<{ row: MessageRow; eventSeq: number } | undefined> {
  if (dialectOf(db) === 'postgres') {
    const placed = await statusPgQs[to].first(db, args);
    if (!placed) return undefined;
    const { event_seq: eventSeq, ...row } = placed;
    return { row, eventSeq: Number(eventSeq) };
  }
  const row = await advanceQs[to].first(db, { id: args.id, now: args.now });
  if (!row) return undefined;
  if (to === 'read') changeUnread(db, args.chatId, args.receiverId, -1);
  const eventSeq = await appendEvent(db, args.senderId, { type: 'message.status', data: args.data, created_at: args.now });
  if (eventSeq === undefined) throw new Error('mailbox missing');
  return { row, eventSeq };
}
