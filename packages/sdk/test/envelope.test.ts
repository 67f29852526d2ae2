/** Envelope encoding, payload encoding and encrypt-then-MAC, in isolation. */
import { describe, expect, it } from 'vitest';
import { concat, fromBase64, toBase64, u32be } from '../src/crypto/bytes.js';
import {
  ENVELOPE_FIXED_LEN,
  PREKEY_HEADER_LEN,
  RATCHET_HEADER_LEN,
} from '../src/crypto/constants.js';
import {
  decodeEnvelope,
  decodePayload,
  decodePreKeyHeader,
  encodeEnvelope,
  encodePayload,
  encodePreKeyHeader,
  openMessage,
  sealMessage,
  type Envelope,
} from '../src/crypto/envelope.js';
import { DecryptionError } from '../src/crypto/errors.js';
import { randomBytes } from '../src/crypto/primitives.js';

const routing = { senderId: 'alice', receiverId: 'bob', chatId: 'chat-1' };
const header = { dh: randomBytes(32), pn: 7, n: 3 };
const preKey = { identityKey: randomBytes(32), baseKey: randomBytes(32), signedPreKeyId: 5, oneTimePreKeyId: 9 };

describe('envelope encoding', () => {
  it('round-trips with and without a pre-key header, at the documented offsets', () => {
    for (const pk of [null, preKey, { ...preKey, oneTimePreKeyId: null }]) {
      const e: Envelope = { version: 1, counter: 0x01020304, header, preKey: pk, ciphertext: randomBytes(32) };
      const bytes = encodeEnvelope(e);
      expect(bytes.length).toBe(ENVELOPE_FIXED_LEN + RATCHET_HEADER_LEN + (pk ? PREKEY_HEADER_LEN : 0) + 32);
      expect([...bytes.subarray(0, 6)]).toEqual([1, pk ? 2 : 1, 1, 2, 3, 4]);
      expect(bytes.subarray(6, 38)).toEqual(header.dh);
      expect(decodeEnvelope(bytes)).toEqual(e);
    }
  });

  it('rejects every malformed envelope', () => {
    const good = encodeEnvelope({ version: 1, counter: 0, header, preKey, ciphertext: randomBytes(16) });
    const bad = (mutate: (b: Uint8Array) => Uint8Array) => () => decodeEnvelope(mutate(Uint8Array.from(good)));
    expect(bad((b) => ((b[0] = 2), b))).toThrow(); // version
    expect(bad((b) => ((b[1] = 3), b))).toThrow(); // kind
    expect(bad((b) => ((b[1] = 1), b))).toThrow(); // kind says no pre-key header: 73 + 16 bytes is not whole blocks
    expect(bad((b) => b.subarray(0, 20))).toThrow(); // short
    expect(bad((b) => b.subarray(0, b.length - 16))).toThrow(); // no ciphertext
    expect(bad((b) => b.subarray(0, b.length - 1))).toThrow(); // partial block
    expect(bad((b) => ((b[6 + 40 + 68] = 2), b))).toThrow(); // hasOpk flag neither 0 nor 1
  });

  it('pre-key header: no one-time pre-key means flag 0 and id 0, anything else is refused', () => {
    const enc = encodePreKeyHeader({ ...preKey, oneTimePreKeyId: null });
    expect(decodePreKeyHeader(enc).oneTimePreKeyId).toBeNull();
    const forged = concat(enc.subarray(0, 69), u32be(7));
    expect(() => decodePreKeyHeader(forged)).toThrow();
  });
});

describe('payload encoding', () => {
  it('text and binary bodies keep their kind', () => {
    expect(decodePayload(encodePayload({ type: 'text', body: 'héllo ✓' }))).toEqual({ type: 'text', body: 'héllo ✓' });
    const bin = randomBytes(100);
    expect(decodePayload(encodePayload({ type: 'file', body: bin }))).toEqual({ type: 'file', body: bin });
    expect(decodePayload(encodePayload({ type: 'audio', body: '' }))).toEqual({ type: 'audio', body: '' });
  });

  it('refuses key_exchange or unknown types, and malformed payloads', () => {
    expect(() => encodePayload({ type: 'key_exchange' as 'text', body: 'x' })).toThrow();
    expect(() => decodePayload(new Uint8Array([4, 0x74, 0x65, 0x78]))).toThrow();
    expect(() => decodePayload(concat(new Uint8Array([4]), new TextEncoder().encode('text'), new Uint8Array([9])))).toThrow();
    expect(() => decodePayload(concat(new Uint8Array([4]), new TextEncoder().encode('text'), new Uint8Array([1, 0xff])))).toThrow(); // bad UTF-8
  });
});

describe('encrypt-then-MAC', () => {
  const ad = randomBytes(64);
  const mk = randomBytes(32);
  const seal = () => sealMessage({ mk, ad, routing: { ...routing, counter: 4 }, header, preKey: null, plaintext: { type: 'text', body: 'secret' } });

  it('opens what it sealed; the IV is derived from the message key', () => {
    const s = seal();
    expect(s.iv.length).toBe(16);
    expect(s.mac.length).toBe(32);
    expect(openMessage({ mk, ad, routing, envelope: decodeEnvelope(s.envelope), iv: s.iv, mac: s.mac })).toEqual({ type: 'text', body: 'secret' });
    expect(toBase64(seal().iv)).toBe(toBase64(s.iv));
  });

  it('every mismatch throws the same DecryptionError, with the same message', () => {
    const s = seal();
    const env = decodeEnvelope(s.envelope);
    const attempts = [
      () => openMessage({ mk: randomBytes(32), ad, routing, envelope: env, iv: s.iv, mac: s.mac }),
      () => openMessage({ mk, ad: randomBytes(64), routing, envelope: env, iv: s.iv, mac: s.mac }),
      () => openMessage({ mk, ad, routing: { ...routing, chatId: 'chat-2' }, envelope: env, iv: s.iv, mac: s.mac }),
      () => openMessage({ mk, ad, routing, envelope: { ...env, counter: 5 }, iv: s.iv, mac: s.mac }),
      () => openMessage({ mk, ad, routing, envelope: { ...env, header: { ...header, n: 4 } }, iv: s.iv, mac: s.mac }),
      () => openMessage({ mk, ad, routing, envelope: { ...env, preKey }, iv: s.iv, mac: s.mac }),
      () => openMessage({ mk, ad, routing, envelope: env, iv: randomBytes(16), mac: s.mac }),
      () => openMessage({ mk, ad, routing, envelope: env, iv: s.iv, mac: s.mac.subarray(0, 16) }),
      () => openMessage({ mk, ad, routing, envelope: env, iv: s.iv.subarray(0, 12), mac: s.mac }),
    ];
    for (const f of attempts) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DecryptionError);
      expect((err as Error).message).toBe('message could not be decrypted');
      expect((err as Error).cause).toBeUndefined();
    }
  });

  it('length prefixes make the MAC input unambiguous (moving bytes between ids changes it)', () => {
    const a = sealMessage({ mk, ad, routing: { senderId: 'ab', receiverId: 'c', chatId: 'x', counter: 0 }, header, preKey: null, plaintext: { type: 'text', body: 'm' } });
    const b = sealMessage({ mk, ad, routing: { senderId: 'a', receiverId: 'bc', chatId: 'x', counter: 0 }, header, preKey: null, plaintext: { type: 'text', body: 'm' } });
    expect(toBase64(a.mac)).not.toBe(toBase64(b.mac));
    expect(toBase64(a.envelope)).toBe(toBase64(b.envelope));
  });

  it('the ciphertext is whole AES blocks and reveals only the padded length', () => {
    for (const len of [0, 1, 9, 10, 100]) {
      const s = sealMessage({ mk, ad, routing: { ...routing, counter: 0 }, header, preKey: null, plaintext: { type: 'text', body: 'x'.repeat(len) } });
      const ct = decodeEnvelope(s.envelope).ciphertext;
      expect(ct.length % 16).toBe(0);
      expect(ct.length).toBe(Math.floor((len + 6) / 16) * 16 + 16); // 1 + "text" + 1 = 6 bytes of framing
    }
  });

  it('wire fields are canonical base64', () => {
    const s = seal();
    expect(fromBase64(toBase64(s.envelope))).toEqual(s.envelope);
    expect(() => fromBase64(toBase64(s.iv).replace('=', ''))).toThrow();
  });
});
