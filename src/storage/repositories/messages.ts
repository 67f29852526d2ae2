import type { Kysely, Selectable } from 'kysely';
import { dialectOf } from '../dialect.js';
import { prepared } from '../prepared.js';
import { MESSAGE_COLUMNS, type MessagesTable, type Schema } from '../schema.js';
import { advanceChat, changeUnread } from './chats.js';
import { nextEventSeq } from './events.js';

export type MessageRow = Selectable<MessagesTable>;
export type MessageStatus = MessageRow['status'];

const insertQ = prepared<MessageRow, never>((db, arg) =>
  db.insertInto('messages').values(Object.fromEntries(MESSAGE_COLUMNS.map((c) => [c, arg(c)])) as unknown as MessageRow),
);
const byIdQ = prepared<{ id: string }, MessageRow>((db, arg) => db.selectFrom('messages').selectAll().where('id', '=', arg('id')));
const byClientIdQ = prepared<{ senderId: string; clientMessageId: string }, MessageRow>((db, arg) =>
  db.selectFrom('messages').selectAll().where('sender_id', '=', arg('senderId')).where('client_message_id', '=', arg('clientMessageId')),
);

type StoreArgs = Omit<MessageRow, 'seq' | 'receiver_seq'>;

/**
 * PostgreSQL: the whole send in one statement (one round trip instead of four). Every part is
 * atomic with the insert: a chat or mailbox that is gone leaves a NULL that the insert's NOT NULL
 * or foreign key refuses, failing the statement. The locks are taken in the same order as the
 * statement-by-statement path (chat, then the receiver's mailbox, then their member row).
 */
const storePgQ = (establish: boolean) =>
  prepared<StoreArgs, { seq: number; receiver_seq: number }>((db, arg) =>
    db
      .with('c', (qb) =>
        qb
          .updateTable('chats')
          .set((eb) => ({
            last_seq: eb('last_seq', '+', 1),
            last_message_id: arg('id'),
            last_activity_at: arg('created_at'),
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
      )
      .insertInto('messages')
      .values((eb) => ({
        ...(Object.fromEntries(MESSAGE_COLUMNS.filter((c) => c !== 'seq' && c !== 'receiver_seq').map((c) => [c, arg(c)])) as unknown as StoreArgs),
        seq: eb.selectFrom('c').select('last_seq'),
        receiver_seq: eb.selectFrom('mb').select('last_seq'),
      }))
      .returning(['seq', 'receiver_seq']),
  );
const storePgKeepQ = storePgQ(false);
const storePgEstablishQ = storePgQ(true);

/**
 * Stores a message inside a transaction and moves its counters: the chat's `seq` (and its latest
 * message), the receiver's log position (`receiver_seq`: the row is their message.new event) and
 * their unread count. Fills in `row.seq` and `row.receiver_seq`; false when the receiver's account
 * is gone (on SQLite; on PostgreSQL the foreign key fails the statement).
 */
export async function storeMessage(db: Kysely<Schema>, row: MessageRow, establishesEncryption: boolean): Promise<boolean> {
  if (dialectOf(db) === 'postgres') {
    const placed = await (establishesEncryption ? storePgEstablishQ : storePgKeepQ).first(db, row);
    if (!placed) return false;
    row.seq = Number(placed.seq);
    row.receiver_seq = Number(placed.receiver_seq);
    return true;
  }
  row.seq = await advanceChat(db, row.chat_id, row.id, row.created_at, establishesEncryption);
  const logSeq = await nextEventSeq(db, row.receiver_id);
  if (logSeq === undefined) return false;
  row.receiver_seq = logSeq;
  await insertQ.execute(db, row);
  await changeUnread(db, row.chat_id, row.receiver_id, 1);
  return true;
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

/** Moves a message's status forward only; returns the updated row, or undefined if it was not behind. */
export function advanceStatus(
  db: Kysely<Schema>,
  id: string,
  to: 'delivered' | 'read',
  now: number,
): Promise<MessageRow | undefined> {
  const from: MessageStatus[] = to === 'read' ? ['sent', 'delivered'] : ['sent'];
  return db
    .updateTable('messages')
    .set((eb) => ({
      status: to,
      delivered_at: eb.fn.coalesce('delivered_at', eb.val(now)),
      ...(to === 'read' ? { read_at: now } : {}),
    }))
    .where('id', '=', id)
    .where('status', 'in', from)
    .returningAll()
    .executeTakeFirst();
}
