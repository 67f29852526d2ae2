import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { commonPasswordCount, isCommonPassword } from './passwords.js';

const listed = fs
  .readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line !== '');

describe('common-password list', () => {
  it('ships at least 3,000 entries, including at least 3,000 that satisfy the 8-character minimum', () => {
    expect(listed.length).toBeGreaterThanOrEqual(3_000);
    expect(commonPasswordCount()).toBe(listed.length);
    expect(listed.filter((p) => p.length >= 8).length).toBeGreaterThanOrEqual(3_000);
  });

  it('is lower-case, de-duplicated and has no blank or padded lines', () => {
    expect(new Set(listed).size).toBe(listed.length);
    for (const p of listed) {
      expect(p).toBe(p.normalize('NFKC').toLowerCase());
      expect(p).toBe(p.trim());
    }
  });

  it('treats 20 sampled entries of 8+ characters as common', () => {
    const eligible = listed.filter((p) => p.length >= 8);
    const step = Math.floor(eligible.length / 20);
    const sample = Array.from({ length: 20 }, (_, i) => eligible[i * step] as string);
    expect(new Set(sample).size).toBe(20);
    for (const p of sample) expect(isCommonPassword(p), p).toBe(true);
  });

  it('matches case-insensitively and after NFKC normalisation', () => {
    expect(isCommonPassword('PASSWORD')).toBe(true);
    expect(isCommonPassword('PassWord1')).toBe(true);
    expect(isCommonPassword('P@SSW0RD')).toBe(true);
    expect(isCommonPassword('ＱｗｅｒｔｙＵｉｏｐ')).toBe(true); // full-width forms
  });

  it('treats a single repeated character as common at any length', () => {
    expect(isCommonPassword('aaaaaaaa')).toBe(true);
    expect(isCommonPassword('ZZZZZZZZZZZZZZZZZZZZZ')).toBe(true);
    expect(isCommonPassword('😀😀😀😀😀😀😀😀')).toBe(true);
    expect(isCommonPassword('')).toBe(true);
  });

  it('does not flag a random strong passphrase', () => {
    const passphrase = `${randomBytes(6).toString('hex')}-Correct-${randomBytes(6).toString('base64url')}-staple`;
    expect(isCommonPassword(passphrase)).toBe(false);
    expect(isCommonPassword('aaaaaaab')).toBe(false);
  });
});
