import { randomBytes } from 'node:crypto';
import { base64ByteLength, isCanonicalBase64 } from '@safechat/protocol';
import { describe, expect, it } from 'vitest';

// The reference: a string is canonical base64 exactly when Node's encoder gives it back from the
// bytes Node's (lenient) decoder reads out of it.
const canonical = (s: string): boolean => Buffer.from(s, 'base64').toString('base64') === s;

describe('isCanonicalBase64 (RFC 4648 §4: standard alphabet, padded, unused bits zero)', () => {
  it('accepts every encoding of 0–64 random bytes and reads its length back', () => {
    for (let n = 0; n <= 64; n++) {
      const s = randomBytes(n).toString('base64');
      expect(isCanonicalBase64(s), s).toBe(true);
      expect(base64ByteLength(s)).toBe(n);
    }
  });

  it('refuses the near misses', () => {
    for (const s of [
      'QR==', // unused bits set (canonical: QQ==)
      'QUF=', // unused bits set (canonical: QUE=)
      'QQ', // unpadded
      'QQ=', // short padding
      'QQ===', // too much padding
      '====',
      'A===',
      'QQ==QQ==', // padding inside
      'ab-_', // URL-safe alphabet
      'ab c',
      'abc\n',
      'abcé',
      'abc\u0100',
    ]) {
      expect(isCanonicalBase64(s), JSON.stringify(s)).toBe(false);
    }
  });

  it('agrees with the reference on 20,000 random strings, valid and not', () => {
    const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ é';
    let valid = 0;
    for (let k = 0; k < 20_000; k++) {
      let s: string;
      if (k % 2 === 0) {
        s = randomBytes(k % 11).toString('base64');
        // Every other one gets one character replaced.
        if (k % 4 === 0 && s.length > 0) {
          const i = k % s.length;
          s = s.slice(0, i) + chars[k % chars.length] + s.slice(i + 1);
        }
      } else {
        s = '';
        for (let i = 0; i < k % 9; i++) s += chars[(k * 7 + i * 13) % chars.length];
      }
      if (canonical(s)) valid++;
      expect(isCanonicalBase64(s), JSON.stringify(s)).toBe(canonical(s));
    }
    expect(valid).toBeGreaterThan(5_000);
  });
});
