/** The Double Ratchet on its own: symmetric steps, DH turns, skipped keys and their limits. */
import { describe, expect, it } from 'vitest';
import { toHex } from '../src/crypto/bytes.js';
import { MAX_SKIP, MAX_STORED_SKIPPED_KEYS } from '../src/crypto/constants.js';
import { randomBytes, x25519KeyPair } from '../src/crypto/primitives.js';
import {
  initInitiator,
  initResponder,
  kdfCk,
  ratchetDecryptStep,
  ratchetEncryptStep,
  ratchetFromJSON,
  ratchetToJSON,
  type RatchetState,
} from '../src/crypto/ratchet.js';

function pair(): { a: RatchetState; b: RatchetState } {
  const sk = randomBytes(32);
  const spk = x25519KeyPair();
  return { a: initInitiator(sk, spk.publicKey), b: initResponder(sk, spk) };
}

describe('Double Ratchet', () => {
  it('both sides derive the same message keys through several DH turns', () => {
    const { a, b } = pair();
    for (let turn = 0; turn < 6; turn++) {
      const [s, r] = turn % 2 === 0 ? [a, b] : [b, a];
      for (let i = 0; i < 3; i++) {
        const { header, mk } = ratchetEncryptStep(s);
        expect(toHex(ratchetDecryptStep(r, header))).toBe(toHex(mk));
      }
    }
  });

  it('every message key differs (no reuse across chains)', () => {
    const { a, b } = pair();
    const seen = new Set<string>();
    for (let turn = 0; turn < 4; turn++) {
      const [s, r] = turn % 2 === 0 ? [a, b] : [b, a];
      for (let i = 0; i < 5; i++) {
        const { header, mk } = ratchetEncryptStep(s);
        ratchetDecryptStep(r, header);
        seen.add(toHex(mk));
      }
    }
    expect(seen.size).toBe(20);
  });

  it('the responder cannot send before it has received', () => {
    const { b } = pair();
    expect(() => ratchetEncryptStep(b)).toThrow();
  });

  it('KDF_CK: MK = HMAC(CK, 0x01), CK\' = HMAC(CK, 0x02), and they differ', () => {
    const ck = randomBytes(32);
    const { ck: next, mk } = kdfCk(ck);
    expect(toHex(next)).not.toBe(toHex(mk));
    expect(toHex(kdfCk(ck).mk)).toBe(toHex(mk));
  });

  it('a used key cannot be derived again (replay), a skipped one only once', () => {
    const { a, b } = pair();
    const m0 = ratchetEncryptStep(a);
    const m1 = ratchetEncryptStep(a);
    const m2 = ratchetEncryptStep(a);
    ratchetDecryptStep(b, m2.header);
    expect(b.skipped.length).toBe(2);
    expect(toHex(ratchetDecryptStep(b, m0.header))).toBe(toHex(m0.mk));
    expect(b.skipped.length).toBe(1);
    expect(() => ratchetDecryptStep(b, m0.header)).toThrow();
    expect(() => ratchetDecryptStep(b, m2.header)).toThrow();
    expect(toHex(ratchetDecryptStep(b, m1.header))).toBe(toHex(m1.mk));
    expect(b.skipped.length).toBe(0);
  });

  it('MAX_SKIP bounds one jump; stored skipped keys are capped, oldest evicted first', () => {
    const { a, b } = pair();
    const first = ratchetEncryptStep(a);
    ratchetDecryptStep(b, first.header);
    // a jump of MAX_SKIP + 1 is refused, and leaves the state as it was (callers use a copy, but check anyway)
    const far = { ...first.header, n: 1 + MAX_SKIP + 1 };
    expect(() => ratchetDecryptStep(b, far)).toThrow();

    // fill the store beyond its cap: three chains with MAX_SKIP skipped keys each
    const chains: { header: { dh: Uint8Array; pn: number; n: number }; mk: Uint8Array }[][] = [];
    for (let turn = 0; turn < 3; turn++) {
      const sent = [];
      for (let i = 0; i <= MAX_SKIP; i++) sent.push(ratchetEncryptStep(a));
      ratchetDecryptStep(b, sent[sent.length - 1]!.header);
      chains.push(sent);
      ratchetDecryptStep(a, ratchetEncryptStep(b).header); // Bob answers: Alice's next chain is new
    }
    expect(b.skipped.length).toBe(MAX_STORED_SKIPPED_KEYS);
    const late = chains[2]![5]!;
    expect(toHex(ratchetDecryptStep(b, late.header))).toBe(toHex(late.mk)); // recent ones kept
    // the oldest were evicted: the ratchet can only treat that header as a new DH turn, which
    // yields a key that is not the message's (the MAC check then rejects it; see session tests)
    const old = chains[0]![0]!;
    const fresh = ratchetFromJSON(ratchetToJSON(b));
    expect(toHex(ratchetDecryptStep(fresh, old.header))).not.toBe(toHex(old.mk));
  });

  it('JSON round trip keeps every field; malformed JSON is refused', () => {
    const { a, b } = pair();
    ratchetDecryptStep(b, ratchetEncryptStep(a).header);
    ratchetEncryptStep(a);
    ratchetDecryptStep(b, ratchetEncryptStep(a).header); // one skipped key
    const j = JSON.parse(JSON.stringify(ratchetToJSON(b)));
    const b2 = ratchetFromJSON(j);
    expect(ratchetToJSON(b2)).toEqual(ratchetToJSON(b));
    expect(() => ratchetFromJSON({ ...j, rk: 'AAAA' })).toThrow();
    expect(() => ratchetFromJSON({ ...j, ns: -1 })).toThrow();
    expect(() => ratchetFromJSON({ ...j, skipped: [['x', 1]] })).toThrow();
  });
});
