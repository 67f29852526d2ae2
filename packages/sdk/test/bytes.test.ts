/** The byte helpers, checked against Node's Buffer (which the SDK itself does not use). */
import { describe, expect, it } from 'vitest';
import { fromBase64, fromHex, fromUtf8, lengthPrefixed, readU32be, toBase64, toHex, u32be } from '../src/crypto/bytes.js';
import { randomBytes } from '../src/crypto/primitives.js';

describe('bytes', () => {
  it('base64 matches Buffer for every length up to 70 and for a large input', () => {
    for (let n = 0; n <= 70; n++) {
      const b = randomBytes(n);
      const s = Buffer.from(b).toString('base64');
      expect(toBase64(b)).toBe(s);
      expect(fromBase64(s)).toEqual(b);
    }
    const big = randomBytes(65536);
    expect(toBase64(big)).toBe(Buffer.from(big).toString('base64'));
  });

  it('base64 decoding is strict', () => {
    for (const bad of ['A', 'AA', 'AAA', 'AA=', 'AB==', 'AAB=', 'A A=', 'AA==\n', '****', 'AA-_']) expect(() => fromBase64(bad)).toThrow();
    expect(fromBase64('')).toEqual(new Uint8Array(0));
  });

  it('integers, hex, UTF-8, framing', () => {
    expect(toHex(u32be(0xdeadbeef))).toBe('deadbeef');
    expect(readU32be(fromHex('00deadbeef'), 1)).toBe(0xdeadbeef);
    expect(() => u32be(2 ** 32)).toThrow();
    expect(() => u32be(-1)).toThrow();
    expect(() => u32be(1.5)).toThrow();
    expect(toHex(lengthPrefixed(fromHex('abcd')))).toBe('00000002abcd');
    expect(() => fromUtf8(new Uint8Array([0xc3]))).toThrow();
    expect(() => fromHex('abc')).toThrow();
  });
});
