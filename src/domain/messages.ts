import { base64ByteLength, type Message, type MessagePage, type MessagePageQuery, type SendMessageBody } from '@safechat/protocol';
import { ConflictError, ForbiddenError, NotFoundError, PayloadTooLargeError, RateLimitedError, ValidationError } from '../errors.js';
import type { RateLimiter, Take } from '../limits/limiter.js';
import { isForeignKeyViolation, isUniqueViolation } from '../storage/dialect.js';
import type { Database } from '../storage/db.js';
import {
  findMessageByClientId,
  findMessageById,
  pageMessages,
  recordStatus,
  storeMessage,
  type MessageRow,
} from '../storage/repositories/messages.js';
import { iso, type Clock } from '../util/clock.js';
import { uuidv7 } from '../util/ids.js';
import type { ChatService } from './chats.js';
import { eventFrame, type Mailbox } from './mailbox.js';
import { toMessage } from './wire.js';

const STATUS_RANK = { sent: 0, delivered: 1, read: 2 } as const;
const MESSAGE_NOT_FOUND = 'message not found';
const RECEIVER_FULL = 'the receiver is getting too much, retry later';

export interface SendResult {
  message: Message;
  /** False when this was a retry of an earlier send with the same clientMessageId. */
  created: boolean;
}

/** Told what happened, after the commit (metrics). */
export interface MessageHooks {
  stored?(message: Message): void;
  statusChanged?(status: 'delivered' | 'read'): void;
}

/**
 * Store-and-forward of ciphertext. The server checks envelope shape and size, never decodes the
 * content. One function serves `POST /messages` and the WebSocket `message.send`.
 */
export class MessageService {
  constructor(
    private readonly deps: {
      db: Database;
      chats: ChatService;
      mailbox: Mailbox;
      limiter: RateLimiter;
      clock: Clock;
      maxCiphertextBytes: number;
      /** Fault tests only (T-DUR-02): answers wait this long after their commit, so a kill can fall between the two. */
      holdAfterCommitMs?: number;
      hooks?: MessageHooks;
    },
  ) {}

  async send(senderId: string, body: SendMessageBody): Promise<SendResult> {
    const { db, mailbox, limiter, clock } = this.deps;
    const bytes = base64ByteLength(body.encryptedContent);
    if (bytes > this.deps.maxCiphertextBytes) {
      throw new PayloadTooLargeError(`encryptedContent exceeds ${this.deps.maxCiphertextBytes} bytes`, { limit: this.deps.maxCiphertextBytes });
    }
    const { chatId, receiverId } = await this.route(senderId, body);
    // The sender's count and bytes and the receiver's bytes, all or nothing: a send one of them
    // stops costs nothing in the others. A retry of a stored message is answered even when limited.
    // The receiver's bytes are counted per sender, and for senders it has never written to also
    // together: strangers that use up their shared allowance cannot silence its contacts (0022).
    const takes: Take[] = [
      { name: 'sendsPerUser', key: senderId },
      { name: 'sendBytesPerUser', key: senderId, cost: bytes },
      { name: 'receiveBytesPerSender', key: `${receiverId}:${senderId}`, cost: bytes, message: RECEIVER_FULL },
    ];
    if (this.deps.limiter.enabled && !(await this.deps.chats.hasWritten(chatId, receiverId))) {
      takes.push({ name: 'receiveBytesFromStrangers', key: receiverId, cost: bytes, message: RECEIVER_FULL });
    }
    try {
      await limiter.consumeAll(takes);
    } catch (err) {
      const earlier = err instanceof RateLimitedError ? await this.earlier(senderId, body) : undefined;
      if (earlier) return earlier;
      throw err;
    }
    const now = clock.now();
    const row: MessageRow = {
      id: uuidv7(now),
      chat_id: chatId,
      seq: 0,
      sender_id: senderId,
      receiver_id: receiverId,
      encrypted_content: body.encryptedContent,
      iv: body.iv,
      mac: body.mac,
      type: body.type,
      status: 'sent',
      client_message_id: body.clientMessageId ?? null,
      created_at: now,
      delivered_at: null,
      read_at: null,
      receiver_seq: null,
    };
    try {
      // One statement on PostgreSQL (no BEGIN/COMMIT round trips); a commit group on SQLite.
      const result = await db.oneStatement(async (tx): Promise<SendResult> => {
        const markWriter = !this.deps.chats.knownWriter(chatId, senderId);
        const placed = await storeMessage(tx.db, row, { establishesEncryption: body.type === 'key_exchange', markWriter });
        if (!placed.stored) {
          if (!placed.earlier) throw new NotFoundError('receiver not found');
          return { message: toMessage(placed.earlier), created: false };
        }
        if (markWriter) tx.onCommit(() => this.deps.chats.noteWritten(chatId, senderId));
        const m = toMessage(row);
        mailbox.announce(tx, receiverId, eventFrame('message.new', row.receiver_seq!, m));
        return { message: m, created: true };
      });
      if (result.created) this.deps.hooks?.stored?.(result.message);
      // A retry of a stored message stores nothing: it does not count against the limits.
      else await limiter.refundAll(takes);
      if (this.deps.holdAfterCommitMs) await new Promise((r) => setTimeout(r, this.deps.holdAfterCommitMs));
      return result;
    } catch (err) {
      // PostgreSQL: a retry (or two sends with one clientMessageId racing) hit the unique key.
      if (isUniqueViolation(err, 'messages_sender_client_id_key')) {
        const earlier = await this.earlier(senderId, body);
        if (earlier) {
          await limiter.refundAll(takes);
          return earlier;
        }
      }
      // The receiver's account was deleted between routing and storing.
      if (isForeignKeyViolation(err)) throw new NotFoundError('receiver not found');
      throw err;
    }
  }

  /** The sender's message with this send's clientMessageId, if there is one. */
  private async earlier(senderId: string, body: SendMessageBody): Promise<SendResult | undefined> {
    if (body.clientMessageId === undefined) return undefined;
    const row = await findMessageByClientId(this.deps.db.db, senderId, body.clientMessageId);
    return row ? { message: toMessage(row), created: false } : undefined;
  }

  /** Which chat and which member a message goes to; the sender must be in the chat. */
  private async route(senderId: string, body: SendMessageBody): Promise<{ chatId: string; receiverId: string }> {
    if (body.receiverId === senderId) throw new ValidationError('receiverId must be another user', [{ path: ['receiverId'] }]);
    if (body.chatId === undefined) {
      // A receiverId alone: the pair's one-to-one chat, found or made (the receiver must exist).
      const receiverId = body.receiverId!;
      const { chatId } = await this.deps.chats.findOrCreateDirect(senderId, receiverId);
      return { chatId, receiverId };
    }
    const members = await this.deps.chats.membersFor(senderId, body.chatId);
    if (body.receiverId !== undefined) {
      if (!members.includes(body.receiverId)) throw new ValidationError('receiverId is not a member of this chat', [{ path: ['receiverId'] }]);
      return { chatId: body.chatId, receiverId: body.receiverId };
    }
    const others = members.filter((id) => id !== senderId);
    if (others.length === 0) throw new NotFoundError('receiver not found');
    if (others.length !== 1) throw new ValidationError('receiverId is required in a group chat', [{ path: ['receiverId'] }]);
    return { chatId: body.chatId, receiverId: others[0]! };
  }

  async page(userId: string, chatId: string, q: MessagePageQuery): Promise<MessagePage> {
    const { db, chats } = this.deps;
    await chats.membersFor(userId, chatId);
    const seqOf = async (id: string | undefined, field: 'before' | 'after'): Promise<number | undefined> => {
      if (id === undefined) return undefined;
      const m = await findMessageById(db.db, id);
      if (!m || m.chat_id !== chatId) throw new ValidationError(`${field} must be a message of this chat`, [{ path: [field] }]);
      return Number(m.seq);
    };
    const afterSeq = await seqOf(q.after, 'after');
    const beforeSeq = await seqOf(q.before, 'before');
    const { rows, hasMore } = await pageMessages(db.db, chatId, userId, { afterSeq, beforeSeq, limit: q.limit });
    return { messages: rows.map(toMessage), hasMore };
  }

  /** Receiver-only, forward-only: sent → delivered → read. Repeating a status is a no-op. */
  async setStatus(userId: string, messageId: string, status: 'delivered' | 'read'): Promise<Message> {
    const { db, mailbox, clock } = this.deps;
    const current = await findMessageById(db.db, messageId);
    if (!current || (current.sender_id !== userId && current.receiver_id !== userId)) throw new NotFoundError(MESSAGE_NOT_FOUND, current !== undefined);
    if (current.receiver_id !== userId) throw new ForbiddenError('only the receiver can set a message status');
    const now = clock.now();
    const data = { messageId, chatId: current.chat_id, status, updatedAt: iso(now) };
    // One statement on PostgreSQL (no BEGIN/COMMIT round trips); a commit group on SQLite.
    const updated = await db.oneStatement(async (tx) => {
      const recorded = await recordStatus(tx.db, status, {
        id: messageId,
        now,
        chatId: current.chat_id,
        senderId: current.sender_id,
        receiverId: userId,
        data: JSON.stringify(data),
      });
      if (!recorded) return null;
      mailbox.announce(tx, current.sender_id, eventFrame('message.status', recorded.eventSeq, data));
      return recorded.row;
    });
    if (updated) {
      this.deps.hooks?.statusChanged?.(status);
      return toMessage(updated);
    }
    // Not behind: either already there (idempotent) or further along (going back is refused).
    // Or gone: its sender's account was deleted meanwhile.
    const latest = await findMessageById(db.db, messageId);
    if (!latest) throw new NotFoundError(MESSAGE_NOT_FOUND);
    if (STATUS_RANK[latest.status] > STATUS_RANK[status]) {
      throw new ConflictError(`message is already ${latest.status}; status only moves forward`);
    }
    return toMessage(latest);
  }
}
