import type { ExpressionBuilder, Kysely, Selectable } from 'kysely';
import { dialectOf } from '../dialect.js';
import { prepared } from '../prepared.js';
import type { ChatsTable, Schema } from '../schema.js';

export type ChatRow = Selectable<ChatsTable>;
export type MemberChatRow = ChatRow & { unread_count: number };

export async function insertChat(db: Kysely<Schema>, row: Omit<ChatRow, 'last_seq'>, memberIds: string[]): Promise<void> {
  await db.insertInto('chats').values(row).execute();
  await db
    .insertInto('chat_members')
    .values(memberIds.map((user_id) => ({ chat_id: row.id, user_id, joined_at: row.created_at })))
    .execute();
}

const byDirectKeyQ = prepared<{ key: string }, ChatRow>((db, arg) => db.selectFrom('chats').selectAll().where('direct_key', '=', arg('key')));

export function findChatByDirectKey(db: Kysely<Schema>, key: string): Promise<ChatRow | undefined> {
  return byDirectKeyQ.first(db, { key });
}

/** The chat as seen by one member; undefined when it does not exist or they are not in it. */
export function findChatForMember(db: Kysely<Schema>, chatId: string, userId: string): Promise<MemberChatRow | undefined> {
  return db
    .selectFrom('chats')
    .innerJoin('chat_members as m', (j) => j.onRef('m.chat_id', '=', 'chats.id').on('m.user_id', '=', userId))
    .selectAll('chats')
    .select('m.unread_count')
    .where('chats.id', '=', chatId)
    .executeTakeFirst();
}

/** Where a page of a member's chats ends: the last chat's activity time and id. */
export interface ChatPosition {
  activityAt: number;
  id: string;
}

/**
 * Up to `limit` of a member's chats, most recent activity first, after `before` in that order
 * (activity time, then id, both descending: the order is total, so pages never overlap).
 */
export function listChatsForMember(db: Kysely<Schema>, userId: string, limit: number, before?: ChatPosition): Promise<MemberChatRow[]> {
  let q = db
    .selectFrom('chat_members as m')
    .innerJoin('chats', 'chats.id', 'm.chat_id')
    .selectAll('chats')
    .select('m.unread_count')
    .where('m.user_id', '=', userId);
  if (before) {
    q = q.where((eb) =>
      eb.or([
        eb('chats.last_activity_at', '<', before.activityAt),
        eb.and([eb('chats.last_activity_at', '=', before.activityAt), eb('chats.id', '<', before.id)]),
      ]),
    );
  }
  return q.orderBy('chats.last_activity_at', 'desc').orderBy('chats.id', 'desc').limit(limit).execute();
}

export async function memberIdsByChat(db: Kysely<Schema>, chatIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (chatIds.length === 0) return out;
  const rows = await db
    .selectFrom('chat_members')
    .select(['chat_id', 'user_id'])
    .where('chat_id', 'in', chatIds)
    .orderBy('chat_id')
    .orderBy('user_id')
    .execute();
  for (const r of rows) {
    const list = out.get(r.chat_id);
    if (list) list.push(r.user_id);
    else out.set(r.chat_id, [r.user_id]);
  }
  return out;
}

const membersQ = prepared<{ chatId: string }, { user_id: string }>((db, arg) =>
  db.selectFrom('chat_members').select('user_id').where('chat_id', '=', arg('chatId')).orderBy('user_id'),
);

export async function memberIds(db: Kysely<Schema>, chatId: string): Promise<string[]> {
  return (await membersQ.all(db, { chatId })).map((r) => r.user_id);
}

type SettleArgs = { chatId: string; seq: number; messageId: string; now: number };
const settleQ = (establish: boolean) =>
  prepared<SettleArgs, never>((db, arg) =>
    db
      .updateTable('chats')
      .set({
        last_seq: arg('seq'),
        last_message_id: arg('messageId'),
        last_activity_at: arg('now'),
        ...(establish ? { encryption_status: 'established' as const } : {}),
      })
      .where('id', '=', arg('chatId')),
  );
const settleKeepQ = settleQ(false);
const settleEstablishQ = settleQ(true);

/** Records a chat's latest message and the sequence number it took (SQLite, inside a commit group). */
export function settleChat(db: Kysely<Schema>, chatId: string, seq: number, messageId: string, now: number, establishesEncryption: boolean): void {
  (establishesEncryption ? settleEstablishQ : settleKeepQ).runNow(db, { chatId, seq, messageId, now });
}

type UnreadArgs = { chatId: string; userId: string };
const unreadUpQ = prepared<UnreadArgs, never>((db, arg) =>
  db
    .updateTable('chat_members')
    .set((eb) => ({ unread_count: eb('unread_count', '+', 1) }))
    .where('chat_id', '=', arg('chatId'))
    .where('user_id', '=', arg('userId')),
);
/** One fewer unread, never below zero. */
export const oneLessUnread = (eb: ExpressionBuilder<Schema, 'chat_members'>) =>
  eb.case().when('unread_count', '>', 0).then(eb('unread_count', '-', 1)).else(0).end();
const unreadDownQ = prepared<UnreadArgs, never>((db, arg) =>
  db
    .updateTable('chat_members')
    .set((eb) => ({ unread_count: oneLessUnread(eb) }))
    .where('chat_id', '=', arg('chatId'))
    .where('user_id', '=', arg('userId')),
);

/** One more or one fewer unread for the member (SQLite, inside a commit group). */
export function changeUnread(db: Kysely<Schema>, chatId: string, userId: string, delta: 1 | -1): void {
  (delta === 1 ? unreadUpQ : unreadDownQ).runNow(db, { chatId, userId });
}

const unreadFromQ = prepared<{ userId: string }, never>((db, arg) =>
  db
    .updateTable('chat_members')
    .set((eb) => {
      const fromUser = eb
        .selectFrom('messages as n')
        .whereRef('n.chat_id', '=', 'chat_members.chat_id')
        .whereRef('n.receiver_id', '=', 'chat_members.user_id')
        .where('n.sender_id', '=', arg('userId'))
        .where('n.status', '<>', 'read')
        .select((c) => c.fn.countAll<number>().as('n'));
      return { unread_count: eb.case().when('unread_count', '>', fromUser).then(eb('unread_count', '-', fromUser)).else(0).end() };
    })
    .where('chat_id', 'in', (eb) => eb.selectFrom('chat_members as mine').select('mine.chat_id').where('mine.user_id', '=', arg('userId')))
    .where('user_id', '<>', arg('userId')),
);

/**
 * Before a user's account (and, by cascade, every message they sent or received) is deleted: the
 * other members of their chats stop counting the user's unread messages, which are about to go.
 */
export async function forgetUnreadFrom(db: Kysely<Schema>, userId: string): Promise<void> {
  await unreadFromQ.execute(db, { userId });
}

/** Everyone who shares at least one chat with `userId`. */
export async function contactIds(db: Kysely<Schema>, userId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('chat_members as other')
    .innerJoin('chat_members as mine', 'mine.chat_id', 'other.chat_id')
    .select('other.user_id')
    .distinct()
    .where('mine.user_id', '=', userId)
    .where('other.user_id', '!=', userId)
    .orderBy('other.user_id')
    .execute();
  return rows.map((r) => r.user_id);
}

/** After an identity-key change, every chat of the user needs a new key exchange. */
export async function resetEncryptionStatus(db: Kysely<Schema>, userId: string): Promise<void> {
  if (dialectOf(db) === 'postgres') {
    // Locked in key order first, as batched sends lock chats (message-batches.ts): no deadlock cycle.
    await db
      .selectFrom('chats')
      .select('id')
      .where('id', 'in', (eb) => eb.selectFrom('chat_members').select('chat_id').where('user_id', '=', userId))
      .orderBy('id')
      .forUpdate()
      .execute();
  }
  await db
    .updateTable('chats')
    .set({ encryption_status: 'pending' })
    .where('id', 'in', (eb) => eb.selectFrom('chat_members').select('chat_id').where('user_id', '=', userId))
    .execute();
}

const wroteAtQ = prepared<{ chatId: string; userId: string }, { wrote_at: number | null }>((db, arg) =>
  db.selectFrom('chat_members').select('wrote_at').where('chat_id', '=', arg('chatId')).where('user_id', '=', arg('userId')),
);

/** Whether the member has ever written in the chat (false also when not a member). */
export async function hasWritten(db: Kysely<Schema>, chatId: string, userId: string): Promise<boolean> {
  const row = await wroteAtQ.first(db, { chatId, userId });
  return row !== undefined && row.wrote_at !== null;
}

const markWroteQ = prepared<{ chatId: string; userId: string; at: number }, never>((db, arg) =>
  db.updateTable('chat_members').set({ wrote_at: arg('at') }).where('chat_id', '=', arg('chatId')).where('user_id', '=', arg('userId')).where('wrote_at', 'is', null),
);

/** Records the member's first message in the chat, a later one changes nothing (SQLite, inside a commit group). */
export function markWritten(db: Kysely<Schema>, chatId: string, userId: string, at: number): void {
  markWroteQ.runNow(db, { chatId, userId, at });
}
