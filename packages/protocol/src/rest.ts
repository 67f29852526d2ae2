import { z } from 'zod';
import { base64ByteLength, base64Bytes, ClientMessageId, isCanonicalBase64, Id, Password, PublicKey, Timestamp, Username } from './primitives.js';

// ---- shared limits ----
/** Default cap on the decoded size of `encryptedContent`; servers may be configured lower or higher. */
export const DEFAULT_MAX_CIPHERTEXT_BYTES = 64 * 1024;
/**
 * Upper bound the schema accepts, above the largest size a server can be configured for (1 MiB):
 * the configured size check, not the schema, answers 413 for anything between.
 */
const CIPHERTEXT_SCHEMA_MAX_BYTES = 2 * 1024 * 1024;

// ---- users and auth ----
export const User = z.object({
  id: Id,
  username: z.string(),
  publicKey: z.string().nullable().describe('identity key, base64 (null until uploaded): 32 bytes = Ed25519, 33 bytes starting 0x05 = Curve25519/XEdDSA'),
  createdAt: Timestamp,
});
export type User = z.infer<typeof User>;

export const RegisterBody = z.strictObject({
  username: Username,
  password: Password,
  publicKey: PublicKey.optional().describe('identity public key, base64: 32 bytes = Ed25519; 33 bytes starting 0x05 = Curve25519/XEdDSA (libsignal)'),
});
export type RegisterBody = z.infer<typeof RegisterBody>;

export const LoginBody = z.strictObject({
  username: z.string().min(1).max(64),
  password: z.string().min(1).max(256),
});
export type LoginBody = z.infer<typeof LoginBody>;

export const ChangePasswordBody = z.strictObject({
  currentPassword: z.string().min(1).max(256),
  newPassword: Password,
});
export type ChangePasswordBody = z.infer<typeof ChangePasswordBody>;

export const DeleteAccountBody = z.strictObject({ password: z.string().min(1).max(256) });
export type DeleteAccountBody = z.infer<typeof DeleteAccountBody>;

export const RefreshToken = z.string().min(1).max(512);

export const RefreshBody = z.strictObject({ refreshToken: RefreshToken });
export type RefreshBody = z.infer<typeof RefreshBody>;

export const LogoutBody = RefreshBody;
export type LogoutBody = RefreshBody;

export const TokenPair = z.object({
  accessToken: z.string(),
  refreshToken: z.string(),
  expiresIn: z.number().int().describe('seconds until the access token expires'),
});
export type TokenPair = z.infer<typeof TokenPair>;

export const AuthResponse = TokenPair.extend({ user: User });
export type AuthResponse = z.infer<typeof AuthResponse>;

export const UserIdParams = z.strictObject({ id: Id });
export const UsernameQuery = z.strictObject({ username: Username });

// ---- chats ----
export const EncryptionStatus = z.enum(['pending', 'established']);
export type EncryptionStatus = z.infer<typeof EncryptionStatus>;

export const Chat = z.object({
  id: Id,
  participantIds: z.array(Id),
  lastMessageId: Id.nullable(),
  unreadCount: z.number().int(),
  encryptionStatus: EncryptionStatus,
  lastActivityAt: Timestamp,
  createdAt: Timestamp,
});
export type Chat = z.infer<typeof Chat>;

export const MAX_CHAT_PARTICIPANTS = 50;

export const CreateChatBody = z.strictObject({
  participantIds: z.array(Id).min(1).max(MAX_CHAT_PARTICIPANTS),
});
export type CreateChatBody = z.infer<typeof CreateChatBody>;

/** Where a page of `GET /chats` ends: opaque to clients, pass it back as `cursor` for the next page. */
export const ChatCursor = z.string().regex(/^\d{1,15}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a nextCursor from GET /chats');

export const MAX_CHAT_PAGE = 200;

export const ChatListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(MAX_CHAT_PAGE).default(100),
  cursor: ChatCursor.optional(),
});
export type ChatListQuery = z.infer<typeof ChatListQuery>;

export const ChatList = z.object({ chats: z.array(Chat), hasMore: z.boolean(), nextCursor: ChatCursor.nullable() });
export type ChatList = z.infer<typeof ChatList>;

export const ChatIdParams = z.strictObject({ chatId: Id });

// ---- messages ----
export const MessageType = z.enum(['text', 'image', 'file', 'audio', 'key_exchange', 'system']);
export type MessageType = z.infer<typeof MessageType>;

export const MessageStatus = z.enum(['sent', 'delivered', 'read']);
export type MessageStatus = z.infer<typeof MessageStatus>;

export const SendMessageBody = z
  .strictObject({
    chatId: Id.optional(),
    receiverId: Id.optional(),
    encryptedContent: base64Bytes({ min: 1, max: CIPHERTEXT_SCHEMA_MAX_BYTES }).describe(
      'ciphertext, base64; the configured decoded-size limit (64 KiB by default) answers 413',
    ),
    iv: base64Bytes({ lengths: [12, 16] }).describe('16 bytes (AES-256-CBC) or 12 bytes (AES-256-GCM), base64'),
    mac: base64Bytes({ lengths: [16, 32] }).describe('HMAC-SHA256 tag, 32 bytes, or with a 12-byte iv the AES-256-GCM tag, 16 bytes; base64'),
    type: MessageType,
    clientMessageId: ClientMessageId.optional(),
  })
  .refine((b) => b.chatId !== undefined || b.receiverId !== undefined, {
    message: 'chatId or receiverId is required',
    path: ['chatId'],
  })
  // 16 bytes is an AES-GCM tag, which comes with GCM's 12-byte iv; CBC is always HMAC-SHA256's 32.
  .refine((b) => !isCanonicalBase64(b.mac) || !isCanonicalBase64(b.iv) || base64ByteLength(b.mac) !== 16 || base64ByteLength(b.iv) === 12, {
    message: 'a 16-byte mac (an AES-256-GCM tag) needs a 12-byte iv; with AES-256-CBC the mac is 32 bytes',
    path: ['mac'],
    params: { reason: 'invalid_length' },
  });
export type SendMessageBody = z.infer<typeof SendMessageBody>;

export const Message = z.object({
  id: Id,
  chatId: Id,
  seq: z.number().int(),
  senderId: Id,
  receiverId: Id,
  encryptedContent: z.string(),
  iv: z.string(),
  mac: z.string(),
  type: MessageType,
  status: MessageStatus,
  clientMessageId: z.string().optional(),
  timestamp: Timestamp,
  deliveredAt: Timestamp.optional(),
  readAt: Timestamp.optional(),
});
export type Message = z.infer<typeof Message>;

export const MessagePageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  before: Id.optional(),
  after: Id.optional(),
});
export type MessagePageQuery = z.infer<typeof MessagePageQuery>;

export const MessagePage = z.object({ messages: z.array(Message), hasMore: z.boolean() });
export type MessagePage = z.infer<typeof MessagePage>;

export const MessageIdParams = z.strictObject({ id: Id });

export const UpdateStatusBody = z.strictObject({ status: z.enum(['delivered', 'read']) });
export type UpdateStatusBody = z.infer<typeof UpdateStatusBody>;

// ---- operations ----
export const Health = z.object({
  status: z.enum(['ok', 'unavailable']),
  checks: z.record(z.string(), z.enum(['ok', 'down'])).optional(),
});
export type Health = z.infer<typeof Health>;
