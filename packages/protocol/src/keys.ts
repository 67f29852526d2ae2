import { z } from 'zod';
import { base64Bytes, Id, PublicKey } from './primitives.js';

/** A pre-key id, chosen by the client: an unsigned 32-bit integer. */
export const KeyId = z.number().int().min(0).max(0xffffffff);

export const MAX_PREKEYS_PER_UPLOAD = 100;
export const MAX_STORED_PREKEYS = 500;
/** `prekeys.low` is sent to the owner, once per upload, when a claim leaves fewer than this many one-time pre-keys. */
export const PREKEY_LOW_THRESHOLD = 10;

export const SignedPreKey = z.strictObject({
  keyId: KeyId,
  publicKey: PublicKey.describe('X25519 public key, base64, in the identity key’s encoding: 32 raw bytes beside an Ed25519 identity key, 33 with the type byte 0x05 in front beside a Curve25519 one (libsignal)'),
  signature: base64Bytes({ lengths: [64] }).describe(
    'signature by the identity key over the publicKey bytes as uploaded, base64: Ed25519 for a 32-byte identity key, XEdDSA (as libsignal computes it) for a 33-byte one',
  ),
});
export type SignedPreKey = z.infer<typeof SignedPreKey>;

export const OneTimePreKey = z.strictObject({
  keyId: KeyId,
  publicKey: PublicKey.describe('X25519 public key, base64, in the identity key’s encoding: 32 raw bytes beside an Ed25519 identity key, 33 with the type byte 0x05 in front beside a Curve25519 one (libsignal)'),
});
export type OneTimePreKey = z.infer<typeof OneTimePreKey>;

export const UploadKeysBody = z.strictObject({
  identityKey: PublicKey.describe(
    "identity public key (becomes the user's publicKey), base64: 32 bytes = Ed25519; 33 bytes starting 0x05 = Curve25519 with XEdDSA signatures (libsignal)",
  ),
  signedPreKey: SignedPreKey,
  oneTimePreKeys: z.array(OneTimePreKey).max(MAX_PREKEYS_PER_UPLOAD).default([]),
});
export type UploadKeysBody = z.infer<typeof UploadKeysBody>;

export const PreKeyBundle = z.object({
  userId: Id,
  identityKey: z.string(),
  signedPreKey: z.object({ keyId: z.number().int(), publicKey: z.string(), signature: z.string() }),
  oneTimePreKey: z.object({ keyId: z.number().int(), publicKey: z.string() }).optional(),
});
export type PreKeyBundle = z.infer<typeof PreKeyBundle>;

export const KeyCount = z.object({ oneTimePreKeys: z.number().int() });
export type KeyCount = z.infer<typeof KeyCount>;

export const KeysUserParams = z.strictObject({ userId: Id });
