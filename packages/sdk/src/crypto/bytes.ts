/**
 * Byte helpers: base64 (RFC 4648 §4, strict), big-endian integers, length-prefixed framing.
 * No crypto here; no `Buffer`, so the same code runs in Node 20 and in browsers.
 */

const B64_SHAPE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard, padded base64 of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  // @NOTE chunked so String.fromCharCode never gets more arguments than the engine allows.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/**
 * Decodes canonical, padded base64 (standard alphabet, unused bits zero). Anything else throws:
 * `atob` alone would accept whitespace, missing padding and non-canonical trailing bits, which
 * would let one ciphertext have several encodings.
 */
export function fromBase64(s: string): Uint8Array {
  if (typeof s !== 'string' || !B64_SHAPE.test(s)) throw new TypeError('invalid base64');
  if (s.endsWith('==')) {
    if ((B64_ALPHABET.indexOf(s.charAt(s.length - 3)) & 0x0f) !== 0) throw new TypeError('invalid base64');
  } else if (s.endsWith('=')) {
    if ((B64_ALPHABET.indexOf(s.charAt(s.length - 2)) & 0x03) !== 0) throw new TypeError('invalid base64');
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError('invalid hex');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Strict UTF-8 decoding: malformed input throws instead of turning into U+FFFD. */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export const UINT32_MAX = 0xffff_ffff;

export function isUint32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= UINT32_MAX;
}

/** 4-byte big-endian unsigned integer. */
export function u32be(n: number): Uint8Array {
  if (!isUint32(n)) throw new RangeError('not a uint32');
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

export function readU32be(bytes: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > bytes.length) throw new RangeError('read past end');
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, false);
}

/** `u32be(len) ‖ bytes`: the framing used for every variable-length field under the MAC. */
export function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  return concat(u32be(bytes.length), bytes);
}

/** Best-effort wipe of secret material we own (JS gives no guarantee against copies). */
export function wipe(...arrays: (Uint8Array | undefined)[]): void {
  for (const a of arrays) a?.fill(0);
}
