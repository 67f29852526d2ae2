/**
 * Every constant of the SafeChat v1 end-to-end protocol, in one place so another implementation
 * (Android, iOS) can copy them. Changing any of them is a wire-format change: bump the version.
 * The protocol is described in docs/decisions/0101-sdk-e2e-protocol.md and packages/sdk/README.md.
 */
import { utf8 } from './bytes.js';

/** Version byte that starts every envelope and every MAC input. */
export const PROTOCOL_VERSION = 0x01;

/** Envelope kinds (byte 1 of the envelope). */
export const ENVELOPE_KIND_MESSAGE = 0x01;
/** A message that also carries the X3DH pre-key header (sent as `type: "key_exchange"`). */
export const ENVELOPE_KIND_PREKEY = 0x02;

/** Lengths in bytes. */
export const KEY_LEN = 32; // X25519 / Ed25519 public and secret keys, DH outputs, root/chain/message keys
export const SIGNATURE_LEN = 64; // Ed25519
export const IV_LEN = 16; // AES-CBC block
export const MAC_LEN = 32; // full HMAC-SHA256 tag, never truncated
export const AES_BLOCK = 16;
export const RATCHET_HEADER_LEN = KEY_LEN + 4 + 4; // dh ‖ pn ‖ n
export const PREKEY_HEADER_LEN = KEY_LEN + KEY_LEN + 4 + 1 + 4; // IK_A ‖ EK_A ‖ spkId ‖ hasOpk ‖ opkId
export const ENVELOPE_FIXED_LEN = 1 + 1 + 4; // version ‖ kind ‖ counter

/** X3DH: F = 32 × 0xFF is prepended to the DH outputs (X3DH spec §2.2, for X25519). */
export const X3DH_F = new Uint8Array(KEY_LEN).fill(0xff);
/** HKDF salt for X3DH and for message keys: HashLen zero bytes (X3DH spec §2.2). */
export const ZERO_SALT = new Uint8Array(32);
export const X3DH_INFO = utf8('SafeChat X3DH v1');
/** X3DH output length (the shared secret SK, the first root key). */
export const X3DH_SK_LEN = 32;

/** KDF_RK: HKDF-SHA256(salt = RK, ikm = DH output, info) → 64 bytes = RK' ‖ CK. */
export const RATCHET_INFO = utf8('SafeChat Ratchet v1');
/** KDF_CK: MK = HMAC-SHA256(CK, 0x01), CK' = HMAC-SHA256(CK, 0x02) (Signal's constants). */
export const CK_MESSAGE_KEY_SEED = Uint8Array.of(0x01);
export const CK_CHAIN_KEY_SEED = Uint8Array.of(0x02);

/** Per-message keys: HKDF-SHA256(salt = 32 × 0x00, ikm = MK, info) → encKey 32 ‖ macKey 32 ‖ iv 16. */
export const MESSAGE_KEYS_INFO = utf8('SafeChat Message Keys v1');
export const MESSAGE_KEYS_LEN = 32 + 32 + 16;

/**
 * Most message keys one incoming message may make us skip in one receiving chain. A header
 * asking for more is rejected (it is either a bug or an attempt to make us burn CPU/memory).
 */
export const MAX_SKIP = 1000;
/** Most skipped message keys stored per session state; the oldest are evicted beyond it. */
export const MAX_STORED_SKIPPED_KEYS = 2000;
/** Earlier session states kept per peer (simultaneous initiation, messages still in flight). */
export const MAX_ARCHIVED_STATES = 10;
/**
 * Base keys (EK_A) of accepted first messages remembered per signed pre-key, so a replayed first
 * message is refused even after its session has left the archive. Local policy, not wire format.
 * Beyond it the oldest is forgotten (never a refusal: anyone who can send us first messages could
 * fill it and lock honest peers out). 10,000 × 44 base64 characters ≈ 440 KB per signed pre-key.
 * See docs/decisions/0102-sdk-replayed-first-messages.md.
 */
export const MAX_SEEN_BASE_KEYS = 10_000;

/** Safety numbers (Signal's NumericFingerprintGenerator, version 0). */
export const FINGERPRINT_VERSION = 0;
export const FINGERPRINT_ITERATIONS = 5200;

/** Message types that travel inside the encrypted payload. */
export const PLAINTEXT_TYPES = ['text', 'image', 'file', 'audio', 'system'] as const;
export type PlaintextType = (typeof PLAINTEXT_TYPES)[number];

/**
 * The outer (server-visible) `type` of a message without a pre-key header. It is a constant
 * cover value: the real type is inside the ciphertext.
 */
export const COVER_TYPE = 'text' as const;
export const KEY_EXCHANGE_TYPE = 'key_exchange' as const;

/** Payload body encodings (inside the ciphertext). */
export const BODY_BINARY = 0x00;
export const BODY_UTF8 = 0x01;
