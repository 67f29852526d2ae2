/**
 * Pluggable storage of the client layer, next to the crypto layer's KeyStore and SessionStore:
 * tokens, the event cursor, and the plaintext of messages (the ratchet decrypts each message
 * once, and the sender cannot decrypt its own messages at all). In-memory versions are provided;
 * persist the real ones where the platform keeps secrets (tokens and plaintext are sensitive).
 */
import type { Plaintext } from '../crypto/index.js';

/** The current login. `expiresAt` is the access token's expiry in the client's clock (ms since the epoch). */
export interface StoredTokens {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
}

export interface TokenStore {
  load(): Promise<StoredTokens | undefined>;
  save(tokens: StoredTokens): Promise<void>;
  clear(): Promise<void>;
}

/** The cursor of the last WebSocket event the application processed (sent as `since` on reconnect). */
export interface CursorStore {
  load(): Promise<string | undefined>;
  save(cursor: string): Promise<void>;
}

/** A message with its plaintext, as the client keeps it after decrypting (or sending) it once. */
export interface StoredMessage {
  id: string;
  chatId: string;
  /** The message's position in its chat (server-assigned). */
  seq: number;
  senderId: string;
  receiverId: string;
  /** ISO 8601, from the server. */
  timestamp: string;
  clientMessageId?: string;
  /** The real type and body, from inside the ciphertext (`body`: string for text, bytes for binary). */
  plaintext: Plaintext;
}

export interface MessageStore {
  get(messageId: string): Promise<StoredMessage | undefined>;
  put(message: StoredMessage): Promise<void>;
  /** Stored messages of a chat, oldest first: the `limit` latest with `seq` below `beforeSeq`. */
  list(chatId: string, opts?: { limit?: number; beforeSeq?: number }): Promise<StoredMessage[]>;
}

// ---- in-memory implementations ----

const copy = <T>(v: T): T => structuredClone(v);

export class MemoryTokenStore implements TokenStore {
  #tokens: StoredTokens | undefined;
  load(): Promise<StoredTokens | undefined> {
    return Promise.resolve(this.#tokens && copy(this.#tokens));
  }
  save(tokens: StoredTokens): Promise<void> {
    this.#tokens = copy(tokens);
    return Promise.resolve();
  }
  clear(): Promise<void> {
    this.#tokens = undefined;
    return Promise.resolve();
  }
}

export class MemoryCursorStore implements CursorStore {
  #cursor: string | undefined;
  load(): Promise<string | undefined> {
    return Promise.resolve(this.#cursor);
  }
  save(cursor: string): Promise<void> {
    this.#cursor = cursor;
    return Promise.resolve();
  }
}

export class MemoryMessageStore implements MessageStore {
  readonly #byId = new Map<string, StoredMessage>();

  get(messageId: string): Promise<StoredMessage | undefined> {
    const m = this.#byId.get(messageId);
    return Promise.resolve(m && copy(m));
  }
  put(message: StoredMessage): Promise<void> {
    this.#byId.set(message.id, copy(message));
    return Promise.resolve();
  }
  list(chatId: string, opts: { limit?: number; beforeSeq?: number } = {}): Promise<StoredMessage[]> {
    const all = [...this.#byId.values()]
      .filter((m) => m.chatId === chatId && (opts.beforeSeq === undefined || m.seq < opts.beforeSeq))
      .sort((a, b) => a.seq - b.seq);
    return Promise.resolve(all.slice(-(opts.limit ?? 50)).map(copy));
  }
}
