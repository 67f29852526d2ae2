/**
 * Session records: one X3DH session = one Double Ratchet state plus what the envelope needs
 * (AD, the pending pre-key header, the message counter). A peer's record holds the active state
 * and a few archived ones, so that both sides initiating at once, or messages still in flight
 * under a replaced session, still decrypt (as Signal's SessionRecord does).
 *
 * Everything here is synchronous and pure over in-memory objects; api.ts does the storage.
 */
import { concat, fromBase64, isUint32, toBase64 } from './bytes.js';
import { KEY_LEN, MAX_ARCHIVED_STATES } from './constants.js';
import { DecryptionError } from './errors.js';
import { openMessage, sealMessage, type Envelope, type Plaintext, type RoutingHeader, type SealedMessage } from './envelope.js';
import {
  ratchetDecryptStep,
  ratchetEncryptStep,
  ratchetFromJSON,
  ratchetToJSON,
  type KeyPairSource,
  type RatchetState,
  type RatchetStateJSON,
} from './ratchet.js';
import { constantTimeEqual } from './primitives.js';
import type { PreKeyHeader } from './x3dh.js';

export type SessionRole = 'initiator' | 'responder';

export interface SessionState {
  role: SessionRole;
  /** Our Ed25519 identity public key. */
  localIdentityKey: Uint8Array;
  /** The peer's Ed25519 identity public key. */
  peerIdentityKey: Uint8Array;
  /** EK_A, the initiator's X3DH ephemeral key: identifies the session. */
  baseKey: Uint8Array;
  /** Initiator only: sent with every message until the first message from the peer arrives. */
  pendingPreKey: PreKeyHeader | null;
  /** Messages sent in this session (the routing header's counter). */
  counter: number;
  ratchet: RatchetState;
}

export interface SessionRecord {
  active: SessionState | null;
  /** Most recent first, at most MAX_ARCHIVED_STATES. */
  archived: SessionState[];
}

/** AD = IK_initiator ‖ IK_responder. */
export function associatedData(s: SessionState): Uint8Array {
  return s.role === 'initiator' ? concat(s.localIdentityKey, s.peerIdentityKey) : concat(s.peerIdentityKey, s.localIdentityKey);
}

export function emptyRecord(): SessionRecord {
  return { active: null, archived: [] };
}

/**
 * Commits `next` as the active state. `replaced` is the state it was computed from (dropped from
 * the archive), or null for a new session; the previous active state, if it is not the one being
 * replaced, goes to the front of the archive. A message that only an archived state could
 * decrypt promotes that state (as libsignal does): this is what makes simultaneous initiation
 * by both peers converge. Returns the states pushed out of the archive (the oldest beyond
 * MAX_ARCHIVED_STATES), so the caller can make sure their first messages stay refused.
 */
export function commitState(record: SessionRecord, replaced: SessionState | null, next: SessionState): SessionState[] {
  const archived = record.archived.filter((s) => s !== replaced);
  if (record.active && record.active !== replaced) archived.unshift(record.active);
  record.active = next;
  record.archived = archived.slice(0, MAX_ARCHIVED_STATES);
  return archived.slice(MAX_ARCHIVED_STATES);
}

/** Encrypts with the active state, advancing it. */
export function encryptWithState(state: SessionState, routing: Omit<RoutingHeader, 'counter'>, plaintext: Plaintext): SealedMessage {
  const { header, mk } = ratchetEncryptStep(state.ratchet);
  const counter = state.counter;
  if (!isUint32(counter + 1)) throw new Error('session counter exhausted');
  state.counter += 1;
  return sealMessage({ mk, ad: associatedData(state), routing: { ...routing, counter }, header, preKey: state.pendingPreKey, plaintext });
}

/**
 * Decrypts with one state, mutating it only on success (it works on a copy). Returns the
 * advanced copy to commit, or throws DecryptionError.
 */
export function decryptWithState(
  state: SessionState,
  envelope: Envelope,
  routing: Omit<RoutingHeader, 'counter'>,
  iv: Uint8Array,
  mac: Uint8Array,
  nextKeyPair?: KeyPairSource,
): { state: SessionState; plaintext: Plaintext } {
  const copy = cloneState(state);
  let mk: Uint8Array;
  try {
    mk = ratchetDecryptStep(copy.ratchet, envelope.header, nextKeyPair);
  } catch {
    throw new DecryptionError();
  }
  let plaintext: Plaintext;
  try {
    plaintext = openMessage({ mk, ad: associatedData(copy), routing, envelope, iv, mac });
  } finally {
    mk.fill(0);
  }
  copy.pendingPreKey = null; // the peer has the session: stop sending the pre-key header
  return { state: copy, plaintext };
}

/** The state (active or archived) created by the pre-key message with this IK_A and EK_A. */
export function findStateByBaseKey(record: SessionRecord, identityKey: Uint8Array, baseKey: Uint8Array): SessionState | undefined {
  return [record.active, ...record.archived].find(
    (s): s is SessionState => !!s && constantTimeEqual(s.baseKey, baseKey) && constantTimeEqual(s.peerIdentityKey, identityKey),
  );
}

// ---- JSON ----

export interface SessionStateJSON {
  role: SessionRole;
  localIdentityKey: string;
  peerIdentityKey: string;
  baseKey: string;
  /** The pre-key header minus IK_A and EK_A (they are localIdentityKey and baseKey). */
  pendingPreKey: { signedPreKeyId: number; oneTimePreKeyId: number | null } | null;
  counter: number;
  ratchet: RatchetStateJSON;
}

/** What a SessionStore keeps per peer: plain JSON (strings, numbers, arrays, objects). */
export interface SessionRecordJSON {
  version: 1;
  active: SessionStateJSON | null;
  archived: SessionStateJSON[];
}

export function stateToJSON(s: SessionState): SessionStateJSON {
  return {
    role: s.role,
    localIdentityKey: toBase64(s.localIdentityKey),
    peerIdentityKey: toBase64(s.peerIdentityKey),
    baseKey: toBase64(s.baseKey),
    pendingPreKey: s.pendingPreKey
      ? { signedPreKeyId: s.pendingPreKey.signedPreKeyId, oneTimePreKeyId: s.pendingPreKey.oneTimePreKeyId }
      : null,
    counter: s.counter,
    ratchet: ratchetToJSON(s.ratchet),
  };
}

function key32(v: unknown): Uint8Array {
  const b = fromBase64(v as string);
  if (b.length !== KEY_LEN) throw new TypeError('bad key length');
  return b;
}

export function stateFromJSON(j: SessionStateJSON): SessionState {
  if (typeof j !== 'object' || j === null || (j.role !== 'initiator' && j.role !== 'responder') || !isUint32(j.counter)) {
    throw new TypeError('bad session state');
  }
  const localIdentityKey = key32(j.localIdentityKey);
  const baseKey = key32(j.baseKey);
  let pendingPreKey: PreKeyHeader | null = null;
  if (j.pendingPreKey !== null) {
    const p = j.pendingPreKey;
    if (typeof p !== 'object' || !isUint32(p.signedPreKeyId) || !(p.oneTimePreKeyId === null || isUint32(p.oneTimePreKeyId))) {
      throw new TypeError('bad pending pre-key');
    }
    pendingPreKey = { identityKey: localIdentityKey, baseKey, signedPreKeyId: p.signedPreKeyId, oneTimePreKeyId: p.oneTimePreKeyId };
  }
  return {
    role: j.role,
    localIdentityKey,
    peerIdentityKey: key32(j.peerIdentityKey),
    baseKey,
    pendingPreKey,
    counter: j.counter,
    ratchet: ratchetFromJSON(j.ratchet),
  };
}

export function cloneState(s: SessionState): SessionState {
  return stateFromJSON(stateToJSON(s));
}

export function recordToJSON(r: SessionRecord): SessionRecordJSON {
  return { version: 1, active: r.active ? stateToJSON(r.active) : null, archived: r.archived.map(stateToJSON) };
}

/** Parses a stored record; throws TypeError if it is not a valid v1 record. */
export function recordFromJSON(j: SessionRecordJSON): SessionRecord {
  if (typeof j !== 'object' || j === null || j.version !== 1 || !Array.isArray(j.archived)) throw new TypeError('bad session record');
  return { active: j.active ? stateFromJSON(j.active) : null, archived: j.archived.map(stateFromJSON) };
}
