/** Key generation: the identity key, signed pre-keys and one-time pre-keys. */
import type { IdentityKeyPair, OneTimePreKeyRecord, SignedPreKeyRecord } from '../store/types.js';
import { isUint32, readU32be } from './bytes.js';
import { ed25519KeyPair, ed25519Sign, randomBytes, x25519KeyPair } from './primitives.js';

/** A fresh Ed25519 identity key pair (its public key is the user's `publicKey` on the server). */
export function generateIdentity(): IdentityKeyPair {
  return ed25519KeyPair();
}

/** An X25519 signed pre-key; the signature is Ed25519(IK, the 32 raw public-key bytes). */
export function generateSignedPreKey(identity: IdentityKeyPair, keyId: number, createdAt = Date.now()): SignedPreKeyRecord {
  if (!isUint32(keyId)) throw new RangeError('keyId must be a uint32');
  const kp = x25519KeyPair();
  return { keyId, publicKey: kp.publicKey, secretKey: kp.secretKey, signature: ed25519Sign(kp.publicKey, identity.secretKey), createdAt };
}

export function generateOneTimePreKey(keyId: number): OneTimePreKeyRecord {
  if (!isUint32(keyId)) throw new RangeError('keyId must be a uint32');
  const kp = x25519KeyPair();
  return { keyId, publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/**
 * A random key id in [1, 2^31 − 1]. Random rather than sequential so ids need no persisted
 * counter and are not reused after the store forgets consumed keys; callers still skip ids
 * already in their store.
 */
export function randomKeyId(): number {
  for (;;) {
    const id = readU32be(randomBytes(4), 0) & 0x7fff_ffff;
    if (id !== 0) return id;
  }
}
