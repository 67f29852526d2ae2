/** In-memory stores, for tests and for clients that keep nothing across restarts. */
import type { SessionRecordJSON } from '../crypto/session.js';
import type { IdentityKeyPair, KeyStore, OneTimePreKeyRecord, SessionStore, SignedPreKeyRecord } from './types.js';

// @NOTE copies in and out, so a caller mutating a returned record cannot corrupt the store.
const copy = <T>(v: T): T => structuredClone(v);

export class MemoryKeyStore implements KeyStore {
  #identity: IdentityKeyPair | undefined;
  readonly #signed = new Map<number, SignedPreKeyRecord>();
  readonly #oneTime = new Map<number, OneTimePreKeyRecord>();

  getIdentityKeyPair(): Promise<IdentityKeyPair | undefined> {
    return Promise.resolve(this.#identity && copy(this.#identity));
  }
  saveIdentityKeyPair(pair: IdentityKeyPair): Promise<void> {
    this.#identity = copy(pair);
    return Promise.resolve();
  }

  getSignedPreKey(keyId: number): Promise<SignedPreKeyRecord | undefined> {
    const r = this.#signed.get(keyId);
    return Promise.resolve(r && copy(r));
  }
  listSignedPreKeys(): Promise<SignedPreKeyRecord[]> {
    return Promise.resolve([...this.#signed.values()].map(copy));
  }
  saveSignedPreKey(record: SignedPreKeyRecord): Promise<void> {
    this.#signed.set(record.keyId, copy(record));
    return Promise.resolve();
  }
  removeSignedPreKey(keyId: number): Promise<void> {
    this.#signed.delete(keyId);
    return Promise.resolve();
  }

  getOneTimePreKey(keyId: number): Promise<OneTimePreKeyRecord | undefined> {
    const r = this.#oneTime.get(keyId);
    return Promise.resolve(r && copy(r));
  }
  listOneTimePreKeys(): Promise<OneTimePreKeyRecord[]> {
    return Promise.resolve([...this.#oneTime.values()].map(copy));
  }
  saveOneTimePreKey(record: OneTimePreKeyRecord): Promise<void> {
    this.#oneTime.set(record.keyId, copy(record));
    return Promise.resolve();
  }
  removeOneTimePreKey(keyId: number): Promise<void> {
    this.#oneTime.delete(keyId);
    return Promise.resolve();
  }
}

/**
 * Keeps each record as a JSON string, so everything that goes through it is proven to survive
 * `JSON.stringify`/`JSON.parse` (what a browser store would do).
 */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, string>();

  loadSession(peerUserId: string): Promise<SessionRecordJSON | undefined> {
    const s = this.#sessions.get(peerUserId);
    return Promise.resolve(s === undefined ? undefined : (JSON.parse(s) as SessionRecordJSON));
  }
  storeSession(peerUserId: string, record: SessionRecordJSON): Promise<void> {
    this.#sessions.set(peerUserId, JSON.stringify(record));
    return Promise.resolve();
  }
  deleteSession(peerUserId: string): Promise<void> {
    this.#sessions.delete(peerUserId);
    return Promise.resolve();
  }
}
