/**
 * The Double Ratchet (Signal specification, revision 1, §3 with the recommended KDFs of §5.2),
 * without header encryption. Functions here mutate the state they are given; callers run them
 * on a copy and keep the copy only once the message's MAC has verified (session.ts).
 */
import { fromBase64, isUint32, toBase64, UINT32_MAX } from './bytes.js';
import {
  CK_CHAIN_KEY_SEED,
  CK_MESSAGE_KEY_SEED,
  KEY_LEN,
  MAX_SKIP,
  MAX_STORED_SKIPPED_KEYS,
  RATCHET_INFO,
} from './constants.js';
import { constantTimeEqual, hkdfSha256, hmacSha256, x25519, x25519KeyPair, type KeyPair } from './primitives.js';

export interface RatchetHeader {
  /** The sender's current ratchet public key (X25519). */
  dh: Uint8Array;
  /** Number of messages in the sender's previous sending chain. */
  pn: number;
  /** Message number in the current sending chain. */
  n: number;
}

export interface SkippedKey {
  dh: Uint8Array;
  n: number;
  mk: Uint8Array;
}

export interface RatchetState {
  /** DHs: our current ratchet key pair. */
  dhs: KeyPair;
  /** DHr: the peer's current ratchet public key (null until the responder receives). */
  dhr: Uint8Array | null;
  rk: Uint8Array;
  cks: Uint8Array | null;
  ckr: Uint8Array | null;
  ns: number;
  nr: number;
  pn: number;
  /** MKSKIPPED, oldest first (eviction order). */
  skipped: SkippedKey[];
}

/** Supplies the fresh key pair a DH ratchet step needs (injectable only for fixed test vectors). */
export type KeyPairSource = () => KeyPair;
const freshKeyPair: KeyPairSource = () => x25519KeyPair();

/** KDF_RK(rk, dh_out) = HKDF-SHA256(salt = rk, ikm = dh_out, info = "SafeChat Ratchet v1", 64) → RK' ‖ CK. */
export function kdfRk(rk: Uint8Array, dhOut: Uint8Array): { rk: Uint8Array; ck: Uint8Array } {
  const out = hkdfSha256(dhOut, rk, RATCHET_INFO, 2 * KEY_LEN);
  return { rk: out.slice(0, KEY_LEN), ck: out.slice(KEY_LEN) };
}

/** KDF_CK(ck): MK = HMAC-SHA256(ck, 0x01), CK' = HMAC-SHA256(ck, 0x02). */
export function kdfCk(ck: Uint8Array): { ck: Uint8Array; mk: Uint8Array } {
  return { mk: hmacSha256(ck, CK_MESSAGE_KEY_SEED), ck: hmacSha256(ck, CK_CHAIN_KEY_SEED) };
}

/** RatchetInitAlice: the initiator knows the responder's signed pre-key, used as the first DHr. */
export function initInitiator(sk: Uint8Array, peerSignedPreKey: Uint8Array, keyPair: KeyPair = freshKeyPair()): RatchetState {
  const { rk, ck } = kdfRk(sk, x25519(keyPair.secretKey, peerSignedPreKey));
  return { dhs: keyPair, dhr: Uint8Array.from(peerSignedPreKey), rk, cks: ck, ckr: null, ns: 0, nr: 0, pn: 0, skipped: [] };
}

/** RatchetInitBob: the responder's first ratchet key pair is its signed pre-key. */
export function initResponder(sk: Uint8Array, signedPreKey: KeyPair): RatchetState {
  return {
    dhs: { publicKey: Uint8Array.from(signedPreKey.publicKey), secretKey: Uint8Array.from(signedPreKey.secretKey) },
    dhr: null,
    rk: Uint8Array.from(sk),
    cks: null,
    ckr: null,
    ns: 0,
    nr: 0,
    pn: 0,
    skipped: [],
  };
}

/** RatchetEncrypt minus the AEAD: advances the sending chain, returns the header and message key. */
export function ratchetEncryptStep(state: RatchetState): { header: RatchetHeader; mk: Uint8Array } {
  if (!state.cks) throw new Error('no sending chain yet');
  if (state.ns >= UINT32_MAX) throw new Error('sending chain exhausted');
  const { ck, mk } = kdfCk(state.cks);
  state.cks = ck;
  const header: RatchetHeader = { dh: Uint8Array.from(state.dhs.publicKey), pn: state.pn, n: state.ns };
  state.ns += 1;
  return { header, mk };
}

/**
 * RatchetDecrypt minus the AEAD: returns the message key for `header`, advancing the state
 * (skipped keys stored, a DH ratchet step when the header carries a new ratchet key). Throws
 * for a message whose key was already used or deleted (a replay) and for skips beyond MAX_SKIP.
 */
export function ratchetDecryptStep(state: RatchetState, header: RatchetHeader, nextKeyPair: KeyPairSource = freshKeyPair): Uint8Array {
  if (header.dh.length !== KEY_LEN || !isUint32(header.n) || !isUint32(header.pn)) throw new Error('bad header');
  const idx = state.skipped.findIndex((k) => k.n === header.n && constantTimeEqual(k.dh, header.dh));
  if (idx >= 0) {
    const [entry] = state.skipped.splice(idx, 1);
    return entry!.mk; // deleted from the store: a second copy of this message finds nothing
  }
  if (!state.dhr || !constantTimeEqual(header.dh, state.dhr)) {
    // @NOTE The spec raises here when pn is beyond MAX_SKIP; we keep at most MAX_SKIP keys of the
    // old chain instead, so one large loss cannot wedge the session for good (the work per
    // message stays bounded the same way; the old chain's later messages are simply lost).
    skipMessageKeys(state, Math.min(header.pn, state.nr + MAX_SKIP));
    dhRatchet(state, header, nextKeyPair());
  }
  if (header.n < state.nr) throw new Error('message key already used'); // replay, or a deleted key
  skipMessageKeys(state, header.n);
  const { ck, mk } = kdfCk(state.ckr!);
  state.ckr = ck;
  state.nr += 1;
  return mk;
}

function skipMessageKeys(state: RatchetState, until: number): void {
  if (!state.ckr || !state.dhr) return; // no receiving chain yet: nothing to skip
  if (until > state.nr + MAX_SKIP) throw new Error('too many skipped messages');
  while (state.nr < until) {
    const { ck, mk } = kdfCk(state.ckr);
    state.ckr = ck;
    state.skipped.push({ dh: Uint8Array.from(state.dhr), n: state.nr, mk });
    state.nr += 1;
  }
  if (state.skipped.length > MAX_STORED_SKIPPED_KEYS) {
    state.skipped.splice(0, state.skipped.length - MAX_STORED_SKIPPED_KEYS); // evict the oldest
  }
}

function dhRatchet(state: RatchetState, header: RatchetHeader, keyPair: KeyPair): void {
  state.pn = state.ns;
  state.ns = 0;
  state.nr = 0;
  state.dhr = Uint8Array.from(header.dh);
  const recv = kdfRk(state.rk, x25519(state.dhs.secretKey, state.dhr));
  state.rk = recv.rk;
  state.ckr = recv.ck;
  state.dhs = keyPair;
  const send = kdfRk(state.rk, x25519(state.dhs.secretKey, state.dhr));
  state.rk = send.rk;
  state.cks = send.ck;
}

// ---- JSON (for SessionStore) ----

export interface RatchetStateJSON {
  dhs: { publicKey: string; secretKey: string };
  dhr: string | null;
  rk: string;
  cks: string | null;
  ckr: string | null;
  ns: number;
  nr: number;
  pn: number;
  /** [ratchet public key, message number, message key], oldest first. */
  skipped: [string, number, string][];
}

export function ratchetToJSON(s: RatchetState): RatchetStateJSON {
  const b = (x: Uint8Array | null) => (x ? toBase64(x) : null);
  return {
    dhs: { publicKey: toBase64(s.dhs.publicKey), secretKey: toBase64(s.dhs.secretKey) },
    dhr: b(s.dhr),
    rk: toBase64(s.rk),
    cks: b(s.cks),
    ckr: b(s.ckr),
    ns: s.ns,
    nr: s.nr,
    pn: s.pn,
    skipped: s.skipped.map((k) => [toBase64(k.dh), k.n, toBase64(k.mk)]),
  };
}

function key32(v: unknown): Uint8Array {
  const bytes = fromBase64(v as string);
  if (bytes.length !== KEY_LEN) throw new TypeError('bad key length');
  return bytes;
}

function key32OrNull(v: unknown): Uint8Array | null {
  return v === null ? null : key32(v);
}

function u32(v: unknown): number {
  if (!isUint32(v)) throw new TypeError('bad counter');
  return v;
}

/** Parses and validates stored state; throws TypeError on anything malformed. */
export function ratchetFromJSON(j: RatchetStateJSON): RatchetState {
  if (typeof j !== 'object' || j === null || typeof j.dhs !== 'object' || !Array.isArray(j.skipped)) {
    throw new TypeError('bad ratchet state');
  }
  return {
    dhs: { publicKey: key32(j.dhs.publicKey), secretKey: key32(j.dhs.secretKey) },
    dhr: key32OrNull(j.dhr),
    rk: key32(j.rk),
    cks: key32OrNull(j.cks),
    ckr: key32OrNull(j.ckr),
    ns: u32(j.ns),
    nr: u32(j.nr),
    pn: u32(j.pn),
    skipped: j.skipped.map((e) => {
      if (!Array.isArray(e) || e.length !== 3) throw new TypeError('bad skipped key');
      return { dh: key32(e[0]), n: u32(e[1]), mk: key32(e[2]) };
    }),
  };
}
