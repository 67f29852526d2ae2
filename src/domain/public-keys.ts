import { createPublicKey, verify } from 'node:crypto';
import { DJB_KEY_TYPE } from '@safechat/protocol';
import { ed25519 } from '@noble/curves/ed25519.js';

// @NOTE Only checks on public keys the server is handed; the server never holds a private key.

const P = 2n ** 255n - 19n;
/** u-coordinates of the X25519 points of small order (libsodium's blocklist, reduced mod p). */
const LOW_ORDER_U = new Set([
  0n,
  1n,
  P - 1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
]);

/** An Ed25519 public key: a canonical encoding of a curve point that is not of small order. */
export function isValidEd25519PublicKey(key: Uint8Array): boolean {
  if (key.length !== 32) return false;
  try {
    return !ed25519.Point.fromBytes(key).isSmallOrder();
  } catch {
    return false;
  }
}

/** An X25519 public key that is not one of the small-order points (a DH with it would leak nothing or be all-zero). */
export function isValidX25519PublicKey(key: Uint8Array): boolean {
  if (key.length !== 32) return false;
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(key[i]!);
  u &= (1n << 255n) - 1n; // RFC 7748 §5: the top bit is ignored
  return !LOW_ORDER_U.has(u % P);
}

/** An X25519 key as uploaded (32 raw bytes, or libsignal's 33 with the 0x05 type byte) → its 32 bytes; null if neither. */
export function x25519Bytes(key: Uint8Array): Uint8Array | null {
  if (key.length === 32) return key;
  if (key.length === 33 && key[0] === DJB_KEY_TYPE) return key.subarray(1);
  return null;
}

/**
 * An identity key as uploaded: 32 bytes are Ed25519 (signatures Ed25519); 33 bytes with the 0x05
 * type byte are Curve25519 as libsignal serializes them (signatures XEdDSA). Decision 0019.
 */
export function isValidIdentityKey(key: Uint8Array): boolean {
  if (key.length === 32) return isValidEd25519PublicKey(key);
  const u = key.length === 33 ? x25519Bytes(key) : null;
  if (u === null || !isCanonicalU(u) || !isValidX25519PublicKey(u)) return false;
  // The u of a point on the curve's twist has no Edwards point: no signature could ever verify.
  const y = edwardsY(u);
  return y !== null && isValidEd25519PublicKey(encodeY(y, 0));
}

/** u < p with the top bit clear: the one encoding of a key (libsignal never makes another), so one key has one identity. */
function isCanonicalU(u: Uint8Array): boolean {
  if (u[31]! & 0x80) return false;
  let n = 0n;
  for (let i = 31; i >= 0; i--) n = (n << 8n) | BigInt(u[i]!);
  return n < P;
}

/** An Edwards point's 32-byte encoding: y little-endian, the sign of x in the top bit. */
function encodeY(y: bigint, signBit: number): Uint8Array {
  const a = new Uint8Array(32);
  let t = y;
  for (let i = 0; i < 32; i++) {
    a[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  a[31]! |= signBit;
  return a;
}

/** Verifies a signature by an identity key (either kind, see isValidIdentityKey) over `message`. */
export function verifyIdentitySignature(identityKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (identityKey.length === 32) return verifyEd25519(identityKey, message, signature);
  const u = identityKey.length === 33 ? x25519Bytes(identityKey) : null;
  return u !== null && verifyXEdDSA(u, message, signature);
}

/**
 * XEdDSA verification as libsignal does it (its `verify_signature`): the Montgomery u-coordinate
 * maps to the Edwards y = (u − 1) / (u + 1); the sign of x is the top bit of the signature's last
 * byte (0 for a signature made to the XEdDSA paper, where the signer forces it), cleared before
 * the standard Ed25519 check by Node's crypto. Only the birational map is written here, with
 * noble's field arithmetic.
 */
export function verifyXEdDSA(u: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (u.length !== 32 || signature.length !== 64) return false;
  const y = edwardsY(u);
  if (y === null) return false;
  const a = encodeY(y, signature[63]! & 0x80);
  const sig = Uint8Array.from(signature);
  sig[63]! &= 0x7f;
  return verifyEd25519(a, message, sig);
}

/** y = (u − 1) / (u + 1) mod p for an X25519 u-coordinate (top bit ignored, RFC 7748); null where there is none (u = −1). */
function edwardsY(key: Uint8Array): bigint | null {
  const Fp = ed25519.Point.Fp;
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(key[i]!);
  u = Fp.create(u & ((1n << 255n) - 1n));
  if (u === P - 1n) return null;
  return Fp.mul(Fp.sub(u, 1n), Fp.inv(Fp.add(u, 1n)));
}

/** Verifies an Ed25519 signature by `identityKey` over `message`. */
export function verifyEd25519(identityKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(identityKey).toString('base64url') }, format: 'jwk' });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
