/**
 * The signed-in app: chat list, the open conversation, sending, receipts, key-change warnings.
 * One Messenger per login; `dispose()` detaches it from the SDK client and the page.
 */
import type { Chat, Message } from '@safechat/protocol';
import type { ChatItem, IdentityChange, SafeChatClient, SafeChatClientEvents } from '@safechat/sdk';
import { ChatList, type ChatEntry } from './chat-list.js';
import { ConversationView, type Tick, type ViewItem } from './conversation.js';
import { byId } from './dom.js';
import { describeError } from './errors.js';
import type { AccountStorage, Contact } from './idb-stores.js';
import { Receipts } from './receipts.js';
import { SafetyDialog } from './safety-dialog.js';

const PAGE = 50;
const wide = window.matchMedia('(min-width: 720px)');

interface OpenChat {
  peerId: string;
  chatId: string | null;
  /** Incoming messages on screen, for read receipts. */
  incoming: Map<string, Message>;
}

export class Messenger {
  readonly #client: SafeChatClient;
  readonly #storage: AccountStorage;
  readonly #receipts: Receipts;
  readonly #list: ChatList;
  readonly #conv: ConversationView;
  readonly #abort = new AbortController();
  readonly #safety = new SafetyDialog(this.#abort.signal);
  readonly #root = byId('chat');
  readonly #announcer = byId('announcer');
  readonly #offs: (() => void)[] = [];
  #chats: Chat[] = [];
  readonly #contacts = new Map<string, Contact>();
  #open: OpenChat | null = null;
  #openSeq = 0;
  /** Our messages' statuses from `status` events (they can come before the send resolves). */
  readonly #statuses = new Map<string, Tick>();
  /** Messages being sent (or that failed), by local id. */
  readonly #pending = new Map<string, { peerId: string; text: string; timestamp: string; failed: boolean }>();
  #localIds = 0;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshing: Promise<void> = Promise.resolve();
  #disposed = false;

  constructor(client: SafeChatClient, storage: AccountStorage) {
    this.#client = client;
    this.#storage = storage;
    this.#receipts = new Receipts(client, () => this.scheduleRefresh());
    this.#list = new ChatList((peerId) => void this.open(peerId, true), this.#abort.signal);
    this.#conv = new ConversationView(
      {
        send: (text) => this.#send(text),
        retry: (localId) => void this.#deliver(localId),
        loadEarlier: () => void this.#loadEarlier(),
        back: () => this.#back(),
        safety: () => void this.#showSafety(),
        dismissWarning: () => void this.#clearWarning(),
      },
      this.#abort.signal,
    );
    this.#on('message', (e) => this.#onMessage(e));
    this.#on('undecryptable', (e) => this.#onUndecryptable(e.message));
    this.#on('status', (e) => this.#onStatus(e.messageId, e.status));
    this.#on('identityChanged', (e) => this.#onIdentityChanged(e));
    this.#on('resync', () => this.#reload());
    const markRead = () => this.#markOpenRead();
    window.addEventListener('focus', markRead, { signal: this.#abort.signal });
    document.addEventListener('visibilitychange', markRead, { signal: this.#abort.signal });
    this.#root.hidden = false;
  }

  /** A line above the chat list (e.g. that this browser made new keys). */
  notice(text: string | null): void {
    const el = byId('chat-notice');
    el.textContent = text ?? '';
    el.hidden = text === null;
  }

  dispose(): void {
    this.notice(null);
    this.#disposed = true;
    this.#abort.abort();
    for (const off of this.#offs.splice(0)) off();
    clearTimeout(this.#refreshTimer);
    this.#safety.close();
    this.#conv.close();
    this.#list.render([]);
    this.#root.hidden = true;
    this.#root.classList.remove('chat--open');
    document.title = 'Safe Chat';
  }

  /** After a reconnect or a resync: the chat list, and the open conversation from the server again. */
  async #reload(): Promise<void> {
    await this.refreshChats();
    if (this.#open) await this.open(this.#open.peerId, false);
  }

  // ---- chat list ----

  /** At most one refresh every 150 ms, however many events ask for one (a busy chat would starve a debounce). */
  scheduleRefresh(): void {
    if (this.#refreshTimer !== undefined) return;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      void this.refreshChats();
    }, 150);
  }

  /** The chat list from the server, rendered; refreshes run one after another, so an older one never wins. */
  refreshChats(): Promise<void> {
    this.#refreshing = this.#refreshing.then(async () => {
      try {
        // The most recent page: a list others can grow (anyone can start a chat) must not grow the screen's work.
        const { chats } = await this.#client.api.getChats({ limit: 100 });
        if (this.#disposed) return;
        this.#chats = chats;
      } catch {
        return; // offline: keep what is on screen
      }
      await this.#renderChats();
    }).catch((err: unknown) => console.warn('[safechat] chat list', err));
    return this.#refreshing;
  }

  async #renderChats(): Promise<void> {
    const me = this.#client.user;
    if (!me) return;
    const entries: ChatEntry[] = [];
    for (const chat of this.#chats) {
      if (chat.participantIds.length !== 2) continue; // the web client is one-to-one only
      const peerId = chat.participantIds.find((id) => id !== me.id);
      if (!peerId) continue;
      const contact = await this.#contact(peerId);
      const [last] = await this.#storage.stores.messages.list(chat.id, { limit: 1 });
      const text = last && typeof last.plaintext.body === 'string' ? last.plaintext.body : null;
      entries.push({
        chatId: chat.id,
        peerId,
        peerName: contact.username,
        unread: chat.unreadCount,
        lastActivityAt: chat.lastActivityAt,
        preview: last && text !== null ? { text, mine: last.senderId === me.id } : null,
        hasMessages: chat.lastMessageId !== null,
        warning: contact.identityWarning !== undefined,
      });
    }
    if (this.#disposed) return;
    this.#list.render(entries);
    this.#list.select(this.#open?.peerId ?? null);
    const unread = entries.reduce((n, e) => n + e.unread, 0);
    document.title = unread > 0 ? `(${unread}) Safe Chat` : 'Safe Chat';
  }

  /** Finds a user by exact username and opens the chat with them. */
  async startChat(username: string): Promise<void> {
    const me = this.#client.user;
    if (me && username.toLowerCase() === me.username.toLowerCase()) throw new Error('That is you. Enter the username of the person you want to write to.');
    const user = await this.#client.api.findUser(username);
    const known = await this.#contact(user.id);
    if (known.username !== user.username) await this.#saveContact({ ...known, username: user.username });
    await this.#client.chatWith(user.id);
    await this.refreshChats();
    await this.open(user.id, true);
  }

  // ---- the conversation ----

  async open(peerId: string, focus: boolean): Promise<void> {
    const seq = ++this.#openSeq;
    const current = () => seq === this.#openSeq && !this.#disposed;
    const contact = await this.#contact(peerId);
    if (!current()) return;
    const chatId = this.#chats.find((c) => c.participantIds.includes(peerId) && c.participantIds.length === 2)?.id ?? null;
    this.#open = { peerId, chatId, incoming: new Map() };
    this.#conv.open(contact.username);
    this.#conv.warning(warningOf(contact));
    this.#list.select(peerId);
    this.#root.classList.add('chat--open');
    if (focus) {
      if (wide.matches) this.#conv.focusComposer();
      else this.#conv.focusTitle();
    }
    this.#conv.busy(true);
    try {
      const { items, hasMore } = await this.#client.history(peerId, { limit: PAGE });
      if (!current()) return;
      for (const item of items) this.#show(item);
      this.#conv.hasMore(hasMore);
    } catch (err) {
      if (!current()) return;
      await this.#showSaved(err);
    } finally {
      if (current()) {
        for (const [localId, p] of this.#pending) if (p.peerId === peerId) this.#conv.upsert(pendingItem(localId, p));
        this.#conv.busy(false);
        this.#conv.scrollToEnd();
      }
    }
    this.#markOpenRead();
    this.scheduleRefresh();
  }

  /** Offline: what this browser keeps of the conversation (without ticks: those live on the server). */
  async #showSaved(err: unknown): Promise<void> {
    const me = this.#client.user;
    const chatId = this.#open?.chatId;
    if (chatId && me) {
      for (const m of await this.#storage.stores.messages.list(chatId, { limit: PAGE })) {
        const text = typeof m.plaintext.body === 'string' ? m.plaintext.body : null;
        this.#conv.upsert({ id: m.id, seq: m.seq, mine: m.senderId === me.id, text, note: 'Not a text message.', timestamp: m.timestamp });
      }
    }
    this.#conv.notice(`${describeError(err)} Showing the messages saved in this browser.`);
  }

  async #loadEarlier(): Promise<void> {
    const open = this.#open;
    const before = this.#conv.oldestId();
    if (!open || !before) return;
    try {
      const { items, hasMore } = await this.#client.history(open.peerId, { limit: PAGE, before });
      if (open !== this.#open) return;
      this.#conv.prepend(items.map((i) => this.#track(i)));
      this.#conv.hasMore(hasMore);
      this.#markOpenRead();
    } catch (err) {
      this.#conv.notice(describeError(err));
    }
  }

  #back(): void {
    const peerId = this.#open?.peerId;
    this.#open = null;
    this.#openSeq++;
    this.#conv.close();
    this.#list.select(null);
    this.#root.classList.remove('chat--open');
    if (peerId) this.#list.focus(peerId);
  }

  /** Shows a history item (and remembers incoming ones for receipts). */
  #show(item: ChatItem): void {
    this.#conv.upsert(this.#track(item));
  }

  #track(item: ChatItem): ViewItem {
    const me = this.#client.user;
    const m = item.message;
    const mine = m.senderId === me?.id;
    if (!mine && this.#open && m.senderId === this.#open.peerId) {
      this.#open.chatId ??= m.chatId;
      if (item.plaintext) {
        this.#open.incoming.set(m.id, m);
        void this.#receipts.advance(m, 'delivered');
      }
    }
    return toView(item, mine, mine ? furthest(m.status, this.#statuses.get(m.id)) : undefined);
  }

  /** Read receipts for what is on screen, when the window is focused and the conversation visible. */
  #markOpenRead(): void {
    const open = this.#open;
    if (!open || document.visibilityState !== 'visible' || !document.hasFocus()) return;
    for (const m of open.incoming.values()) if (this.#receipts.unread(m)) void this.#receipts.advance(m, 'read');
  }

  // ---- sending ----

  #send(text: string): void {
    const open = this.#open;
    if (!open) return;
    const localId = `local-${++this.#localIds}`;
    const p = { peerId: open.peerId, text, timestamp: new Date().toISOString(), failed: false };
    this.#pending.set(localId, p);
    this.#conv.upsert(pendingItem(localId, p));
    void this.#deliver(localId);
  }

  async #deliver(localId: string): Promise<void> {
    const p = this.#pending.get(localId);
    if (!p) return;
    p.failed = false;
    if (this.#open?.peerId === p.peerId) this.#conv.setStatus(localId, 'sending');
    try {
      const { message } = await this.#client.sendText(p.peerId, p.text);
      this.#pending.delete(localId);
      if (this.#open?.peerId === p.peerId) {
        this.#open.chatId ??= message.chatId;
        this.#conv.rename(localId, {
          id: message.id,
          seq: message.seq,
          mine: true,
          text: p.text,
          timestamp: message.timestamp,
          status: furthest(message.status, this.#statuses.get(message.id)),
        });
        this.#conv.notice(null);
      }
      this.scheduleRefresh();
    } catch (err) {
      p.failed = true;
      if (this.#open?.peerId === p.peerId) {
        this.#conv.setStatus(localId, 'failed');
        this.#conv.notice(`Not sent: ${describeError(err, 'send')}`);
      }
    }
  }

  // ---- events from the SDK ----

  async #onMessage({ message, plaintext }: SafeChatClientEvents['message']): Promise<void> {
    const contact = await this.#contact(message.senderId);
    if (this.#open?.peerId === message.senderId) {
      this.#show({ message, plaintext });
      this.#markOpenRead();
    } else {
      void this.#receipts.advance(message, 'delivered');
      this.#announce(`New message from ${contact.username}`);
    }
    this.scheduleRefresh();
  }

  #onUndecryptable(message: Message): void {
    if (this.#open?.peerId === message.senderId) this.#show({ message, plaintext: null, error: 'undecryptable' });
    this.scheduleRefresh();
  }

  #onStatus(messageId: string, status: 'sent' | 'delivered' | 'read'): void {
    const best = furthest(status, this.#statuses.get(messageId)) ?? status;
    this.#statuses.set(messageId, best);
    this.#conv.setStatus(messageId, best);
  }

  async #onIdentityChanged(e: IdentityChange): Promise<void> {
    const contact = await this.#contact(e.userId);
    const updated: Contact = {
      ...contact,
      identityWarning: {
        identityKey: e.identityKey,
        ...(e.previousIdentityKey !== undefined ? { previousIdentityKey: e.previousIdentityKey } : {}),
        safetyNumber: e.safetyNumber,
        at: new Date().toISOString(),
      },
    };
    await this.#saveContact(updated);
    if (this.#open?.peerId === e.userId) this.#conv.warning(warningOf(updated));
    else this.#announce(`${contact.username}’s safety number changed.`);
    this.scheduleRefresh();
  }

  // ---- safety numbers ----

  async #showSafety(): Promise<void> {
    const open = this.#open;
    if (!open) return;
    try {
      const [contact, safetyNumber] = await Promise.all([this.#contact(open.peerId), this.#client.safetyNumber(open.peerId)]);
      this.#safety.open({ peerName: contact.username, safetyNumber, changed: contact.identityWarning !== undefined }, () => void this.#clearWarning());
    } catch (err) {
      this.#conv.notice(describeError(err));
    }
  }

  async #clearWarning(): Promise<void> {
    const open = this.#open;
    if (!open) return;
    const { identityWarning: _done, ...rest } = await this.#contact(open.peerId);
    await this.#saveContact(rest);
    this.#conv.warning(null);
    this.#conv.focusComposer();
    this.scheduleRefresh();
  }

  // ---- helpers ----

  async #contact(userId: string): Promise<Contact> {
    const cached = this.#contacts.get(userId);
    if (cached) return cached;
    let contact = await this.#storage.contacts.get(userId);
    if (!contact) {
      try {
        const user = await this.#client.api.getUser(userId);
        contact = { userId, username: user.username };
        await this.#storage.contacts.put(contact);
      } catch {
        return { userId, username: 'Unknown user' };
      }
    }
    this.#contacts.set(userId, contact);
    return contact;
  }

  async #saveContact(contact: Contact): Promise<void> {
    this.#contacts.set(contact.userId, contact);
    await this.#storage.contacts.put(contact);
  }

  #announce(text: string): void {
    this.#announcer.textContent = '';
    // A fresh text node after a tick, so the same words twice are announced twice.
    setTimeout(() => (this.#announcer.textContent = text), 50);
  }

  #on<K extends keyof SafeChatClientEvents>(type: K, handler: (p: SafeChatClientEvents[K]) => void | Promise<void>): void {
    this.#offs.push(
      this.#client.on(type, async (p) => {
        if (!this.#disposed) await handler(p);
      }),
    );
  }
}

const RANK: Record<Tick, number> = { failed: -1, sending: 0, sent: 1, delivered: 2, read: 3 };

function furthest(a: Tick | undefined, b: Tick | undefined): Tick | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return RANK[b] > RANK[a] ? b : a;
}

function pendingItem(localId: string, p: { text: string; timestamp: string; failed: boolean }): ViewItem {
  return { id: localId, seq: Infinity, mine: true, text: p.text, timestamp: p.timestamp, status: p.failed ? 'failed' : 'sending' };
}

function toView(item: ChatItem, mine: boolean, status: Tick | undefined): ViewItem {
  const m = item.message;
  const base = { id: m.id, seq: m.seq, mine, timestamp: m.timestamp, ...(status ? { status } : {}) };
  if (item.plaintext) {
    const { type, body } = item.plaintext;
    if (type === 'text' && typeof body === 'string') return { ...base, text: body };
    return { ...base, text: null, note: `A ${type} message: this client shows text only.` };
  }
  const note =
    item.error === 'own'
      ? 'You sent this from another browser, or before this browser’s copy was erased: it cannot be shown here.'
      : 'This message cannot be decrypted here: it was encrypted for keys this browser does not have, or it was damaged.';
  return { ...base, text: null, note };
}

function warningOf(contact: Contact): { title: string; text: string } | null {
  if (!contact.identityWarning) return null;
  return {
    title: `${contact.username}’s safety number has changed`,
    text:
      `${contact.username} may have reinstalled or logged in on another browser — or someone may be trying to intercept your messages. ` +
      'Compare the new safety number with them (in person or on a call) before sharing anything sensitive.',
  };
}
