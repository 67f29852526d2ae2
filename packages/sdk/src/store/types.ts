/**
 * Pluggable storage for the SDK's keys and sessions. All methods are async so implementations
 * can sit on IndexedDB, SQLite, the Android Keystore, a file, …. Records hold secret keys:
 * persist them where the platform keeps secrets (and never send them anywhere).
 */
import type { SessionRecordJSON } from '../crypto/session.js';

/** The long-term Ed25519 identity key pair; `publicKey` is the user's `publicKey` on the server. */
export interface IdentityKeyPair {
  publicKey: Uint8Array;
  /** 32-byte RFC 8032 seed. */
  secretKey: Uint8Array;
}

/** A signed pre-key: X25519 key pair, id, and the identity key's signature over `publicKey`. */
export interface SignedPreKeyRecord {
  keyId: number;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  signature: Uint8Array;
  /** Milliseconds since the epoch; the newest one is the one uploaded. */
  createdAt: number;
  /**
   * Base64 base keys (EK_A) of the first messages already accepted under this signed pre-key,
   * oldest first, at most MAX_SEEN_BASE_KEYS: a first message whose base key is here is refused
   * as a replay (ReusedBaseKeyError). Absent in records stored before it existed (= none seen).
   * Dropped with the record when the key is rotated out. A KeyStore must keep it like the rest.
   */
  seenBaseKeys?: string[];
}

/** A one-time pre-key: X25519 key pair and id. Deleted once a session has used it. */
export interface OneTimePreKeyRecord {
  keyId: number;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export interface KeyStore {
  getIdentityKeyPair(): Promise<IdentityKeyPair | undefined>;
  saveIdentityKeyPair(pair: IdentityKeyPair): Promise<void>;

  getSignedPreKey(keyId: number): Promise<SignedPreKeyRecord | undefined>;
  listSignedPreKeys(): Promise<SignedPreKeyRecord[]>;
  /** Adds or replaces (same `keyId`) the whole record: it is saved again each time `seenBaseKeys` grows. */
  saveSignedPreKey(record: SignedPreKeyRecord): Promise<void>;
  removeSignedPreKey(keyId: number): Promise<void>;

  getOneTimePreKey(keyId: number): Promise<OneTimePreKeyRecord | undefined>;
  listOneTimePreKeys(): Promise<OneTimePreKeyRecord[]>;
  saveOneTimePreKey(record: OneTimePreKeyRecord): Promise<void>;
  /** Consumes a one-time pre-key (after the session it created has been stored). */
  removeOneTimePreKey(keyId: number): Promise<void>;
}

/**
 * Ratchet state per peer user id. A record is plain JSON (only strings, numbers, null, arrays,
 * objects), so it can go to IndexedDB, localStorage or a file as it is. Treat it as opaque and
 * secret: it holds chain keys and skipped message keys.
 */
export interface SessionStore {
  loadSession(peerUserId: string): Promise<SessionRecordJSON | undefined>;
  storeSession(peerUserId: string, record: SessionRecordJSON): Promise<void>;
  deleteSession(peerUserId: string): Promise<void>;
}

export type { SessionRecordJSON };
