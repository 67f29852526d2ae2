import { createPublicKey, verify } from 'node:crypto';
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

/** Verifies an Ed25519 signature by `identityKey` over `message`. */
export function verifyEd25519(identityKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(identityKey).toString('base64url') }, format: 'jwk' });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
