/**
 * Safety numbers, computed as Signal's NumericFingerprintGenerator (version 0) does, with our raw
 * 32-byte Ed25519 identity key (Signal prefixes its keys with a 0x05 type byte; we do not) and
 * the server's user id as the stable identifier:
 *
 *   h = SHA-512(u16be(0) ‖ identityKey ‖ utf8(userId))
 *   repeat 5200 times: h = SHA-512(h ‖ identityKey)
 *   digits(user) = for i in 0..5: (u40be(h[5i .. 5i+5]) mod 100000) as 5 digits   → 30 digits
 *   safety number = the two 30-digit strings, the smaller first → 60 digits, shown as 12 × 5
 *
 * The iteration count makes finding a second key with the same number expensive; sorting makes
 * the result the same on both sides. Binding the user id means the same key under another
 * account gives another number.
 */
import { concat, fromBase64, utf8 } from './bytes.js';
import { FINGERPRINT_ITERATIONS, FINGERPRINT_VERSION, KEY_LEN } from './constants.js';
import { sha512 } from './primitives.js';

export interface FingerprintParty {
  userId: string;
  /** Ed25519 identity public key: 32 bytes, or their base64 as the server shows it. */
  identityKey: Uint8Array | string;
}

/** The 30-digit half of a safety number that belongs to one user. */
export function fingerprintDigits(party: FingerprintParty): string {
  const key = typeof party.identityKey === 'string' ? fromBase64(party.identityKey) : party.identityKey;
  if (key.length !== KEY_LEN) throw new TypeError('identity key must be 32 bytes');
  if (typeof party.userId !== 'string' || party.userId.length === 0) throw new TypeError('userId required');
  let h = sha512(concat(Uint8Array.of(FINGERPRINT_VERSION >> 8, FINGERPRINT_VERSION & 0xff), key, utf8(party.userId)));
  for (let i = 0; i < FINGERPRINT_ITERATIONS; i++) h = sha512(concat(h, key));
  let out = '';
  for (let off = 0; off < 30; off += 5) {
    let chunk = 0;
    for (let j = 0; j < 5; j++) chunk = chunk * 256 + h[off + j]!; // < 2^40: exact in a double
    out += String(chunk % 100000).padStart(5, '0');
  }
  return out;
}

/** The 60-digit safety number of two users, in 12 groups of 5 separated by spaces; symmetric. */
export function safetyNumber(a: FingerprintParty, b: FingerprintParty): string {
  const da = fingerprintDigits(a);
  const db = fingerprintDigits(b);
  const digits = da <= db ? da + db : db + da;
  return digits.match(/.{5}/g)!.join(' ');
}
