/** Error types of the SDK's crypto layer. */

export class SafeChatCryptoError extends Error {
  override name = 'SafeChatCryptoError';
}

/**
 * The one error every decryption failure throws: malformed envelope, unknown pre-key, bad MAC,
 * replayed or too-far-ahead message, bad padding, no session. It carries no detail on purpose
 * (no padding or MAC oracle). The original cause is not attached either.
 */
export class DecryptionError extends SafeChatCryptoError {
  override name = 'DecryptionError';
  constructor() {
    super('message could not be decrypted');
  }
}

/** A peer's pre-key bundle is malformed or its signed pre-key signature does not verify. */
export class InvalidBundleError extends SafeChatCryptoError {
  override name = 'InvalidBundleError';
}

/** `encryptMessage` to a peer with no session: fetch their bundle and call `initiateSession`. */
export class NoSessionError extends SafeChatCryptoError {
  override name = 'NoSessionError';
  constructor(readonly peerUserId: string) {
    super('no session with this peer');
  }
}

/** The local key store has no identity (or no signed pre-key) yet. */
export class MissingKeyError extends SafeChatCryptoError {
  override name = 'MissingKeyError';
}
