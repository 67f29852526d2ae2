import type { Kysely, Selectable } from 'kysely';
import { prepared } from '../prepared.js';
import type { MessagesTable, Schema } from '../schema.js';

export type MessageRow = Selectable<MessagesTable>;
export type MessageStatus = MessageRow['status'];

const COLUMNS = [
  'id', 'chat_id', 'seq', 'sender_id', 'receiver_id', 'encrypted_content', 'iv', 'mac', 'type', 'status',
  'client_message_id', 'created_at', 'delivered_at', 'read_at', 'receiver_seq',
] as const satisfies readonly (keyof MessageRow)[];

const insertQ = prepared<MessageRow, never>((db, arg) =>
  db.insertInto('messages').values(Object.fromEntries(COLUMNS.map((c) => [c, arg(c)])) as unknown as MessageRow),
);
const byIdQ = prepared<{ id: string }, MessageRow>((db, arg) => db.selectFrom('messages').selectAll().where('id', '=', arg('id')));
const byClientIdQ = prepared<{ senderId: string; clientMessageId: string }, MessageRow>((db, arg) =>
  db.selectFrom('messages').selectAll().where('sender_id', '=', arg('senderId')).where('client_message_id', '=', arg('clientMessageId')),
);

export async function insertMessage(db: Kysely<Schema>, row: MessageRow): Promise<void> {
  await insertQ.execute(db, row);
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
