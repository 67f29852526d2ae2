/** Safety numbers. (The fixed-key value is in safechat-v1.json and recomputed with Node there.) */
import { describe, expect, it } from 'vitest';
import { fingerprintDigits, generateIdentity, safetyNumber, toBase64 } from '../src/index.js';

describe('safety numbers', () => {
  const alice = { userId: 'alice-id', identityKey: generateIdentity().publicKey };
  const bob = { userId: 'bob-id', identityKey: generateIdentity().publicKey };

  it('60 digits in 12 groups of 5, the same on both sides', () => {
    const n = safetyNumber(alice, bob);
    expect(n).toMatch(/^\d{5}( \d{5}){11}$/);
    expect(safetyNumber(bob, alice)).toBe(n);
    // base64 keys (as the server shows them) give the same number
    expect(safetyNumber({ ...alice, identityKey: toBase64(alice.identityKey) }, { ...bob, identityKey: toBase64(bob.identityKey) })).toBe(n);
  });

  it('changes when either key or user id changes; stable otherwise', () => {
    const n = safetyNumber(alice, bob);
    expect(safetyNumber(alice, bob)).toBe(n);
    expect(safetyNumber(alice, { ...bob, identityKey: generateIdentity().publicKey })).not.toBe(n);
    expect(safetyNumber({ ...alice, identityKey: generateIdentity().publicKey }, bob)).not.toBe(n);
    expect(safetyNumber(alice, { ...bob, userId: 'mallory-id' })).not.toBe(n);
    const flipped = Uint8Array.from(bob.identityKey);
    flipped[31]! ^= 1;
    expect(safetyNumber(alice, { ...bob, identityKey: flipped })).not.toBe(n);
  });

  it('each half is 30 digits and belongs to one user', () => {
    const a = fingerprintDigits(alice);
    expect(a).toMatch(/^\d{30}$/);
    expect(safetyNumber(alice, bob).replaceAll(' ', '')).toContain(a);
    expect(() => fingerprintDigits({ ...alice, identityKey: new Uint8Array(31) })).toThrow();
  });
});
