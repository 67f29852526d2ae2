import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';

/** Raw 32-byte public key of an OKP KeyObject, base64. */
export function rawPublic(key: KeyObject): string {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}

export function identityKeyPair(): { publicKey: string; privateKey: KeyObject } {
  const kp = generateKeyPairSync('ed25519');
  return { publicKey: rawPublic(kp.publicKey), privateKey: kp.privateKey };
}

export function x25519Public(): string {
  return rawPublic(generateKeyPairSync('x25519').publicKey);
}

/** A valid PUT /keys body (real keys, real signature) with `n` one-time pre-keys from `firstId`. */
export function keyUpload(identity = identityKeyPair(), n = 5, firstId = 1, spkId = 1) {
  const spk = x25519Public();
  return {
    identity,
    body: {
      identityKey: identity.publicKey,
      signedPreKey: { keyId: spkId, publicKey: spk, signature: sign(null, Buffer.from(spk, 'base64'), identity.privateKey).toString('base64') },
      oneTimePreKeys: Array.from({ length: n }, (_, i) => ({ keyId: firstId + i, publicKey: x25519Public() })),
    },
  };
}

/**
 * A Curve25519 identity as a libsignal client holds one: the public key serialized with the 0x05
 * type byte, and XEdDSA signatures (test-only signer on noble's curve arithmetic). `libsignal`:
 * the sign of the Edwards key goes into the signature's top bit, as libsignal does; `paper`: the
 * XEdDSA paper's variant, which negates the scalar instead so that the bit is always 0.
 */
export function xeddsaIdentity(variant: 'libsignal' | 'paper' = 'libsignal'): { publicKey: string; sign(message: Uint8Array): string } {
  const k = randomBytes(32);
  const u = x25519.getPublicKey(k);
  const L = ed25519.Point.Fn.ORDER;
  const clamped = Uint8Array.from(k);
  clamped[0]! &= 248;
  clamped[31]! &= 127;
  clamped[31]! |= 64;
  let a = leInt(clamped) % L;
  let A = ed25519.Point.BASE.multiply(a);
  let signBit = A.toBytes()[31]! & 0x80;
  if (variant === 'paper' && signBit) {
    a = L - a;
    A = A.negate();
    signBit = 0;
  }
  const aBytes = A.toBytes();
  return {
    publicKey: Buffer.concat([Buffer.from([0x05]), u]).toString('base64'),
    sign(message) {
      const r = (leInt(randomBytes(64)) % (L - 1n)) + 1n;
      const R = ed25519.Point.BASE.multiply(r).toBytes();
      const h = leInt(createHash('sha512').update(R).update(aBytes).update(message).digest()) % L;
      const s = (r + h * a) % L;
      const sig = Buffer.alloc(64);
      sig.set(R, 0);
      let t = s;
      for (let i = 32; i < 64; i++) {
        sig[i] = Number(t & 0xffn);
        t >>= 8n;
      }
      sig[63]! |= signBit;
      return sig.toString('base64');
    },
  };
}

/** An X25519 public key as libsignal serializes it: 0x05 and the 32 bytes. */
export function x25519Serialized(): string {
  return Buffer.concat([Buffer.from([0x05]), Buffer.from(x25519Public(), 'base64')]).toString('base64');
}

function leInt(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

/**
 * libsignal's own test vector (Curve25519Test.testSignature, libsignal-protocol-java and the Rust
 * crate): a Curve25519 identity key, the message it signed (a serialized Curve25519 key, which makes
 * it a valid signed pre-key too) and the signature, each as libsignal serializes it.
 */
export const LIBSIGNAL_SIGNATURE_VECTOR = {
  identityKey: Buffer.from('05ab7e717d4a163b7d9a1d8071dfe9dcf8cdcd1cea3339b6356be84d887e322c64', 'hex').toString('base64'),
  message: Buffer.from('05edce9d9c415ca78cb7252e72c2c4a554d3eb29485a0e1d503118d1a82d99fb4a', 'hex').toString('base64'),
  signature: Buffer.from(
    '5de88ca9a89b4a115da79109c67c9c7464a3e4180274f1cb8c63c2984e286dfbede82deb9dcd9fae0bfbb821569b3d9001bd8130cd11d486cef047bd60b86e88',
    'hex',
  ).toString('base64'),
};
