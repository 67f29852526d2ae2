import { z } from 'zod';

// @NOTE Strict RFC 4648 §4 base64: standard alphabet, padded, canonical (unused bits zero).
// Node's decoder silently skips bad characters, so shape is checked here, before anything decodes.
// Shape = whole quads of the alphabet, at most two '=' and only at the end. A table lookup per
// character: ~0.8 µs for a 344-character ciphertext against ~2.1 µs for the equivalent regex
// (`/^[A-Za-z0-9+/]*={0,2}$/`), which had become 3 % of the server's send path.
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const PAD = 0x3d;
/** Character code → its 6-bit value + 1; 0 = not in the alphabet (codes past 127 never are). */
const VALUE = new Uint8Array(128);
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i + 1;

export function isCanonicalBase64(s: string): boolean {
  const n = s.length;
  if (n % 4 !== 0) return false;
  let end = n;
  if (n > 0 && s.charCodeAt(n - 1) === PAD) end = s.charCodeAt(n - 2) === PAD ? n - 2 : n - 1;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || VALUE[c] === 0) return false;
  }
  // The bits a padded tail leaves unused must be zero.
  if (end === n - 2) return ((VALUE[s.charCodeAt(end - 1)]! - 1) & 0x0f) === 0;
  if (end === n - 1) return ((VALUE[s.charCodeAt(end - 1)]! - 1) & 0x03) === 0;
  return true;
}

/** Decoded byte length of a base64 string that passed {@link isCanonicalBase64}. */
export function base64ByteLength(s: string): number {
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

/** Canonical base64 whose decoded length is one of `lengths` (or within [min, max]). */
export function base64Bytes(opts: { lengths?: number[]; min?: number; max?: number; maxChars?: number }) {
  const maxChars = opts.maxChars ?? Math.ceil(((opts.max ?? Math.max(...(opts.lengths ?? [0]))) * 4) / 3) + 4;
  return z
    .string()
    .max(maxChars)
    .superRefine((s, ctx) => {
      if (!isCanonicalBase64(s)) {
        ctx.addIssue({ code: 'custom', message: 'must be canonical padded base64 (RFC 4648 §4)', params: { reason: 'invalid_base64' } });
        return;
      }
      const n = base64ByteLength(s);
      if (opts.lengths && !opts.lengths.includes(n)) {
        ctx.addIssue({ code: 'custom', message: `must decode to ${opts.lengths.join(' or ')} bytes`, params: { reason: 'invalid_length' } });
      } else if ((opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
        ctx.addIssue({ code: 'custom', message: `must decode to ${opts.min ?? 0}..${opts.max ?? '∞'} bytes`, params: { reason: 'invalid_length' } });
      }
    });
}

/** Server-assigned ids: UUIDs (v7, time-ordered), lower-case hex. */
export const Id = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be an id (lower-case UUID)');

export const Username = z
  .string()
  .min(3)
  .max(32)
  .regex(/^[A-Za-z0-9_.-]+$/, 'may contain only letters, digits, "_", "." and "-"');

/** Any Unicode text, 8–256 characters, but well-formed (no lone surrogates) and without NUL. */
export const Password = z
  .string()
  .min(8)
  .max(256)
  .refine((s) => s.isWellFormed() && !s.includes('\u0000'), 'must be well-formed Unicode without NUL characters');

export const ClientMessageId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._:-]+$/, 'may contain only letters, digits and "._:-"');

/** 32-byte public key (Ed25519 identity key or X25519 pre-key), base64. */
export const PublicKey32 = base64Bytes({ lengths: [32] });

/** libsignal's type byte in front of a serialized Curve25519 (X25519) public key. */
export const DJB_KEY_TYPE = 0x05;

/**
 * A public key as 32 raw bytes, or as libsignal serializes a Curve25519 key: 33 bytes, the first
 * one 0x05 (decision 0019). Which curve 32 bytes are depends on the field.
 */
export const PublicKey = base64Bytes({ lengths: [32, 33] }).refine(
  (s) => !(isCanonicalBase64(s) && base64ByteLength(s) === 33) || firstByte(s) === DJB_KEY_TYPE,
  { message: 'a 33-byte key must start with the type byte 0x05 (a Curve25519 key as libsignal serializes it)', params: { reason: 'invalid_key' } },
);

/** The first decoded byte of canonical base64 (its first 8 bits: 6 from the first character, 2 from the second). */
function firstByte(s: string): number {
  return ((VALUE[s.charCodeAt(0)]! - 1) << 2) | ((VALUE[s.charCodeAt(1)]! - 1) >> 4);
}

export const Timestamp = z.string().describe('ISO 8601 UTC timestamp');

/** Event cursors are opaque to clients; they are decimal strings today. */
export const Cursor = z.string().regex(/^(0|[1-9][0-9]{0,15})$/, 'must be a cursor received from the server');
