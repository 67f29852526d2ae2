/**
 * @safechat/sdk end-to-end cryptography: X3DH + Double Ratchet + AES-256-CBC/HMAC-SHA256.
 * The high-level API (api.ts) is what clients use; the lower layers are exported for other
 * implementations' interoperability tests and for the published test vectors.
 */
export {
  buildUploadBundle,
  decodeBundle,
  decryptMessage,
  encryptMessage,
  generatePreKeys,
  hasSession,
  initiateSession,
  rotateSignedPreKey,
  type CryptoStores,
  type DecryptedMessage,
  type DecryptOptions,
  type EncryptedMessage,
  type IncomingMessage,
  type Plaintext,
  type PlaintextType,
  type Routing,
  type UploadBundle,
  type WirePreKeyBundle,
} from './api.js';
export { generateIdentity, generateOneTimePreKey, generateSignedPreKey } from './keys.js';
export { fingerprintDigits, safetyNumber, type FingerprintParty } from './fingerprint.js';
export {
  DecryptionError,
  InvalidBundleError,
  MissingKeyError,
  NoSessionError,
  ReusedBaseKeyError,
  SafeChatCryptoError,
  UntrustedIdentityError,
} from './errors.js';
export { fromBase64, toBase64 } from './bytes.js';
export * as constants from './constants.js';
export * as x3dh from './x3dh.js';
export * as ratchet from './ratchet.js';
export * as envelope from './envelope.js';
export * as session from './session.js';
export * as primitives from './primitives.js';
