/**
 * Thin wrappers over the vetted primitives (@noble/curves, @noble/hashes, @noble/ciphers).
 * No primitive is implemented here: these functions only pin the algorithm choices, check
 * lengths, and give the rest of the SDK one place that touches the libraries.
 */
import { ed25519, x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import { sha256 as nobleSha256, sha512 as nobleSha512 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf, extract } from '@noble/hashes/hkdf.js';
import { cbc } from '@noble/ciphers/aes.js';
import { equalBytes, randomBytes as nobleRandomBytes } from '@noble/ciphers/utils.js';

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

function assertLen(bytes: Uint8Array, len: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== len) throw new TypeError(`${what} must be ${len} bytes`);
}

/** CSPRNG bytes (WebCrypto `getRandomValues`, via noble). */
export function randomBytes(n: number): Uint8Array {
  return nobleRandomBytes(n);
}

// ---- Ed25519 (RFC 8032) ----

/** Ed25519 key pair; `secretKey` is the 32-byte RFC 8032 seed. */
export function ed25519KeyPair(seed?: Uint8Array): KeyPair {
  const secretKey = seed ? Uint8Array.from(seed) : randomBytes(32);
  assertLen(secretKey, 32, 'Ed25519 seed');
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) };
}

export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  assertLen(seed, 32, 'Ed25519 seed');
  return ed25519.getPublicKey(seed);
}

export function ed25519Sign(message: Uint8Array, seed: Uint8Array): Uint8Array {
  assertLen(seed, 32, 'Ed25519 seed');
  return ed25519.sign(message, seed);
}

/**
 * Strict RFC 8032 verification (`zip215: false`: canonical encodings only, no malleable
 * signatures). Returns false, never throws, for malformed keys or signatures.
 */
export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * A usable peer identity key: a canonical encoding of a curve point (strict decoding) that is not
 * of small order (those would make every DH with it predictable).
 */
export function ed25519IsValidPublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  try {
    return !ed25519.Point.fromBytes(publicKey, false).isSmallOrder();
  } catch {
    return false;
  }
}

/**
 * Ed25519 public key → X25519 public key (the birational map u = (1 + y) / (1 − y), RFC 7748
 * §4.1). Lets one identity key both sign (the signed pre-key) and agree (X3DH DH1/DH2).
 */
export function ed25519PublicToX25519(publicKey: Uint8Array): Uint8Array {
  assertLen(publicKey, 32, 'Ed25519 public key');
  return ed25519.utils.toMontgomery(publicKey);
}

/** Ed25519 seed → X25519 secret (the clamped first half of SHA-512(seed), i.e. the signing scalar). */
export function ed25519SecretToX25519(seed: Uint8Array): Uint8Array {
  assertLen(seed, 32, 'Ed25519 seed');
  return ed25519.utils.toMontgomerySecret(seed);
}

// ---- X25519 (RFC 7748) ----

export function x25519KeyPair(secret?: Uint8Array): KeyPair {
  const secretKey = secret ? Uint8Array.from(secret) : nobleX25519.utils.randomSecretKey();
  assertLen(secretKey, 32, 'X25519 secret key');
  return { secretKey, publicKey: nobleX25519.getPublicKey(secretKey) };
}

export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  assertLen(secretKey, 32, 'X25519 secret key');
  return nobleX25519.getPublicKey(secretKey);
}

/**
 * X25519(secret, public). noble rejects the low-order public inputs before running the ladder;
 * the explicit all-zero check below is the RFC 7748 §6.1 check, kept as a second line.
 */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  assertLen(secretKey, 32, 'X25519 secret key');
  assertLen(publicKey, 32, 'X25519 public key');
  const out = nobleX25519.getSharedSecret(secretKey, publicKey);
  if (out.every((b) => b === 0)) throw new Error('invalid private or public key received');
  return out;
}

// ---- hashes, MAC, KDF ----

export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}

export function sha512(data: Uint8Array): Uint8Array {
  return nobleSha512(data);
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(nobleSha256, key, data);
}

/** HKDF-SHA256 (RFC 5869), extract then expand. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return hkdf(nobleSha256, ikm, salt, info, length);
}

/** HKDF-Extract only (for the RFC 5869 PRK vectors). */
export function hkdfSha256Extract(ikm: Uint8Array, salt: Uint8Array): Uint8Array {
  return extract(nobleSha256, ikm, salt);
}

/** Constant-time equality (noble's `equalBytes`); false for different lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return equalBytes(a, b);
}

// ---- AES-256-CBC (NIST SP 800-38A) ----

/** AES-256-CBC encryption with PKCS#7 padding (`pkcs7 = false` only for the NIST vectors). */
export function aes256CbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, pkcs7 = true): Uint8Array {
  assertLen(key, 32, 'AES-256 key');
  assertLen(iv, 16, 'IV');
  return cbc(key, iv, { disablePadding: !pkcs7 }).encrypt(plaintext);
}

/** AES-256-CBC decryption; throws on bad PKCS#7 padding. Call only after the MAC has verified. */
export function aes256CbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, pkcs7 = true): Uint8Array {
  assertLen(key, 32, 'AES-256 key');
  assertLen(iv, 16, 'IV');
  return cbc(key, iv, { disablePadding: !pkcs7 }).decrypt(ciphertext);
}
