/**
 * Wire encoding of SafeChat v1 messages and their encrypt-then-MAC protection.
 *
 * encryptedContent (base64 of):
 *   version u8 (0x01) ‖ kind u8 (0x01 message | 0x02 pre-key message) ‖ counter u32
 *   ‖ ratchet header: dh 32 ‖ pn u32 ‖ n u32
 *   ‖ [kind 0x02 only] pre-key header: IK_A 32 ‖ EK_A 32 ‖ spkId u32 ‖ hasOpk u8 (0|1) ‖ opkId u32 (0 if none)
 *   ‖ ciphertext (AES-256-CBC, PKCS#7; a non-zero multiple of 16 bytes)
 * iv  = the 16-byte IV (derived from the message key, sent because the server's schema carries it)
 * mac = HMAC-SHA256(macKey, MAC input), all 32 bytes, where the MAC input is
 *   version u8 ‖ lp(AD) ‖ lp(senderId) ‖ lp(receiverId) ‖ lp(chatId) ‖ counter u32
 *   ‖ lp(ratchet header) ‖ lp(pre-key header, or empty) ‖ lp(iv) ‖ lp(ciphertext)
 *   with lp(x) = u32(len x) ‖ x, ids as UTF-8, every integer big-endian.
 *
 * Plaintext payload (inside the ciphertext):
 *   typeLen u8 ‖ type (ASCII: text|image|file|audio|system) ‖ bodyEncoding u8 (0 bytes | 1 UTF-8) ‖ body
 */
import { concat, fromUtf8, isUint32, lengthPrefixed, readU32be, u32be, utf8, wipe } from './bytes.js';
import {
  AES_BLOCK,
  BODY_BINARY,
  BODY_UTF8,
  ENVELOPE_FIXED_LEN,
  ENVELOPE_KIND_MESSAGE,
  ENVELOPE_KIND_PREKEY,
  IV_LEN,
  KEY_LEN,
  MAC_LEN,
  MESSAGE_KEYS_INFO,
  MESSAGE_KEYS_LEN,
  PLAINTEXT_TYPES,
  PREKEY_HEADER_LEN,
  PROTOCOL_VERSION,
  RATCHET_HEADER_LEN,
  ZERO_SALT,
  type PlaintextType,
} from './constants.js';
import { DecryptionError } from './errors.js';
import { aes256CbcDecrypt, aes256CbcEncrypt, constantTimeEqual, hkdfSha256, hmacSha256 } from './primitives.js';
import type { RatchetHeader } from './ratchet.js';
import type { PreKeyHeader } from './x3dh.js';

/** Who sent what to whom, where: bound into the MAC so the server cannot re-route a message. */
export interface RoutingHeader {
  senderId: string;
  receiverId: string;
  chatId: string;
  /** The sender's message counter in this session (0, 1, 2, … across DH ratchet turns). */
  counter: number;
}

export interface Envelope {
  version: number;
  counter: number;
  header: RatchetHeader;
  preKey: PreKeyHeader | null;
  ciphertext: Uint8Array;
}

export interface Plaintext {
  type: PlaintextType;
  body: Uint8Array | string;
}

// ---- headers ----

export function encodeRatchetHeader(h: RatchetHeader): Uint8Array {
  if (h.dh.length !== KEY_LEN) throw new TypeError('bad ratchet key');
  return concat(h.dh, u32be(h.pn), u32be(h.n));
}

export function decodeRatchetHeader(b: Uint8Array): RatchetHeader {
  if (b.length !== RATCHET_HEADER_LEN) throw new TypeError('bad ratchet header');
  return { dh: b.slice(0, KEY_LEN), pn: readU32be(b, KEY_LEN), n: readU32be(b, KEY_LEN + 4) };
}

export function encodePreKeyHeader(p: PreKeyHeader): Uint8Array {
  if (p.identityKey.length !== KEY_LEN || p.baseKey.length !== KEY_LEN) throw new TypeError('bad pre-key header');
  const hasOpk = p.oneTimePreKeyId !== null;
  return concat(p.identityKey, p.baseKey, u32be(p.signedPreKeyId), Uint8Array.of(hasOpk ? 1 : 0), u32be(hasOpk ? p.oneTimePreKeyId! : 0));
}

export function decodePreKeyHeader(b: Uint8Array): PreKeyHeader {
  if (b.length !== PREKEY_HEADER_LEN) throw new TypeError('bad pre-key header');
  const flag = b[2 * KEY_LEN + 4];
  const opkId = readU32be(b, 2 * KEY_LEN + 5);
  if (flag !== 0 && flag !== 1) throw new TypeError('bad pre-key header');
  if (flag === 0 && opkId !== 0) throw new TypeError('bad pre-key header');
  return {
    identityKey: b.slice(0, KEY_LEN),
    baseKey: b.slice(KEY_LEN, 2 * KEY_LEN),
    signedPreKeyId: readU32be(b, 2 * KEY_LEN),
    oneTimePreKeyId: flag === 1 ? opkId : null,
  };
}

// ---- envelope ----

export function encodeEnvelope(e: Envelope): Uint8Array {
  return concat(
    Uint8Array.of(PROTOCOL_VERSION, e.preKey ? ENVELOPE_KIND_PREKEY : ENVELOPE_KIND_MESSAGE),
    u32be(e.counter),
    encodeRatchetHeader(e.header),
    e.preKey ? encodePreKeyHeader(e.preKey) : new Uint8Array(0),
    e.ciphertext,
  );
}

/** Parses an envelope; throws TypeError on any deviation from the format (no partial parses). */
export function decodeEnvelope(b: Uint8Array): Envelope {
  if (b.length < ENVELOPE_FIXED_LEN + RATCHET_HEADER_LEN) throw new TypeError('envelope too short');
  if (b[0] !== PROTOCOL_VERSION) throw new TypeError('unsupported envelope version');
  const kind = b[1];
  if (kind !== ENVELOPE_KIND_MESSAGE && kind !== ENVELOPE_KIND_PREKEY) throw new TypeError('unknown envelope kind');
  let off = ENVELOPE_FIXED_LEN;
  const header = decodeRatchetHeader(b.slice(off, off + RATCHET_HEADER_LEN));
  off += RATCHET_HEADER_LEN;
  let preKey: PreKeyHeader | null = null;
  if (kind === ENVELOPE_KIND_PREKEY) {
    if (b.length < off + PREKEY_HEADER_LEN) throw new TypeError('envelope too short');
    preKey = decodePreKeyHeader(b.slice(off, off + PREKEY_HEADER_LEN));
    off += PREKEY_HEADER_LEN;
  }
  const ciphertext = b.slice(off);
  if (ciphertext.length === 0 || ciphertext.length % AES_BLOCK !== 0) throw new TypeError('bad ciphertext length');
  return { version: b[0], counter: readU32be(b, 2), header, preKey, ciphertext };
}

// ---- payload ----

export function encodePayload(p: Plaintext): Uint8Array {
  if (!(PLAINTEXT_TYPES as readonly string[]).includes(p.type)) throw new TypeError('unsupported plaintext type');
  const type = utf8(p.type);
  const isText = typeof p.body === 'string';
  if (!isText && !(p.body instanceof Uint8Array)) throw new TypeError('body must be a string or Uint8Array');
  const body = typeof p.body === 'string' ? utf8(p.body) : p.body;
  return concat(Uint8Array.of(type.length), type, Uint8Array.of(isText ? BODY_UTF8 : BODY_BINARY), body);
}

export function decodePayload(b: Uint8Array): Plaintext {
  const typeLen = b[0];
  if (typeLen === undefined || b.length < 1 + typeLen + 1) throw new TypeError('bad payload');
  const type = fromUtf8(b.slice(1, 1 + typeLen));
  if (!(PLAINTEXT_TYPES as readonly string[]).includes(type)) throw new TypeError('bad payload type');
  const enc = b[1 + typeLen];
  const body = b.slice(2 + typeLen);
  if (enc === BODY_UTF8) return { type: type as PlaintextType, body: fromUtf8(body) };
  if (enc === BODY_BINARY) return { type: type as PlaintextType, body };
  throw new TypeError('bad payload encoding');
}

// ---- keys and MAC ----

export interface MessageKeys {
  encKey: Uint8Array;
  macKey: Uint8Array;
  iv: Uint8Array;
}

/** HKDF-SHA256(ikm = MK, salt = 0x00×32, info = "SafeChat Message Keys v1", 80) → encKey ‖ macKey ‖ iv. */
export function deriveMessageKeys(mk: Uint8Array): MessageKeys {
  const okm = hkdfSha256(mk, ZERO_SALT, MESSAGE_KEYS_INFO, MESSAGE_KEYS_LEN);
  const keys = { encKey: okm.slice(0, 32), macKey: okm.slice(32, 64), iv: okm.slice(64, 80) };
  wipe(okm);
  return keys;
}

function checkRouting(r: RoutingHeader): void {
  for (const id of [r.senderId, r.receiverId, r.chatId]) {
    if (typeof id !== 'string' || id.length === 0) throw new TypeError('routing ids must be non-empty strings');
  }
  if (!isUint32(r.counter)) throw new TypeError('bad counter');
}

/** The exact bytes the MAC covers (see the file comment). */
export function macInput(
  ad: Uint8Array,
  routing: RoutingHeader,
  ratchetHeader: Uint8Array,
  preKeyHeader: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  checkRouting(routing);
  return concat(
    Uint8Array.of(PROTOCOL_VERSION),
    lengthPrefixed(ad),
    lengthPrefixed(utf8(routing.senderId)),
    lengthPrefixed(utf8(routing.receiverId)),
    lengthPrefixed(utf8(routing.chatId)),
    u32be(routing.counter),
    lengthPrefixed(ratchetHeader),
    lengthPrefixed(preKeyHeader),
    lengthPrefixed(iv),
    lengthPrefixed(ciphertext),
  );
}

export interface SealedMessage {
  /** The encoded envelope (base64 of it is `encryptedContent`). */
  envelope: Uint8Array;
  iv: Uint8Array;
  mac: Uint8Array;
}

/** Encrypt-then-MAC one message under message key `mk`. */
export function sealMessage(args: {
  mk: Uint8Array;
  ad: Uint8Array;
  routing: RoutingHeader;
  header: RatchetHeader;
  preKey: PreKeyHeader | null;
  plaintext: Plaintext;
}): SealedMessage {
  checkRouting(args.routing);
  const { encKey, macKey, iv } = deriveMessageKeys(args.mk);
  const payload = encodePayload(args.plaintext);
  const ciphertext = aes256CbcEncrypt(encKey, iv, payload);
  const rh = encodeRatchetHeader(args.header);
  const ph = args.preKey ? encodePreKeyHeader(args.preKey) : new Uint8Array(0);
  const mac = hmacSha256(macKey, macInput(args.ad, args.routing, rh, ph, iv, ciphertext));
  const envelope = encodeEnvelope({ version: PROTOCOL_VERSION, counter: args.routing.counter, header: args.header, preKey: args.preKey, ciphertext });
  wipe(encKey, macKey, payload);
  return { envelope, iv, mac };
}

/**
 * Verify-then-decrypt. The MAC (and the IV, which must equal the one derived from `mk`) is
 * checked in constant time before any decryption, so padding errors are never observable
 * separately. Every failure throws the same DecryptionError.
 */
export function openMessage(args: {
  mk: Uint8Array;
  ad: Uint8Array;
  routing: Omit<RoutingHeader, 'counter'>;
  envelope: Envelope;
  iv: Uint8Array;
  mac: Uint8Array;
}): Plaintext {
  const { encKey, macKey, iv } = deriveMessageKeys(args.mk);
  try {
    if (args.iv.length !== IV_LEN || args.mac.length !== MAC_LEN) throw new DecryptionError();
    const e = args.envelope;
    const rh = encodeRatchetHeader(e.header);
    const ph = e.preKey ? encodePreKeyHeader(e.preKey) : new Uint8Array(0);
    const expected = hmacSha256(macKey, macInput(args.ad, { ...args.routing, counter: e.counter }, rh, ph, args.iv, e.ciphertext));
    const macOk = constantTimeEqual(expected, args.mac);
    const ivOk = constantTimeEqual(iv, args.iv);
    if (!macOk || !ivOk) throw new DecryptionError();
    return decodePayload(aes256CbcDecrypt(encKey, iv, e.ciphertext));
  } catch {
    throw new DecryptionError();
  } finally {
    wipe(encKey, macKey);
  }
}
