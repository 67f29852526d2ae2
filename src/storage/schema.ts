import type { Generated } from 'kysely';

// @NOTE Times are Unix milliseconds (bigint on PostgreSQL, integer on SQLite) so both dialects
// return plain numbers; they become ISO 8601 strings only at the wire.

export interface UsersTable {
  id: string;
  username: string;
  username_lower: string;
  password_hash: string;
  public_key: string | null;
  created_at: number;
}

export interface TokenFamiliesTable {
  id: string;
  user_id: string;
  created_at: number;
  last_used_at: number;
  /** Absolute end of this login, however often it is refreshed. */
  expires_at: number;
  revoked_at: number | null;
  revoke_reason: string | null;
}

export interface RefreshTokensTable {
  token_hash: string;
  family_id: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface ChatsTable {
  id: string;
  kind: 'direct' | 'group';
  /** "<smaller user id>:<larger user id>" for direct chats; unique, so a pair has one chat. */
  direct_key: string | null;
  last_seq: Generated<number>;
  last_message_id: string | null;
  last_activity_at: number;
  encryption_status: 'pending' | 'established';
  created_by: string;
  created_at: number;
}

export interface ChatMembersTable {
  chat_id: string;
  user_id: string;
  unread_count: Generated<number>;
  joined_at: number;
  /** When the member first wrote in the chat; null: never (decision 0022). */
  wrote_at: number | null;
}

export interface MessagesTable {
  id: string;
  chat_id: string;
  seq: number;
  sender_id: string;
  receiver_id: string;
  encrypted_content: string;
  iv: string;
  mac: string;
  type: string;
  status: 'sent' | 'delivered' | 'read';
  client_message_id: string | null;
  created_at: number;
  delivered_at: number | null;
  read_at: number | null;
  /** Its message.new event's seq in the receiver's log (null once pruned): the message row is the event. */
  receiver_seq: number | null;
}

/** Every column of messages, in one order: inserts, selects and the log's union all use it. */
export const MESSAGE_COLUMNS = [
  'id', 'chat_id', 'seq', 'sender_id', 'receiver_id', 'encrypted_content', 'iv', 'mac', 'type', 'status',
  'client_message_id', 'created_at', 'delivered_at', 'read_at', 'receiver_seq',
] as const satisfies readonly (keyof MessagesTable)[];

export interface MailboxesTable {
  user_id: string;
  last_seq: Generated<number>;
  /** Events with seq ≤ this were pruned; a `since` below it cannot be replayed. */
  pruned_through: Generated<number>;
}

export interface EventsTable {
  user_id: string;
  seq: number;
  /** Every type but message.new, which lives in messages (receiver_seq). */
  type: string;
  data: string | null;
  created_at: number;
}

export interface SignedPrekeysTable {
  user_id: string;
  key_id: number;
  public_key: string;
  signature: string;
  created_at: number;
  low_notified_at: number | null;
}

export interface OneTimePrekeysTable {
  user_id: string;
  key_id: number;
  public_key: string;
  created_at: number;
}

export interface Schema {
  users: UsersTable;
  token_families: TokenFamiliesTable;
  refresh_tokens: RefreshTokensTable;
  chats: ChatsTable;
  chat_members: ChatMembersTable;
  messages: MessagesTable;
  mailboxes: MailboxesTable;
  events: EventsTable;
  signed_prekeys: SignedPrekeysTable;
  one_time_prekeys: OneTimePrekeysTable;
}
