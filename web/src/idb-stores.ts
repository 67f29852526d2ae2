/**
 * The SDK's five stores (KeyStore, SessionStore, TokenStore, CursorStore, MessageStore) on
 * IndexedDB, plus the app's own contact records. One database per account on this browser
 * (`safechat.v1.<username>`), so two people can use two windows of one browser, and a reload
 * keeps the account, its keys, its sessions and its history. Nothing here ever leaves the browser.
 */
import type {
  ClientStores,
  CursorStore,
  IdentityKeyPair,
  KeyStore,
  MessageStore,
  OneTimePreKeyRecord,
  SessionRecordJSON,
  SessionStore,
  SignedPreKeyRecord,
  StoredMessage,
  StoredTokens,
  TokenStore,
} from '@safechat/sdk';
import { collect, deleteDatabase, openDatabase, run } from './idb.js';

const VERSION = 1;
const KV = 'kv';
const SIGNED = 'signedPreKeys';
const ONE_TIME = 'oneTimePreKeys';
const SESSIONS = 'sessions';
const MESSAGES = 'messages';
const CONTACTS = 'contacts';
const BY_CHAT_SEQ = 'byChatSeq';

/** The database name of an account (usernames are unique case-insensitively). */
export function databaseName(username: string): string {
  return `safechat.v1.${username.toLowerCase()}`;
}

function upgrade(db: IDBDatabase, oldVersion: number): void {
  if (oldVersion < 1) {
    db.createObjectStore(KV); // 'identity', 'tokens', 'cursor'
    db.createObjectStore(SIGNED, { keyPath: 'keyId' });
    db.createObjectStore(ONE_TIME, { keyPath: 'keyId' });
    db.createObjectStore(SESSIONS); // key: the peer's user id
    db.createObjectStore(MESSAGES, { keyPath: 'id' }).createIndex(BY_CHAT_SEQ, ['chatId', 'seq'], { unique: false });
    db.createObjectStore(CONTACTS, { keyPath: 'userId' });
  }
}

/** What the app remembers about a contact (not part of the SDK). */
export interface Contact {
  userId: string;
  username: string;
  /** Set when the contact's identity key changed and the user has not acknowledged it yet. */
  identityWarning?: { identityKey: string; previousIdentityKey?: string; safetyNumber: string; at: string };
}

export class IdbKeyStore implements KeyStore {
  constructor(private readonly db: IDBDatabase) {}

  async getIdentityKeyPair(): Promise<IdentityKeyPair | undefined> {
    return (await run(this.db, KV, 'readonly', (s) => s.get('identity') as IDBRequest<IdentityKeyPair | undefined>)) ?? undefined;
  }
  async saveIdentityKeyPair(pair: IdentityKeyPair): Promise<void> {
    await run(this.db, KV, 'readwrite', (s) => s.put({ publicKey: pair.publicKey, secretKey: pair.secretKey }, 'identity'));
  }
  async getSignedPreKey(keyId: number): Promise<SignedPreKeyRecord | undefined> {
    return (await run(this.db, SIGNED, 'readonly', (s) => s.get(keyId) as IDBRequest<SignedPreKeyRecord | undefined>)) ?? undefined;
  }
  listSignedPreKeys(): Promise<SignedPreKeyRecord[]> {
    return run(this.db, SIGNED, 'readonly', (s) => s.getAll() as IDBRequest<SignedPreKeyRecord[]>);
  }
  async saveSignedPreKey(record: SignedPreKeyRecord): Promise<void> {
    await run(this.db, SIGNED, 'readwrite', (s) => s.put(record));
  }
  async removeSignedPreKey(keyId: number): Promise<void> {
    await run(this.db, SIGNED, 'readwrite', (s) => s.delete(keyId));
  }
  async getOneTimePreKey(keyId: number): Promise<OneTimePreKeyRecord | undefined> {
    return (await run(this.db, ONE_TIME, 'readonly', (s) => s.get(keyId) as IDBRequest<OneTimePreKeyRecord | undefined>)) ?? undefined;
  }
  listOneTimePreKeys(): Promise<OneTimePreKeyRecord[]> {
    return run(this.db, ONE_TIME, 'readonly', (s) => s.getAll() as IDBRequest<OneTimePreKeyRecord[]>);
  }
  async saveOneTimePreKey(record: OneTimePreKeyRecord): Promise<void> {
    await run(this.db, ONE_TIME, 'readwrite', (s) => s.put(record));
  }
  async removeOneTimePreKey(keyId: number): Promise<void> {
    await run(this.db, ONE_TIME, 'readwrite', (s) => s.delete(keyId));
  }
}

export class IdbSessionStore implements SessionStore {
  constructor(private readonly db: IDBDatabase) {}

  async loadSession(peerUserId: string): Promise<SessionRecordJSON | undefined> {
    return (await run(this.db, SESSIONS, 'readonly', (s) => s.get(peerUserId) as IDBRequest<SessionRecordJSON | undefined>)) ?? undefined;
  }
  async storeSession(peerUserId: string, record: SessionRecordJSON): Promise<void> {
    await run(this.db, SESSIONS, 'readwrite', (s) => s.put(record, peerUserId));
  }
  async deleteSession(peerUserId: string): Promise<void> {
    await run(this.db, SESSIONS, 'readwrite', (s) => s.delete(peerUserId));
  }
}

export class IdbTokenStore implements TokenStore {
  constructor(private readonly db: IDBDatabase) {}

  async load(): Promise<StoredTokens | undefined> {
    return (await run(this.db, KV, 'readonly', (s) => s.get('tokens') as IDBRequest<StoredTokens | undefined>)) ?? undefined;
  }
  async save(tokens: StoredTokens): Promise<void> {
    await run(this.db, KV, 'readwrite', (s) => s.put({ ...tokens }, 'tokens'));
  }
  async clear(): Promise<void> {
    await run(this.db, KV, 'readwrite', (s) => s.delete('tokens'));
  }
}

export class IdbCursorStore implements CursorStore {
  constructor(private readonly db: IDBDatabase) {}

  async load(): Promise<string | undefined> {
    return (await run(this.db, KV, 'readonly', (s) => s.get('cursor') as IDBRequest<string | undefined>)) ?? undefined;
  }
  async save(cursor: string): Promise<void> {
    await run(this.db, KV, 'readwrite', (s) => s.put(cursor, 'cursor'));
  }
}

export class IdbMessageStore implements MessageStore {
  constructor(private readonly db: IDBDatabase) {}

  async get(messageId: string): Promise<StoredMessage | undefined> {
    return (await run(this.db, MESSAGES, 'readonly', (s) => s.get(messageId) as IDBRequest<StoredMessage | undefined>)) ?? undefined;
  }
  async put(message: StoredMessage): Promise<void> {
    await run(this.db, MESSAGES, 'readwrite', (s) => s.put(message));
  }
  async list(chatId: string, opts: { limit?: number; beforeSeq?: number } = {}): Promise<StoredMessage[]> {
    const upper = opts.beforeSeq ?? Infinity;
    const range = IDBKeyRange.bound([chatId, -Infinity], [chatId, upper], false, opts.beforeSeq !== undefined);
    const newestFirst = await collect<StoredMessage>(this.db, MESSAGES, (s) => s.index(BY_CHAT_SEQ), range, 'prev', opts.limit ?? 50);
    return newestFirst.reverse();
  }
}

export class IdbContactStore {
  constructor(private readonly db: IDBDatabase) {}

  async get(userId: string): Promise<Contact | undefined> {
    return (await run(this.db, CONTACTS, 'readonly', (s) => s.get(userId) as IDBRequest<Contact | undefined>)) ?? undefined;
  }
  list(): Promise<Contact[]> {
    return run(this.db, CONTACTS, 'readonly', (s) => s.getAll() as IDBRequest<Contact[]>);
  }
  async put(contact: Contact): Promise<void> {
    await run(this.db, CONTACTS, 'readwrite', (s) => s.put(contact));
  }
}

/** One account's database and every store on it. */
export interface AccountStorage {
  name: string;
  db: IDBDatabase;
  stores: ClientStores;
  contacts: IdbContactStore;
  /** Set to delete the database when it is closed after a failed start (nothing of an account that never was). */
  wipeOnClose: boolean;
  /** Closes the connection (needed before the database can be deleted). */
  close(): void;
}

export async function openAccountStorage(username: string): Promise<AccountStorage> {
  const name = databaseName(username);
  const db = await openDatabase(name, VERSION, upgrade);
  return {
    name,
    db,
    stores: {
      keys: new IdbKeyStore(db),
      sessions: new IdbSessionStore(db),
      tokens: new IdbTokenStore(db),
      cursor: new IdbCursorStore(db),
      messages: new IdbMessageStore(db),
    },
    contacts: new IdbContactStore(db),
    wipeOnClose: false,
    close: () => db.close(),
  };
}

/** Erases everything this browser keeps for an account: keys, sessions, tokens, history. */
export function eraseAccountStorage(username: string): Promise<void> {
  return deleteDatabase(databaseName(username));
}
