import type { Chat, Message, User } from '@safechat/protocol';
import type { MemberChatRow } from '../storage/repositories/chats.js';
import type { MessageRow } from '../storage/repositories/messages.js';
import type { UserRow } from '../storage/repositories/users.js';
import { iso } from '../util/clock.js';

// Row → wire shape. These are allowlists: a column not named here never leaves the server.

export function toUser(row: UserRow): User {
  return { id: row.id, username: row.username, publicKey: row.public_key, createdAt: iso(Number(row.created_at)) };
}

export function toMessage(row: MessageRow): Message {
  const m: Message = {
    id: row.id,
    chatId: row.chat_id,
    seq: Number(row.seq),
    senderId: row.sender_id,
    receiverId: row.receiver_id,
    encryptedContent: row.encrypted_content,
    iv: row.iv,
    mac: row.mac,
    type: row.type as Message['type'],
    status: row.status,
    timestamp: iso(Number(row.created_at)),
  };
  if (row.client_message_id !== null) m.clientMessageId = row.client_message_id;
  if (row.delivered_at !== null) m.deliveredAt = iso(Number(row.delivered_at));
  if (row.read_at !== null) m.readAt = iso(Number(row.read_at));
  return m;
}

export function toChat(row: MemberChatRow, participantIds: string[]): Chat {
  return {
    id: row.id,
    participantIds,
    lastMessageId: row.last_message_id,
    unreadCount: Number(row.unread_count),
    encryptionStatus: row.encryption_status,
    lastActivityAt: iso(Number(row.last_activity_at)),
    createdAt: iso(Number(row.created_at)),
  };
}

const messageJsonCache = new WeakMap<Message, string>();

/** A message's JSON, computed once: the same object goes out as `message.new` and `message.sent`. */
export function messageJson(m: Message): string {
  let json = messageJsonCache.get(m);
  if (json === undefined) {
    json = JSON.stringify(m);
    messageJsonCache.set(m, json);
  }
  return json;
}
