/**
 * The high-level client an app uses: sign-in, key management, end-to-end encrypted one-to-one
 * messaging over the WebSocket (REST when it is down), decryption of incoming messages and
 * history with a local plaintext cache, identity-change warnings and safety numbers.
 */
import type { Chat, EventFrame, Message, User } from '@safechat/protocol';
import {
  buildUploadBundle,
  decryptMessage,
  encryptMessage,
  generateIdentity,
  generatePreKeys,
  hasSession,
  initiateSession,
  rotateSignedPreKey,
  safetyNumber as computeSafetyNumber,
  toBase64,
  type CryptoStores,
  type Plaintext,
} from '../crypto/index.js';
import { MemoryKeyStore, MemorySessionStore, type KeyStore, type SessionStore } from '../store/index.js';
import { Emitter } from './emitter.js';
import { ApiError, IdentityMismatchError } from './errors.js';
import { HttpClient, type FetchLike } from './http.js';
import { timeOrderedId } from './random.js';
import { SafeChatSocket, type SocketOptions, type SocketState, type WebSocketConstructor } from './socket.js';
import {
  MemoryCursorStore,
  MemoryMessageStore,
  MemoryTokenStore,
  type CursorStore,
  type MessageStore,
  type StoredMessage,
  type TokenStore,
} from './stores.js';

/** Everything the client keeps. Persist all of it for a client that survives restarts (see the README). */
export interface ClientStores {
  /** Identity key pair, signed pre-keys, one-time pre-keys (secret). */
  keys: KeyStore;
  /** Ratchet state per peer (secret). */
  sessions: SessionStore;
  /** Access and refresh token (secret). */
  tokens: TokenStore;
  /** Last processed WebSocket cursor. */
  cursor: CursorStore;
  /** Plaintext of every message sent or decrypted (sensitive). */
  messages: MessageStore;
}

export interface SafeChatClientOptions {
  /** The server, e.g. `https://chat.example.com`. */
  baseUrl: string;
  /** Default: `baseUrl` with `ws(s)://` and `/ws`. */
  wsUrl?: string;
  /** Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Default: the global `WebSocket`; on Node 20 pass the class of the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Default: in memory (nothing survives a restart). */
  stores?: Partial<ClientStores>;
  /** One-time pre-keys: upload this many at a time (default 100, the server's maximum per upload) … */
  preKeyBatch?: number;
  /** … and refill when fewer than this many are left on the server (default 25). */
  preKeyMinimum?: number;
  /** Replace the signed pre-key when the newest is older than this, checked at `connect()` (default 30; 0: never). */
  signedPreKeyMaxAgeDays?: number;
  /** Mark each incoming message `delivered` once it is decrypted and stored (default true). */
  markDelivered?: boolean;
  /** Socket tuning (backoff, ping, timeouts). */
  socket?: Omit<SocketOptions, 'url' | 'WebSocket' | 'auth' | 'cursors' | 'now'>;
  now?: () => number;
}

/** A message with its plaintext (null for a message that could not be decrypted, or an own message sent from elsewhere). */
export interface ChatItem {
  message: Message;
  plaintext: Plaintext | null;
  /** Why `plaintext` is null: the decryption error, or `'own'` for an own message not in the local store. */
  error?: unknown;
}

export interface IdentityChange {
  userId: string;
  /** The new identity key (base64), and the one of the previous session when there was one. */
  identityKey: string;
  previousIdentityKey?: string;
  /** The new safety number to compare with the peer. */
  safetyNumber: string;
  /** Where it was noticed: a `key.changed` event, a new session from the peer, or the bundle fetched to send. */
  source: 'key.changed' | 'incoming' | 'outgoing';
}

export interface SafeChatClientEvents {
  /** A new incoming message, decrypted (once; replays and repeats are not emitted again). */
  message: { message: Message; plaintext: Plaintext };
  /** An incoming message that could not be decrypted (tampered, replayed, unknown session, untrusted identity). */
  undecryptable: { message: Message; error: unknown };
  /** One of our messages was delivered or read. */
  status: { messageId: string; chatId: string; status: 'sent' | 'delivered' | 'read'; updatedAt: string };
  /** A peer's identity key changed: warn the user and show the new safety number. */
  identityChanged: IdentityChange;
  /** The server could not replay missed events: refetch chats and history over REST. */
  resync: { reason: string };
  /** One-time pre-keys were uploaded. */
  preKeysUploaded: { uploaded: number; total: number };
  /** The WebSocket's state changed. */
  connection: { state: SocketState };
  /** The session ended (refresh refused, logged out, revoked): sign in again. */
  signedOut: { reason: string };
  /** A background failure (event handling, refill, delivery receipt). */
  error: { error: unknown; context: string };
}

/** Sending: one retry over REST (same clientMessageId) for an answer lost on the way, a few more for transient errors. */
const SEND_ATTEMPTS = 4;

export class SafeChatClient {
  readonly api: HttpClient;
  readonly socket: SafeChatSocket;
  readonly stores: ClientStores;
  readonly #events = new Emitter<SafeChatClientEvents>();
  readonly #crypto: CryptoStores;
  readonly #batch: number;
  readonly #minimum: number;
  readonly #markDelivered: boolean;
  readonly #spkMaxAgeMs: number;
  readonly #now: () => number;
  #user: User | null = null;
  readonly #chatByPeer = new Map<string, Promise<Chat>>();
  readonly #peerQueues = new Map<string, Promise<unknown>>();
  readonly #opening = new Map<string, Promise<ChatItem>>();
  readonly #lastWarned = new Map<string, string>();
  #refill: Promise<number> | null = null;

  constructor(opts: SafeChatClientOptions) {
    this.stores = {
      keys: opts.stores?.keys ?? new MemoryKeyStore(),
      sessions: opts.stores?.sessions ?? new MemorySessionStore(),
      tokens: opts.stores?.tokens ?? new MemoryTokenStore(),
      cursor: opts.stores?.cursor ?? new MemoryCursorStore(),
      messages: opts.stores?.messages ?? new MemoryMessageStore(),
    };
    this.#crypto = { keys: this.stores.keys, sessions: this.stores.sessions };
    this.#batch = Math.min(100, opts.preKeyBatch ?? 100);
    this.#minimum = opts.preKeyMinimum ?? 25;
    this.#markDelivered = opts.markDelivered ?? true;
    this.#spkMaxAgeMs = (opts.signedPreKeyMaxAgeDays ?? 30) * 86_400_000;
    this.#now = opts.now ?? Date.now;
    this.api = new HttpClient({ baseUrl: opts.baseUrl, tokens: this.stores.tokens, ...(opts.fetch ? { fetch: opts.fetch } : {}), ...(opts.now ? { now: opts.now } : {}) });
    this.socket = new SafeChatSocket({
      ...opts.socket,
      url: opts.wsUrl ?? `${opts.baseUrl.replace(/\/+$/, '').replace(/^http/, 'ws')}/ws`,
      auth: this.api,
      cursors: this.stores.cursor,
      ...(opts.WebSocket ? { WebSocket: opts.WebSocket } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
    this.api.events.on('signedOut', ({ reason }) => {
      this.#user = null;
      this.socket.close();
      this.#events.emit('signedOut', { reason });
    });
    this.socket.events.on('state', ({ state }) => this.#events.emit('connection', { state }));
    this.socket.events.on('event', (frame) => this.#onEvent(frame));
    this.socket.events.on('resync', ({ reason }) => this.#deliver('resync', { reason }));
    this.socket.events.on('error', ({ error }) => this.#fail(error, 'socket'));
  }

  /** Adds an event handler; returns the function that removes it. */
  on<K extends keyof SafeChatClientEvents>(type: K, handler: (payload: SafeChatClientEvents[K]) => void | Promise<void>): () => void {
    return this.#events.on(type, handler);
  }

  /** The signed-in user (after register, login or restore). */
  get user(): User | null {
    return this.#user;
  }

  // ---- account ----

  /**
   * Creates the account with a new identity key (or the one already in the key store), uploads a
   * signed pre-key and a batch of one-time pre-keys, and starts the event cursor at the beginning
   * so nothing sent before the first connection is missed.
   */
  async register(username: string, password: string): Promise<User> {
    let identity = await this.stores.keys.getIdentityKeyPair();
    if (!identity) {
      identity = generateIdentity();
      await this.stores.keys.saveIdentityKeyPair(identity);
    }
    const res = await this.api.register({ username, password, publicKey: toBase64(identity.publicKey) });
    this.#user = res.user;
    if ((await this.stores.cursor.load()) === undefined) await this.stores.cursor.save('0');
    await this.#uploadAll();
    return this.#me();
  }

  /**
   * Signs in. With an empty key store (a new install) a new identity is generated and uploaded:
   * the user's contacts get `key.changed` and see a new safety number. Otherwise the one-time
   * pre-keys are topped up if needed.
   */
  async login(username: string, password: string): Promise<User> {
    const res = await this.api.login({ username, password });
    this.#user = res.user;
    await this.#ensureKeys();
    return this.#me();
  }

  /** Continues a stored login (tokens in the TokenStore); null when there is none or it ended. */
  async restore(): Promise<User | null> {
    if (!(await this.api.isSignedIn())) return null;
    try {
      this.#user = await this.api.getMe();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return null;
      throw err;
    }
    await this.#ensureKeys();
    return this.#user;
  }

  /** Closes the socket, revokes the login on the server and forgets the tokens (keys and messages stay in their stores). */
  async logout(): Promise<void> {
    this.socket.close();
    await this.api.logout();
    this.#user = null;
  }

  /** Changes the password; the user's other logins end, this one continues (its socket reconnects with the new token). */
  changePassword(currentPassword: string, newPassword: string): Promise<void> {
    return this.api.changePassword({ currentPassword, newPassword });
  }

  /** Deletes the account on the server (password required) and signs out. Local stores are left to the app to wipe. */
  async deleteAccount(password: string): Promise<void> {
    this.socket.close();
    await this.api.deleteAccount(password);
    this.#user = null;
  }

  // ---- connection ----

  /**
   * Opens the WebSocket (and keeps it open: reconnects, resumes, re-authenticates); resolves when
   * ready. Then, in the background, rotates an old signed pre-key and tops up one-time pre-keys.
   */
  async connect(): Promise<void> {
    this.#me();
    await this.socket.connect();
    void this.#maintainKeys().catch((error: unknown) => this.#fail(error, 'key maintenance'));
  }

  disconnect(): void {
    this.socket.close();
  }

  // ---- messaging ----

  /** Encrypts and sends a text message to `peerUserId`; see {@link send}. */
  sendText(peerUserId: string, text: string): Promise<ChatItem & { plaintext: Plaintext }> {
    return this.send(peerUserId, { type: 'text', body: text });
  }

  /**
   * Encrypts and sends one message to `peerUserId`: finds or creates the one-to-one chat (its id
   * is under the MAC), starts a session from the peer's pre-key bundle if there is none (checking
   * the bundle's identity key against the peer's `publicKey`), encrypts, and sends over the socket
   * when it is open, else over REST — with a `clientMessageId`, so a retry after a lost answer
   * cannot store the message twice. Sends to one peer are serialised (the server gets them in
   * encryption order). The plaintext is kept in the MessageStore.
   */
  send(peerUserId: string, plaintext: Plaintext): Promise<ChatItem & { plaintext: Plaintext }> {
    const me = this.#me();
    return this.#serial(peerUserId, async () => {
      const chat = await this.chatWith(peerUserId);
      if (!(await hasSession(this.#crypto, peerUserId))) await this.#startSession(peerUserId);
      const enc = await encryptMessage(this.#crypto, { senderId: me.id, receiverId: peerUserId, chatId: chat.id }, plaintext);
      const body = { chatId: chat.id, receiverId: peerUserId, ...enc, clientMessageId: timeOrderedId() };
      const message = await this.#post(body);
      await this.stores.messages.put(toStored(message, plaintext));
      return { message, plaintext };
    });
  }

  /**
   * A page of the conversation with `peerUserId` from the server (oldest first), each message
   * with its plaintext: from the MessageStore, or decrypted now (and stored) if it is new.
   */
  async history(peerUserId: string, opts: { limit?: number; before?: string; after?: string } = {}): Promise<{ items: ChatItem[]; hasMore: boolean }> {
    const chat = await this.chatWith(peerUserId);
    const page = await this.api.getMessages(chat.id, opts);
    const items: ChatItem[] = [];
    for (const m of page.messages) items.push(await this.#open(m));
    return { items, hasMore: page.hasMore };
  }

  /** Marks an incoming message read (which also lowers the chat's unread count). */
  markRead(messageId: string): Promise<Message> {
    return this.api.setMessageStatus(messageId, 'read');
  }

  /** Marks an incoming message delivered (done automatically unless `markDelivered: false`). */
  markDelivered(messageId: string): Promise<Message> {
    return this.api.setMessageStatus(messageId, 'delivered');
  }

  /** The one-to-one chat with `peerUserId` (created on first use; cached). */
  chatWith(peerUserId: string): Promise<Chat> {
    let p = this.#chatByPeer.get(peerUserId);
    if (!p) {
      p = this.api.createChat([peerUserId]).then((r) => r.chat);
      p.catch(() => this.#chatByPeer.delete(peerUserId));
      this.#chatByPeer.set(peerUserId, p);
    }
    return p;
  }

  // ---- identity ----

  /**
   * The safety number of this user and `peerUserId` (60 digits in 12 groups), the same on both
   * sides. It uses the identity key of the current session with the peer (what messages are
   * actually encrypted to), or the peer's published key when there is no session yet.
   */
  async safetyNumber(peerUserId: string): Promise<string> {
    const me = this.#me();
    const identity = await this.stores.keys.getIdentityKeyPair();
    if (!identity) throw new Error('no identity key');
    const peerKey = (await this.#sessionIdentity(peerUserId)) ?? (await this.api.getUser(peerUserId)).publicKey;
    if (!peerKey) throw new ApiError(404, 'not_found', 'this user has no identity key');
    return computeSafetyNumber({ userId: me.id, identityKey: identity.publicKey }, { userId: peerUserId, identityKey: peerKey });
  }

  // ---- keys ----

  /**
   * Tops the one-time pre-keys on the server up to `preKeyBatch` when fewer than `preKeyMinimum`
   * are left (run after connecting; on `prekeys.low` the client tops up whenever the server has
   * fewer than a full batch). Returns how many were uploaded.
   */
  refillPreKeys(): Promise<number> {
    return this.#topUp(this.#minimum);
  }

  /** Replaces the signed pre-key (do it every week or month); the previous ones stay for messages in flight. */
  async rotateSignedPreKey(): Promise<void> {
    await rotateSignedPreKey(this.stores.keys);
    await this.api.uploadKeys(await buildUploadBundle(this.stores.keys, []));
  }

  // ---- internals: keys ----

  async #ensureKeys(): Promise<void> {
    const me = this.#me();
    const identity = await this.stores.keys.getIdentityKeyPair();
    if (!identity) {
      await this.stores.keys.saveIdentityKeyPair(generateIdentity());
      await this.#uploadAll();
    } else if (me.publicKey !== toBase64(identity.publicKey)) {
      await this.#uploadAll();
    } else {
      await this.refillPreKeys();
    }
    this.#user = await this.api.getMe();
  }

  /** Uploads the identity key, the signed pre-key (made if missing) and one batch of fresh one-time pre-keys. */
  async #uploadAll(): Promise<void> {
    const { oneTimePreKeys } = await generatePreKeys(this.stores.keys, this.#batch);
    const { oneTimePreKeys: total } = await this.api.uploadKeys(await buildUploadBundle(this.stores.keys, oneTimePreKeys));
    this.#events.emit('preKeysUploaded', { uploaded: oneTimePreKeys.length, total });
  }

  async #maintainKeys(): Promise<void> {
    if (this.#spkMaxAgeMs > 0) {
      const newest = Math.max(0, ...(await this.stores.keys.listSignedPreKeys()).map((k) => k.createdAt));
      if (this.#now() - newest > this.#spkMaxAgeMs) await this.rotateSignedPreKey();
    }
    await this.refillPreKeys();
  }

  /** Refills run one after another, each on a fresh count, so a burst of `prekeys.low` uploads once. */
  #topUp(threshold: number): Promise<number> {
    const run = async (): Promise<number> => {
      const { oneTimePreKeys: left } = await this.api.getPreKeyCount();
      if (left >= threshold || left >= this.#batch) return 0;
      const { oneTimePreKeys } = await generatePreKeys(this.stores.keys, this.#batch - left);
      const { oneTimePreKeys: total } = await this.api.uploadKeys(await buildUploadBundle(this.stores.keys, oneTimePreKeys));
      this.#events.emit('preKeysUploaded', { uploaded: oneTimePreKeys.length, total });
      return oneTimePreKeys.length;
    };
    const p = (this.#refill ?? Promise.resolve(0)).catch(() => 0).then(run);
    this.#refill = p;
    void p.finally(() => {
      if (this.#refill === p) this.#refill = null;
    }).catch(() => undefined);
    return p;
  }

  // ---- internals: sessions ----

  /** X3DH with the peer's bundle, after checking the bundle's identity key is the peer's published one. */
  async #startSession(peerUserId: string, known?: User, warn = true): Promise<void> {
    const bundle = await this.api.getPreKeyBundle(peerUserId);
    const user = known ?? (await this.api.getUser(peerUserId));
    if (!user.publicKey || bundle.identityKey !== user.publicKey) throw new IdentityMismatchError(peerUserId);
    const previous = await this.#sessionIdentity(peerUserId);
    const r = await initiateSession(this.#crypto, peerUserId, bundle);
    if (r.identityChanged && warn) await this.#warn(peerUserId, r.peerIdentityKey, previous, 'outgoing');
  }

  /** The peer identity key of the active session, if any. */
  async #sessionIdentity(peerUserId: string): Promise<string | undefined> {
    return (await this.stores.sessions.loadSession(peerUserId))?.active?.peerIdentityKey;
  }

  async #warn(userId: string, identityKey: string, previousIdentityKey: string | undefined, source: IdentityChange['source']): Promise<void> {
    if (this.#lastWarned.get(userId) === identityKey) return;
    this.#lastWarned.set(userId, identityKey);
    const me = this.#me();
    const identity = await this.stores.keys.getIdentityKeyPair();
    const safetyNumber = identity ? computeSafetyNumber({ userId: me.id, identityKey: identity.publicKey }, { userId, identityKey }) : '';
    await this.#deliver('identityChanged', { userId, identityKey, ...(previousIdentityKey !== undefined ? { previousIdentityKey } : {}), safetyNumber, source });
  }

  // ---- internals: receiving ----

  async #onEvent(frame: EventFrame): Promise<void> {
    const me = this.#user;
    if (!me) return;
    try {
      switch (frame.type) {
        case 'message.new': {
          const message = frame.data;
          if (message.receiverId !== me.id) return;
          const known = await this.stores.messages.get(message.id);
          if (known) return; // processed before (replayed after a reconnect, or opened through history)
          const item = await this.#open(message);
          if (item.plaintext) {
            await this.#deliver('message', { message, plaintext: item.plaintext });
            if (this.#markDelivered && message.status === 'sent') {
              this.markDelivered(message.id).catch((error: unknown) => this.#fail(error, 'delivery receipt'));
            }
          } else {
            await this.#deliver('undecryptable', { message, error: item.error });
          }
          return;
        }
        case 'message.status':
          await this.#deliver('status', frame.data);
          return;
        case 'key.changed':
          await this.#onKeyChanged(frame.data.userId);
          return;
        case 'prekeys.low':
          await this.#topUp(this.#batch);
          return;
      }
    } catch (error) {
      this.#fail(error, `handling ${frame.type}`);
    }
  }

  /**
   * A contact's identity key changed. If it differs from the key of our session with them, warn,
   * and start a new session with the new key right away (so our next message can be read by the
   * peer's new install; the old session stays archived for messages in flight).
   */
  async #onKeyChanged(userId: string): Promise<void> {
    const user = await this.api.getUser(userId);
    const previous = await this.#sessionIdentity(userId);
    const key = user.publicKey;
    if (!key || previous === undefined || previous === key) return;
    // The new session first, so the warning's handler already sees the new safety number.
    const renewal = this.#serial(userId, async () => {
      if ((await this.#sessionIdentity(userId)) !== key) await this.#startSession(userId, user, false);
    });
    await renewal.catch(() => undefined);
    await this.#warn(userId, key, previous, 'key.changed');
    await renewal; // its failure, if any, is reported after the warning
  }

  /** A message with its plaintext: from the store, or decrypted once (concurrent callers share it) and stored. */
  #open(message: Message): Promise<ChatItem> {
    let p = this.#opening.get(message.id);
    if (!p) {
      p = this.#doOpen(message).finally(() => this.#opening.delete(message.id));
      this.#opening.set(message.id, p);
    }
    return p;
  }

  async #doOpen(message: Message): Promise<ChatItem> {
    const stored = await this.stores.messages.get(message.id);
    if (stored) return { message, plaintext: stored.plaintext };
    const me = this.#me();
    if (message.senderId === me.id) return { message, plaintext: null, error: 'own' };
    let d: Awaited<ReturnType<typeof decryptMessage>>;
    try {
      const previous = await this.#sessionIdentity(message.senderId);
      d = await decryptMessage(this.#crypto, message, { trustIdentity: (userId, key) => this.#isPublishedKey(userId, key) });
      if (d.identityChanged) await this.#warn(message.senderId, d.peerIdentityKey, previous, 'incoming');
    } catch (error) {
      return { message, plaintext: null, error };
    }
    const plaintext: Plaintext = { type: d.type, body: d.body };
    await this.stores.messages.put(toStored(message, plaintext));
    return { message, plaintext };
  }

  /** A new session from a peer is accepted only with the identity key the server publishes for them. */
  async #isPublishedKey(userId: string, identityKey: string): Promise<boolean> {
    return (await this.api.getUser(userId)).publicKey === identityKey;
  }

  // ---- internals: sending ----

  async #post(body: Parameters<HttpClient['sendMessage']>[0]): Promise<Message> {
    if (this.socket.isOpen) {
      try {
        return await this.socket.sendMessage(body);
      } catch (err) {
        if (!(err instanceof ApiError) || !err.transient) throw err; // the server refused it: no retry
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.api.sendMessage(body)).message;
      } catch (err) {
        if (!(err instanceof ApiError) || !err.transient || attempt >= SEND_ATTEMPTS) throw err;
        const wait = err.retryAfter !== undefined ? Math.min(err.retryAfter * 1000, 10_000) : 250 * 2 ** attempt;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Runs `fn` after every earlier task for the same peer. */
  #serial<T>(peerUserId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#peerQueues.get(peerUserId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#peerQueues.set(peerUserId, tail);
    void tail.then(() => {
      if (this.#peerQueues.get(peerUserId) === tail) this.#peerQueues.delete(peerUserId);
    });
    return next;
  }

  // ---- internals: misc ----

  #me(): User {
    if (!this.#user) throw new Error('not signed in: call register, login or restore first');
    return this.#user;
  }

  async #deliver<K extends keyof SafeChatClientEvents>(type: K, payload: SafeChatClientEvents[K]): Promise<void> {
    for (const error of await this.#events.emitSerial(type, payload)) this.#fail(error, `${String(type)} handler`);
  }

  #fail(error: unknown, context: string): void {
    this.#events.emit('error', { error, context });
  }
}

function toStored(message: Message, plaintext: Plaintext): StoredMessage {
  return {
    id: message.id,
    chatId: message.chatId,
    seq: message.seq,
    senderId: message.senderId,
    receiverId: message.receiverId,
    timestamp: message.timestamp,
    ...(message.clientMessageId !== undefined ? { clientMessageId: message.clientMessageId } : {}),
    plaintext,
  };
}
