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

/**
 * A first (pre-key) message whose base key (EK_A) was already accepted under the same signed
 * pre-key, and whose session is no longer held: a replay (by the server or anyone who can inject
 * into the transport), refused before any key is used. A DecryptionError, so code that handles
 * DecryptionError is unchanged; the distinct name is for logs and alerts. It is decided from
 * public header fields only, so it is no decryption oracle.
 */
export class ReusedBaseKeyError extends DecryptionError {
  override name = 'ReusedBaseKeyError';
  constructor() {
    super();
    this.message = 'first message replayed: its base key was already used';
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

/**
 * A pre-key message authenticated, but the `trustIdentity` hook refused the sender's identity
 * key (e.g. it differs from the server's `publicKey` for that user, or from a pinned key).
 * Nothing was stored or consumed. Not a decryption oracle: the key is public header data.
 */
export class UntrustedIdentityError extends SafeChatCryptoError {
  override name = 'UntrustedIdentityError';
  constructor(
    readonly peerUserId: string,
    /** base64 Ed25519 identity key the message came with. */
    readonly identityKey: string,
  ) {
    super('untrusted identity key');
  }
}

/** The local key store has no identity (or no signed pre-key) yet. */
export class MissingKeyError extends SafeChatCryptoError {
  override name = 'MissingKeyError';
}
