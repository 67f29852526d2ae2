import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { isValidIdentityKey, verifyIdentitySignature } from '../../src/domain/public-keys.js';
import { LIBSIGNAL_SIGNATURE_VECTOR, rawPublic, xeddsaIdentity } from '../_helpers/keys.js';

const b = (s: string) => Buffer.from(s, 'base64');
const flip = (s: string, i: number, bit = 1) => {
  const x = b(s);
  x[i]! ^= bit;
  return x;
};

describe('identity signatures: Ed25519 (32-byte keys) and XEdDSA (33-byte Curve25519 keys, libsignal)', () => {
  const v = LIBSIGNAL_SIGNATURE_VECTOR;

  it("libsignal's published vector verifies, and any change to key, message or signature breaks it", () => {
    expect(isValidIdentityKey(b(v.identityKey))).toBe(true);
    expect(verifyIdentitySignature(b(v.identityKey), b(v.message), b(v.signature))).toBe(true);
    for (let i = 1; i < 33; i += 7) expect(verifyIdentitySignature(flip(v.identityKey, i), b(v.message), b(v.signature)), `key byte ${i}`).toBe(false);
    for (let i = 0; i < 33; i += 5) expect(verifyIdentitySignature(b(v.identityKey), flip(v.message, i), b(v.signature)), `message byte ${i}`).toBe(false);
    for (let i = 0; i < 64; i += 9) expect(verifyIdentitySignature(b(v.identityKey), b(v.message), flip(v.signature, i)), `signature byte ${i}`).toBe(false);
    // The sign bit it carries is part of what is checked.
    expect(verifyIdentitySignature(b(v.identityKey), b(v.message), flip(v.signature, 63, 0x80))).toBe(false);
  });

  it('signatures of fresh Curve25519 identities verify, in libsignal’s form and the XEdDSA paper’s', () => {
    for (const variant of ['libsignal', 'paper'] as const) {
      for (let i = 0; i < 24; i++) {
        const id = xeddsaIdentity(variant);
        const message = b(xeddsaIdentity().publicKey);
        const sig = id.sign(message);
        expect(verifyIdentitySignature(b(id.publicKey), message, b(sig)), `${variant} ${i}`).toBe(true);
        expect(verifyIdentitySignature(b(id.publicKey), flip(message.toString('base64'), 3), b(sig))).toBe(false);
      }
    }
  });

  it('a key is read one way only: 32 bytes as Ed25519, 33 bytes (0x05 first) as Curve25519', () => {
    const kp = generateKeyPairSync('ed25519');
    const ed = b(rawPublic(kp.publicKey));
    const message = Buffer.from('signed pre-key bytes');
    const edSig = sign(null, message, kp.privateKey);
    expect(verifyIdentitySignature(ed, message, edSig)).toBe(true);
    // The same 32 bytes presented as a Curve25519 key are another key: the signature does not carry over.
    expect(verifyIdentitySignature(Buffer.concat([Buffer.from([5]), ed]), message, edSig)).toBe(false);
    // A Curve25519 identity's raw 32 bytes are not its Ed25519 form either.
    const id = xeddsaIdentity();
    const sig = b(id.sign(message));
    expect(verifyIdentitySignature(b(id.publicKey).subarray(1), message, sig)).toBe(false);
    // Wrong type byte, small-order u, wrong lengths.
    expect(isValidIdentityKey(Buffer.concat([Buffer.from([6]), b(id.publicKey).subarray(1)]))).toBe(false);
    expect(isValidIdentityKey(Buffer.concat([Buffer.from([5]), Buffer.alloc(32)]))).toBe(false);
    expect(isValidIdentityKey(Buffer.concat([Buffer.from([5]), Buffer.from([1]), Buffer.alloc(31)]))).toBe(false);
    expect(isValidIdentityKey(Buffer.alloc(34, 5))).toBe(false);
    expect(isValidIdentityKey(Buffer.alloc(31, 5))).toBe(false);
  });

  it('a Curve25519 identity key must be canonical and on the curve (not its twist)', () => {
    const Fp = ed25519.Point.Fp;
    const P = Fp.ORDER;
    const le = (n: bigint) => {
      const out = Buffer.alloc(32);
      for (let i = 0; i < 32; i++, n >>= 8n) out[i] = Number(n & 0xffn);
      return out;
    };
    const key = (u: bigint) => Buffer.concat([Buffer.from([5]), le(u)]);
    // Montgomery curve v² = u³ + 486662·u² + u: u is on it exactly when the right side is a square.
    const onCurve = (u: bigint) => {
      const rhs = Fp.add(Fp.add(Fp.mul(Fp.mul(u, u), u), Fp.mul(486662n, Fp.mul(u, u))), u);
      try {
        Fp.sqrt(rhs);
        return true;
      } catch {
        return false;
      }
    };
    let curve = 0;
    let twist = 0;
    for (let i = 0; i < 200; i++) {
      const u = BigInt(`0x${randomBytes(32).toString('hex')}`) % P;
      if (u < 2n || u === P - 1n) continue;
      const expected = onCurve(u);
      expect(isValidIdentityKey(key(u)), `u = ${u}`).toBe(expected);
      if (expected) curve++;
      else twist++;
    }
    // Both kinds were met (each about half the time).
    expect(curve).toBeGreaterThan(40);
    expect(twist).toBeGreaterThan(40);

    // One key, one encoding: the top bit set, or u + p, are other spellings of a valid key.
    const valid = b(LIBSIGNAL_SIGNATURE_VECTOR.identityKey);
    expect(isValidIdentityKey(valid)).toBe(true);
    const topBit = Buffer.from(valid);
    topBit[32]! |= 0x80;
    expect(isValidIdentityKey(topBit)).toBe(false);
    let u = 0n;
    for (let i = 32; i >= 1; i--) u = (u << 8n) | BigInt(valid[i]!);
    if (u + P < 2n ** 255n) expect(isValidIdentityKey(key(u + P))).toBe(false);
    expect(isValidIdentityKey(key(P - 1n))).toBe(false);
    expect(isValidIdentityKey(key(P + 5n))).toBe(false);
  });
});
