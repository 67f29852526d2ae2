/**
 * The high-level end-to-end API the client layer calls. It maps the protocol onto the server's
 * wire objects (`PUT /keys`, `GET /keys/{userId}`, `POST /messages`, `message.new`) and keeps
 * keys and sessions in the caller's stores. Operations on one peer's session are serialised.
 */
import type { KeyStore, OneTimePreKeyRecord, SessionStore, SignedPreKeyRecord } from '../store/types.js';
import { hasSeenBaseKey, withSeenBaseKey } from './base-keys.js';
import { fromBase64, isUint32, toBase64 } from './bytes.js';
import { COVER_TYPE, KEY_EXCHANGE_TYPE, type PlaintextType } from './constants.js';
import { decodeEnvelope, type Envelope, type Plaintext } from './envelope.js';
import {
  DecryptionError,
  InvalidBundleError,
  MissingKeyError,
  NoSessionError,
  ReusedBaseKeyError,
  UntrustedIdentityError,
} from './errors.js';
import { generateOneTimePreKey, generateSignedPreKey, randomKeyId } from './keys.js';
import { constantTimeEqual } from './primitives.js';
import { initInitiator, initResponder } from './ratchet.js';
import {
  commitState,
  decryptWithState,
  emptyRecord,
  encryptWithState,
  findStateByBaseKey,
  recordFromJSON,
  recordToJSON,
  type SessionRecord,
  type SessionState,
} from './session.js';
import { x3dhInitiate, x3dhRespond, type PreKeyBundle } from './x3dh.js';

export interface CryptoStores {
  keys: KeyStore;
  sessions: SessionStore;
}

/** Body of `PUT /keys`. */
export interface UploadBundle {
  identityKey: string;
  signedPreKey: { keyId: number; publicKey: string; signature: string };
  oneTimePreKeys: { keyId: number; publicKey: string }[];
}

/** Response of `GET /keys/{userId}` (base64 fields). */
export interface WirePreKeyBundle {
  userId: string;
  identityKey: string;
  signedPreKey: { keyId: number; publicKey: string; signature: string };
  oneTimePreKey?: { keyId: number; publicKey: string } | null;
}

/** The encrypted fields of a `POST /messages` body (add `chatId`/`receiverId`, `clientMessageId`). */
export interface EncryptedMessage {
  encryptedContent: string;
  iv: string;
  mac: string;
  /** `key_exchange` while the message carries the X3DH pre-key header, else the cover type `text`. */
  type: typeof KEY_EXCHANGE_TYPE | typeof COVER_TYPE;
}

/** The fields of a server message object (`message.new`, `GET /messages`) decryption reads. */
export interface IncomingMessage {
  senderId: string;
  receiverId: string;
  chatId: string;
  encryptedContent: string;
  iv: string;
  mac: string;
  /** Ignored: the envelope says whether a pre-key header is present, the payload gives the type. */
  type?: string;
}

export interface DecryptedMessage {
  /** The real type, from inside the ciphertext. */
  type: PlaintextType;
  body: Uint8Array | string;
  /** The sender's Ed25519 identity key (base64) that this session is bound to. */
  peerIdentityKey: string;
  /** True when this message created a new session (a `key_exchange` from the peer). */
  sessionCreated: boolean;
  /** True when that new session's identity key differs from the previous session's: warn the user. */
  identityChanged: boolean;
  /** The sender's per-session message counter (authenticated). */
  counter: number;
}

export interface DecryptOptions {
  /**
   * Called when a pre-key message would create a new session, after the message authenticated
   * and before anything is stored or consumed. Return false to refuse it (UntrustedIdentityError).
   * Typical check: the key equals the sender's `publicKey` on the server, or a pinned key.
   */
  trustIdentity?: (peerUserId: string, identityKey: string) => boolean | Promise<boolean>;
}

export interface Routing {
  senderId: string;
  receiverId: string;
  chatId: string;
}

export type { Plaintext, PlaintextType };

// ---- serialisation ----

type LockTable = WeakMap<object, Map<string, Promise<void>>>;

/** Runs `fn` after every earlier `fn` holding the lock `name` on `store` (per store object). */
async function withLock<T>(table: LockTable, store: object, name: string, fn: () => Promise<T>): Promise<T> {
  let byName = table.get(store);
  if (!byName) table.set(store, (byName = new Map<string, Promise<void>>()));
  const previous = byName.get(name) ?? Promise.resolve();
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  const mine = previous.then(() => done);
  byName.set(name, mine);
  await previous;
  try {
    return await fn();
  } finally {
    release();
    if (byName.get(name) === mine) byName.delete(name);
  }
}

const peerLocks: LockTable = new WeakMap();
const keyStoreLocks: LockTable = new WeakMap();

/** One peer's session record is loaded, changed and stored by one operation at a time. */
function withPeerLock<T>(sessions: SessionStore, peer: string, fn: () => Promise<T>): Promise<T> {
  return withLock(peerLocks, sessions, peer, fn);
}

/**
 * Signed pre-key records are rewritten by rotation and by every new session (the base keys they
 * accepted): one at a time, so no base key is lost between two sessions set up at once, and a
 * key rotated out is never written back. Taken inside a peer lock, never the other way round.
 */
function withSignedPreKeyLock<T>(keys: KeyStore, fn: () => Promise<T>): Promise<T> {
  return withLock(keyStoreLocks, keys, 'signed-pre-keys', fn);
}

async function loadRecord(sessions: SessionStore, peer: string): Promise<SessionRecord> {
  const json = await sessions.loadSession(peer);
  return json ? recordFromJSON(json) : emptyRecord();
}

/**
 * Commits `next` (see commitState) and stores the record. States pushed out of the archive can no
 * longer catch a replay of their first message, so their base keys are made sure to be remembered.
 */
async function commitAndStore(stores: CryptoStores, peer: string, record: SessionRecord, replaced: SessionState | null, next: SessionState) {
  const evicted = commitState(record, replaced, next);
  await stores.sessions.storeSession(peer, recordToJSON(record));
  await rememberEvicted(stores.keys, evicted);
}

/**
 * Remembers that a first message with `baseKey` (base64) was accepted under signed pre-key
 * `keyId`. Called once the session is stored: a crash in between leaves a session that still
 * refuses the replay while it is kept, rather than a remembered base key whose honest message
 * never opened. A key rotated out meanwhile is not written back.
 */
async function rememberBaseKey(keys: KeyStore, keyId: number, baseKey: string): Promise<void> {
  await withSignedPreKeyLock(keys, async () => {
    const spk = await keys.getSignedPreKey(keyId);
    const next = spk && withSeenBaseKey(spk, baseKey);
    if (next) await keys.saveSignedPreKey(next);
  });
}

/**
 * States that left a peer's archive. Sessions we responded to since base keys are remembered are
 * already in their signed pre-key's list; older ones (stored before it, and a state does not keep
 * its signed pre-key id) are remembered under every signed pre-key we hold, so their first
 * messages stay refused after an upgrade too.
 */
async function rememberEvicted(keys: KeyStore, evicted: SessionState[]): Promise<void> {
  const baseKeys = evicted.filter((s) => s.role === 'responder').map((s) => toBase64(s.baseKey));
  if (baseKeys.length === 0) return;
  await withSignedPreKeyLock(keys, async () => {
    const all = await keys.listSignedPreKeys();
    const missing = baseKeys.filter((b) => !all.some((spk) => hasSeenBaseKey(spk, b)));
    for (const spk of all) {
      const next = missing.reduce<SignedPreKeyRecord>((rec, b) => withSeenBaseKey(rec, b) ?? rec, spk);
      if (next !== spk) await keys.saveSignedPreKey(next);
    }
  });
}

async function requireIdentity(keys: KeyStore) {
  const identity = await keys.getIdentityKeyPair();
  if (!identity) throw new MissingKeyError('no identity key in the key store');
  return identity;
}

// ---- keys ----

function freshId(taken: Set<number>): number {
  for (;;) {
    const id = randomKeyId();
    if (!taken.has(id)) {
      taken.add(id);
      return id;
    }
  }
}

/**
 * Makes sure the store has a signed pre-key (creating one if none, or if `rotateSignedPreKey`)
 * and adds `count` new one-time pre-keys. Returns the current signed pre-key and the new
 * one-time pre-keys (pass them to `buildUploadBundle` to upload only those).
 */
export async function generatePreKeys(
  store: KeyStore,
  count: number,
  opts: { rotateSignedPreKey?: boolean } = {},
): Promise<{ signedPreKey: SignedPreKeyRecord; oneTimePreKeys: OneTimePreKeyRecord[] }> {
  if (!Number.isInteger(count) || count < 0 || count > 10_000) throw new RangeError('count must be an integer in 0..10000');
  await requireIdentity(store);
  let signedPreKey = await currentSignedPreKey(store);
  if (!signedPreKey || opts.rotateSignedPreKey) signedPreKey = await rotateSignedPreKey(store);
  const taken = new Set((await store.listOneTimePreKeys()).map((k) => k.keyId));
  const oneTimePreKeys: OneTimePreKeyRecord[] = [];
  for (let i = 0; i < count; i++) {
    const rec = generateOneTimePreKey(freshId(taken));
    await store.saveOneTimePreKey(rec);
    oneTimePreKeys.push(rec);
  }
  return { signedPreKey, oneTimePreKeys };
}

async function currentSignedPreKey(store: KeyStore): Promise<SignedPreKeyRecord | undefined> {
  const all = await store.listSignedPreKeys();
  return all.sort((a, b) => b.createdAt - a.createdAt || b.keyId - a.keyId)[0];
}

/**
 * Creates a new signed pre-key and keeps the newest `retain` ones (the older ones' secrets are
 * deleted, and with them the base keys they accepted; a `key_exchange` still in flight that names
 * a deleted one cannot be decrypted).
 */
export async function rotateSignedPreKey(store: KeyStore, opts: { retain?: number } = {}): Promise<SignedPreKeyRecord> {
  const retain = opts.retain ?? 3;
  if (!Number.isInteger(retain) || retain < 1) throw new RangeError('retain must be >= 1');
  const identity = await requireIdentity(store);
  return withSignedPreKeyLock(store, async () => {
    const existing = await store.listSignedPreKeys();
    const taken = new Set(existing.map((k) => k.keyId));
    const latest = existing.reduce((m, k) => Math.max(m, k.createdAt), 0);
    const rec = generateSignedPreKey(identity, freshId(taken), Math.max(Date.now(), latest + 1));
    await store.saveSignedPreKey(rec);
    const sorted = [...existing, rec].sort((a, b) => b.createdAt - a.createdAt);
    for (const old of sorted.slice(retain)) await store.removeSignedPreKey(old.keyId);
    return rec;
  });
}

/**
 * The body of `PUT /keys`: identity key, the newest signed pre-key, and `oneTimePreKeys`
 * (default: every one-time pre-key in the store). Public parts only.
 */
export async function buildUploadBundle(store: KeyStore, oneTimePreKeys?: OneTimePreKeyRecord[]): Promise<UploadBundle> {
  const identity = await requireIdentity(store);
  const spk = await currentSignedPreKey(store);
  if (!spk) throw new MissingKeyError('no signed pre-key in the key store (call generatePreKeys)');
  const opks = oneTimePreKeys ?? (await store.listOneTimePreKeys());
  return {
    identityKey: toBase64(identity.publicKey),
    signedPreKey: { keyId: spk.keyId, publicKey: toBase64(spk.publicKey), signature: toBase64(spk.signature) },
    oneTimePreKeys: opks.map((k) => ({ keyId: k.keyId, publicKey: toBase64(k.publicKey) })),
  };
}

// ---- sessions ----

/** Decodes a `GET /keys/{userId}` response; throws InvalidBundleError if malformed. */
export function decodeBundle(wire: WirePreKeyBundle): PreKeyBundle {
  try {
    const spk = wire.signedPreKey;
    const opk = wire.oneTimePreKey ?? undefined;
    if (typeof wire.userId !== 'string' || !isUint32(spk.keyId) || (opk && !isUint32(opk.keyId))) throw new Error();
    return {
      userId: wire.userId,
      identityKey: fromBase64(wire.identityKey),
      signedPreKey: { keyId: spk.keyId, publicKey: fromBase64(spk.publicKey), signature: fromBase64(spk.signature) },
      oneTimePreKey: opk ? { keyId: opk.keyId, publicKey: fromBase64(opk.publicKey) } : undefined,
    };
  } catch {
    throw new InvalidBundleError('malformed pre-key bundle');
  }
}

/**
 * Starts a session with `peerUserId` from their pre-key bundle (X3DH as initiator; the signed
 * pre-key signature is verified first, InvalidBundleError otherwise). Messages sent until the
 * peer's first reply carry the pre-key header and go out as `type: "key_exchange"`. Replaces an
 * existing session (kept in the archive so messages in flight still decrypt).
 */
export async function initiateSession(
  stores: CryptoStores,
  peerUserId: string,
  wire: WirePreKeyBundle,
): Promise<{ peerIdentityKey: string; identityChanged: boolean }> {
  const bundle = decodeBundle(wire);
  if (bundle.userId !== peerUserId) throw new InvalidBundleError('bundle is for another user');
  const identity = await requireIdentity(stores.keys);
  if (constantTimeEqual(bundle.identityKey, identity.publicKey)) throw new InvalidBundleError('bundle carries our own identity key');
  let x: ReturnType<typeof x3dhInitiate>;
  try {
    x = x3dhInitiate(identity, bundle); // verifies the signature before any DH
  } catch (e) {
    if (e instanceof InvalidBundleError) throw e;
    throw new InvalidBundleError('pre-key bundle holds an unusable key'); // e.g. a low-order pre-key
  }
  for (const d of x.dh) d.fill(0);
  const state: SessionState = {
    role: 'initiator',
    localIdentityKey: Uint8Array.from(identity.publicKey),
    peerIdentityKey: bundle.identityKey,
    baseKey: x.preKeyHeader.baseKey,
    pendingPreKey: x.preKeyHeader,
    counter: 0,
    ratchet: initInitiator(x.sk, bundle.signedPreKey.publicKey),
  };
  x.sk.fill(0);
  return withPeerLock(stores.sessions, peerUserId, async () => {
    const record = await loadRecord(stores.sessions, peerUserId);
    const identityChanged = !!record.active && !constantTimeEqual(record.active.peerIdentityKey, bundle.identityKey);
    await commitAndStore(stores, peerUserId, record, null, state);
    return { peerIdentityKey: toBase64(bundle.identityKey), identityChanged };
  });
}

/** Whether we have a session with `peerUserId` to encrypt with. */
export async function hasSession(stores: CryptoStores, peerUserId: string): Promise<boolean> {
  return (await loadRecord(stores.sessions, peerUserId)).active !== null;
}

/**
 * Encrypts `plaintext` for `routing.receiverId` (the local user is `routing.senderId`). The
 * routing ids are bound into the MAC: use the chat id the message will be posted to. Throws
 * NoSessionError if there is no session yet (fetch the bundle, `initiateSession`, retry).
 */
export async function encryptMessage(stores: CryptoStores, routing: Routing, plaintext: Plaintext): Promise<EncryptedMessage> {
  const peer = routing.receiverId;
  return withPeerLock(stores.sessions, peer, async () => {
    const record = await loadRecord(stores.sessions, peer);
    if (!record.active) throw new NoSessionError(peer);
    const keyExchange = record.active.pendingPreKey !== null;
    const sealed = encryptWithState(record.active, routing, plaintext);
    await stores.sessions.storeSession(peer, recordToJSON(record)); // the chain moved on: persist before sending
    return {
      encryptedContent: toBase64(sealed.envelope),
      iv: toBase64(sealed.iv),
      mac: toBase64(sealed.mac),
      type: keyExchange ? KEY_EXCHANGE_TYPE : COVER_TYPE,
    };
  });
}

/**
 * Decrypts a server message object. A message carrying a pre-key header from an unknown session
 * creates the responder session (X3DH, consuming the one-time pre-key once the message has
 * authenticated, and once `opts.trustIdentity` accepted the sender's identity key), unless its
 * signed pre-key has accepted that base key before: a replayed first message whose session has
 * gone is refused with ReusedBaseKeyError. Every decryption failure throws DecryptionError (or
 * that subclass). Each message decrypts once: message keys are deleted after use, so keep the
 * plaintext (by message id) if it will be shown again.
 */
export async function decryptMessage(stores: CryptoStores, message: IncomingMessage, opts: DecryptOptions = {}): Promise<DecryptedMessage> {
  let envelope: Envelope;
  let iv: Uint8Array;
  let mac: Uint8Array;
  try {
    envelope = decodeEnvelope(fromBase64(message.encryptedContent));
    iv = fromBase64(message.iv);
    mac = fromBase64(message.mac);
  } catch {
    throw new DecryptionError();
  }
  const routing = { senderId: message.senderId, receiverId: message.receiverId, chatId: message.chatId };
  const peer = message.senderId;
  return withPeerLock(stores.sessions, peer, async () => {
    const record = await loadRecord(stores.sessions, peer);
    const result = (state: SessionState, plaintext: Plaintext, sessionCreated: boolean, identityChanged: boolean) => ({
      type: plaintext.type,
      body: plaintext.body,
      peerIdentityKey: toBase64(state.peerIdentityKey),
      sessionCreated,
      identityChanged,
      counter: envelope.counter,
    });

    const pk = envelope.preKey;
    if (pk) {
      const existing = findStateByBaseKey(record, pk.identityKey, pk.baseKey);
      if (existing) {
        // A later message of a session we already created (or a replay of its first message, caught by its counters).
        const { state, plaintext } = decryptWithState(existing, envelope, routing, iv, mac);
        await commitAndStore(stores, peer, record, existing, state);
        return result(state, plaintext, false, false);
      }
      const identity = await stores.keys.getIdentityKeyPair();
      const spk = await stores.keys.getSignedPreKey(pk.signedPreKeyId);
      if (!identity || !spk || constantTimeEqual(pk.identityKey, identity.publicKey)) throw new DecryptionError();
      // Its session is not held (any more), but this signed pre-key accepted the base key before: a replay.
      const baseKey = toBase64(pk.baseKey);
      if (hasSeenBaseKey(spk, baseKey)) throw new ReusedBaseKeyError();
      const opk = pk.oneTimePreKeyId === null ? null : await stores.keys.getOneTimePreKey(pk.oneTimePreKeyId);
      if (opk === undefined) throw new DecryptionError();
      let fresh: SessionState;
      try {
        const x = x3dhRespond(identity, spk, opk, pk);
        fresh = {
          role: 'responder',
          localIdentityKey: Uint8Array.from(identity.publicKey),
          peerIdentityKey: Uint8Array.from(pk.identityKey),
          baseKey: Uint8Array.from(pk.baseKey),
          pendingPreKey: null,
          counter: 0,
          ratchet: initResponder(x.sk, spk),
        };
        x.sk.fill(0);
        for (const d of x.dh) d.fill(0);
      } catch {
        throw new DecryptionError();
      }
      const { state, plaintext } = decryptWithState(fresh, envelope, routing, iv, mac);
      const identityKey = toBase64(state.peerIdentityKey);
      if (opts.trustIdentity && !(await opts.trustIdentity(peer, identityKey))) throw new UntrustedIdentityError(peer, identityKey);
      const identityChanged = !!record.active && !constantTimeEqual(record.active.peerIdentityKey, state.peerIdentityKey);
      await commitAndStore(stores, peer, record, null, state);
      await rememberBaseKey(stores.keys, spk.keyId, baseKey); // with or without a one-time pre-key
      if (opk) await stores.keys.removeOneTimePreKey(opk.keyId); // only now that the message authenticated
      return result(state, plaintext, true, identityChanged);
    }

    for (const candidate of [record.active, ...record.archived]) {
      if (!candidate) continue;
      let out: { state: SessionState; plaintext: Plaintext };
      try {
        out = decryptWithState(candidate, envelope, routing, iv, mac);
      } catch {
        continue;
      }
      await commitAndStore(stores, peer, record, candidate, out.state);
      return result(out.state, out.plaintext, false, false);
    }
    throw new DecryptionError();
  });
}
