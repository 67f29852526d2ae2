import type { Chat, ChatList, ChatListQuery } from '@safechat/protocol';
import { NotFoundError, ValidationError } from '../errors.js';
import type { RateLimiter } from '../limits/limiter.js';
import { isUniqueViolation } from '../storage/dialect.js';
import type { Database } from '../storage/db.js';
import {
  findChatByDirectKey,
  findChatForMember,
  insertChat,
  listChatsForMember,
  hasWritten,
  memberIds,
  memberIdsByChat,
  type ChatPosition,
} from '../storage/repositories/chats.js';
import { countExistingUsers } from '../storage/repositories/users.js';
import type { Clock } from '../util/clock.js';
import { uuidv7 } from '../util/ids.js';
import { toChat } from './wire.js';

const CHAT_NOT_FOUND = 'chat not found';
const DIRECT_CHAT_CACHE = 100_000;
const MEMBER_CACHE = 100_000;
const WRITER_CACHE = 200_000;
const SILENT_CACHE = 100_000;
/** How long "has not written" is reused: a stranger's burst costs one read, not one per message. */
const SILENT_FOR_MS = 5_000;

/** A `nextCursor` back into a position (the schema has checked its shape). */
function parseCursor(cursor: string): ChatPosition {
  const at = cursor.indexOf('_');
  return { activityAt: Number(cursor.slice(0, at)), id: cursor.slice(at + 1) };
}

export function directKey(a: string, b: string): string {
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}

/** A chat as its members see it. Non-members get the same 404 as for a chat that does not exist. */
export class ChatService {
  private readonly directChats = new Map<string, string>();
  /** chatId → its members, for the membership check on every send. */
  private readonly members = new Map<string, readonly string[]>();
  /**
   * chatId → its members known to have written in it (it never becomes untrue). By chat, not by a
   * `chatId:userId` key: every send asks, and a lookup by two existing strings hashes nothing new.
   * Past WRITER_CACHE members the oldest chat's are forgotten (a miss costs one no-op update).
   */
  private readonly writers = new Map<string, Set<string>>();
  private writerCount = 0;
  /**
   * `chatId:userId` of members found not to have written, and until when that answer is reused.
   * It can turn untrue on another instance; meanwhile this one charges the strangers' allowance a
   * few seconds longer (stricter, never looser). A write through this instance clears it.
   */
  private readonly silent = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly limiter: RateLimiter,
  ) {}

  /** Creates a chat with the caller; a one-to-one pair that already has a chat gets it back. */
  async create(callerId: string, participantIds: string[]): Promise<{ chat: Chat; created: boolean }> {
    const others = [...new Set(participantIds)].filter((id) => id !== callerId);
    if (others.length === 0) throw new ValidationError('participantIds must name at least one other user', [{ path: ['participantIds'] }]);
    if (others.length === 1) {
      const { chatId, created } = await this.findOrCreateDirect(callerId, others[0]!);
      return { chat: await this.get(callerId, chatId), created };
    }
    await this.requireUsers(others);
    await this.limiter.consume('chatsCreatedPerUser', callerId);
    const now = this.clock.now();
    const id = uuidv7(now);
    await this.db.transaction((tx) => insertChat(tx.db, newChatRow(id, 'group', null, callerId, now), [callerId, ...others]));
    return { chat: await this.get(callerId, id), created: true };
  }

  /** The one-to-one chat of a pair, made on first use; the unique key settles concurrent creations. */
  async findOrCreateDirect(a: string, b: string): Promise<{ chatId: string; created: boolean }> {
    const key = directKey(a, b);
    // A pair's chat never changes once made (chats are not deleted), so it is safe to remember.
    const known = this.directChats.get(key);
    if (known) return { chatId: known, created: false };
    const existing = await findChatByDirectKey(this.db.db, key);
    if (existing) {
      this.remember(key, existing.id);
      return { chatId: existing.id, created: false };
    }
    await this.requireUsers([b]);
    await this.limiter.consume('chatsCreatedPerUser', a);
    const now = this.clock.now();
    const id = uuidv7(now);
    try {
      await this.db.transaction((tx) => insertChat(tx.db, newChatRow(id, 'direct', key, a, now), [a, b]));
      this.remember(key, id);
      return { chatId: id, created: true };
    } catch (err) {
      if (!isUniqueViolation(err, 'chats_direct_key_key')) throw err;
      const winner = await findChatByDirectKey(this.db.db, key);
      if (!winner) throw err;
      // The other side made it first: nothing was created by this caller.
      await this.limiter.refund('chatsCreatedPerUser', a);
      return { chatId: winner.id, created: false };
    }
  }

  private remember(key: string, chatId: string): void {
    if (this.directChats.size >= DIRECT_CHAT_CACHE) this.directChats.delete(this.directChats.keys().next().value!);
    this.directChats.set(key, chatId);
  }

  private async requireUsers(ids: string[]): Promise<void> {
    if ((await countExistingUsers(this.db.db, ids)) !== ids.length) throw new NotFoundError('user not found');
  }

  async get(userId: string, chatId: string): Promise<Chat> {
    // Not a member, or no such chat: one answer (membersFor tells the log which).
    const members = await this.membersFor(userId, chatId);
    const row = await findChatForMember(this.db.db, chatId, userId);
    if (!row) throw new NotFoundError(CHAT_NOT_FOUND);
    return toChat(row, [...members]);
  }

  /**
   * One page of the caller's chats, most recent activity first. A page is bounded because anyone
   * can put anyone into chats: an unbounded list could be made as large as an attacker liked.
   */
  async list(userId: string, q: ChatListQuery): Promise<ChatList> {
    const rows = await listChatsForMember(this.db.db, userId, q.limit + 1, q.cursor === undefined ? undefined : parseCursor(q.cursor));
    const hasMore = rows.length > q.limit;
    if (hasMore) rows.pop();
    const members = await memberIdsByChat(this.db.db, rows.map((r) => r.id));
    const last = rows.at(-1);
    return {
      chats: rows.map((r) => toChat(r, members.get(r.id) ?? [])),
      hasMore,
      nextCursor: hasMore && last ? `${Number(last.last_activity_at)}_${last.id}` : null,
    };
  }

  /** The members of a chat the caller belongs to (404 otherwise). */
  async membersFor(userId: string, chatId: string): Promise<readonly string[]> {
    let members = this.members.get(chatId);
    if (!members) {
      members = await memberIds(this.db.db, chatId);
      // @NOTE Members are fixed when a chat is made (there is no API to add or remove them) and
      // chats are not deleted, so a member list can be remembered. The one change is an account
      // deletion, which cascades; forgetUser() drops those lists here, and on another instance a
      // stale list only lets a send reach the store, which refuses a receiver that is gone.
      if (members.length > 0) this.rememberMembers(chatId, members);
    }
    if (!members.includes(userId)) throw new NotFoundError(CHAT_NOT_FOUND, members.length > 0);
    return members;
  }

  /**
   * Whether a member has ever written in the chat: a sender the receiver has written to is one of
   * its contacts, and is not charged to the receiver's allowance for strangers (decision 0022).
   */
  async hasWritten(chatId: string, userId: string): Promise<boolean> {
    if (this.knownWriter(chatId, userId)) return true;
    const key = `${chatId}:${userId}`;
    const now = this.clock.now();
    if ((this.silent.get(key) ?? 0) > now) return false;
    const wrote = await hasWritten(this.db.db, chatId, userId);
    if (wrote) this.noteWritten(chatId, userId);
    else {
      if (this.silent.size >= SILENT_CACHE) this.silent.delete(this.silent.keys().next().value!);
      this.silent.set(key, now + SILENT_FOR_MS);
    }
    return wrote;
  }

  /** Whether this instance already knows the member has written (its first message needs recording otherwise). */
  knownWriter(chatId: string, userId: string): boolean {
    return this.writers.get(chatId)?.has(userId) ?? false;
  }

  /** After a committed message: its sender has written in the chat. */
  noteWritten(chatId: string, userId: string): void {
    let chatWriters = this.writers.get(chatId);
    if (!chatWriters) {
      if (this.writerCount >= WRITER_CACHE) {
        const [oldest, forgotten] = this.writers.entries().next().value!;
        this.writers.delete(oldest);
        this.writerCount -= forgotten.size;
      }
      this.writers.set(chatId, (chatWriters = new Set()));
    }
    if (!chatWriters.has(userId)) {
      chatWriters.add(userId);
      this.writerCount++;
    }
    this.silent.delete(`${chatId}:${userId}`);
  }

  /** After an account is deleted: forget every remembered member list that named it. */
  forgetUser(userId: string): void {
    for (const [chatId, members] of this.members) if (members.includes(userId)) this.members.delete(chatId);
  }

  private rememberMembers(chatId: string, members: readonly string[]): void {
    if (this.members.size >= MEMBER_CACHE) this.members.delete(this.members.keys().next().value!);
    this.members.set(chatId, members);
  }
}

function newChatRow(id: string, kind: 'direct' | 'group', key: string | null, createdBy: string, now: number) {
  return {
    id,
    kind,
    direct_key: key,
    last_message_id: null,
    last_activity_at: now,
    encryption_status: 'pending' as const,
    created_by: createdBy,
    created_at: now,
  };
}
