import { generateKeyPairSync, sign } from 'node:crypto';
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
});
