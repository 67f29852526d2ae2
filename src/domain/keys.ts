import { MAX_STORED_PREKEYS, PREKEY_LOW_THRESHOLD, type KeyCount, type PreKeyBundle, type UploadKeysBody } from '@safechat/protocol';
import type { Logger } from 'pino';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import type { RateLimiter } from '../limits/limiter.js';
import type { Database } from '../storage/db.js';
import { resetEncryptionStatus } from '../storage/repositories/chats.js';
import {
  addOneTimePrekeys,
  claimOneTimePrekey,
  countOneTimePrekeys,
  deleteOneTimePrekeys,
  findSignedPrekey,
  markLowNotified,
  upsertSignedPrekey,
} from '../storage/repositories/prekeys.js';
import { findUserById, setPublicKey } from '../storage/repositories/users.js';
import type { Clock } from '../util/clock.js';
import type { Mailbox } from './mailbox.js';
import { isValidIdentityKey, isValidX25519PublicKey, verifyIdentitySignature, x25519Bytes } from './public-keys.js';

const bytes = (b64: string) => Buffer.from(b64, 'base64');

function invalidKey(path: (string | number)[], message: string): ValidationError {
  return new ValidationError(message, [{ path, message, reason: 'invalid_key' }]);
}

/** A pre-key in the identity key's encoding (32 raw bytes beside Ed25519, 0x05 + 32 beside Curve25519), not of small order. */
const isValidPreKey = (key: Uint8Array, identity: Uint8Array): boolean => {
  const u = key.length === identity.length ? x25519Bytes(key) : null;
  return u !== null && isValidX25519PublicKey(u);
};
const PRE_KEY_RULE = 'a valid X25519 public key in the identity key’s encoding (32 raw bytes with an Ed25519 identity key, 0x05 + 32 with a Curve25519 one)';

/**
 * Checks an upload: real curve points, a signed pre-key signed by the identity key over its bytes
 * as uploaded (Ed25519 or, for a 0x05-prefixed Curve25519 identity key, XEdDSA), unique ids.
 */
function checkUpload(body: UploadKeysBody): void {
  const identity = bytes(body.identityKey);
  if (!isValidIdentityKey(identity)) throw invalidKey(['identityKey'], 'identityKey is not a valid Ed25519 (32 bytes) or Curve25519 (33 bytes, 0x05 first) public key');
  const spk = bytes(body.signedPreKey.publicKey);
  if (!isValidPreKey(spk, identity)) throw invalidKey(['signedPreKey', 'publicKey'], `signedPreKey.publicKey must be ${PRE_KEY_RULE}`);
  if (!verifyIdentitySignature(identity, spk, bytes(body.signedPreKey.signature))) {
    throw new ValidationError('signedPreKey.signature does not verify with identityKey', [
      { path: ['signedPreKey', 'signature'], message: 'bad signature', reason: 'invalid_signature' },
    ]);
  }
  const ids = new Set<number>();
  body.oneTimePreKeys.forEach((k, i) => {
    if (ids.has(k.keyId)) throw new ValidationError('oneTimePreKeys has a repeated keyId', [{ path: ['oneTimePreKeys', i, 'keyId'], message: 'repeated keyId', reason: 'duplicate_key_id' }]);
    ids.add(k.keyId);
    if (!isValidPreKey(bytes(k.publicKey), identity)) throw invalidKey(['oneTimePreKeys', i, 'publicKey'], `must be ${PRE_KEY_RULE}`);
  });
}

/**
 * The public-key directory: identity key (the user's publicKey), one signed pre-key, and
 * one-time pre-keys, each handed out at most once. Nothing private is ever accepted or stored.
 */
export class KeyService {
  constructor(
    private readonly deps: { db: Database; mailbox: Mailbox; limiter: RateLimiter; clock: Clock; log: Logger },
  ) {}

  async upload(userId: string, body: UploadKeysBody): Promise<KeyCount> {
    checkUpload(body);
    const { db, limiter, clock, log } = this.deps;
    await limiter.consume('keyUploadsPerUser', userId);
    // A change of identity key has its own, tight limit: it writes to every contact's log. Taken
    // before the transaction (a limiter may be remote); a change the transaction finds that was
    // not charged here (another upload got in between) is refused, so none goes uncounted.
    const before = await findUserById(db.db, userId);
    const charged = before?.public_key != null && before.public_key !== body.identityKey;
    if (charged) await limiter.consume('identityChangesPerUser', userId, 1, 'the identity key changed too often, retry later');
    const now = clock.now();
    let result: { changed: boolean; count: number };
    try {
      result = await this.store(userId, body, now, charged);
    } catch (err) {
      if (charged) await limiter.refund('identityChangesPerUser', userId);
      throw err;
    }
    if (charged && !result.changed) await limiter.refund('identityChangesPerUser', userId);
    log.info({ userId, identityChanged: result.changed, oneTimePreKeys: result.count }, 'keys uploaded');
    return { oneTimePreKeys: result.count };
  }

  private async store(userId: string, body: UploadKeysBody, now: number, charged: boolean): Promise<{ changed: boolean; count: number }> {
    const { db, mailbox } = this.deps;
    return db.transaction(async (tx) => {
      const user = await findUserById(tx.db, userId);
      if (!user) throw new NotFoundError('user not found');
      const changed = user.public_key !== null && user.public_key !== body.identityKey;
      if (changed && !charged) throw new ConflictError('the identity key changed meanwhile; upload again');
      if (user.public_key !== body.identityKey) await setPublicKey(tx.db, userId, body.identityKey);
      if (changed) {
        // Pre-keys signed by the old identity are worthless now; contacts must re-verify.
        await deleteOneTimePrekeys(tx.db, userId);
        await resetEncryptionStatus(tx.db, userId);
        await mailbox.appendToContacts(tx, userId, 'key.changed', { userId });
      }
      await upsertSignedPrekey(tx.db, {
        user_id: userId,
        key_id: body.signedPreKey.keyId,
        public_key: body.signedPreKey.publicKey,
        signature: body.signedPreKey.signature,
        created_at: now,
        low_notified_at: null,
      });
      const stored = await countOneTimePrekeys(tx.db, userId);
      if (stored + body.oneTimePreKeys.length > MAX_STORED_PREKEYS) {
        throw new ValidationError(`at most ${MAX_STORED_PREKEYS} one-time pre-keys may be stored`, [{ path: ['oneTimePreKeys'], reason: 'too_many_prekeys' }]);
      }
      await addOneTimePrekeys(tx.db, body.oneTimePreKeys.map((k) => ({ user_id: userId, key_id: k.keyId, public_key: k.publicKey, created_at: now })));
      return { changed, count: await countOneTimePrekeys(tx.db, userId) };
    });
  }

  /** A pre-key bundle for starting a session with `userId`, consuming one one-time pre-key if any is left. */
  async bundle(requesterId: string, userId: string): Promise<PreKeyBundle> {
    const { db, mailbox, limiter, clock } = this.deps;
    if (requesterId === userId) throw new ValidationError('a session is started with someone else’s keys', [{ path: ['userId'], reason: 'own_keys' }]);
    await limiter.consume('keyClaimsPerUser', requesterId);
    return db.transaction(async (tx) => {
      const user = await findUserById(tx.db, userId);
      const spk = user?.public_key ? await findSignedPrekey(tx.db, userId) : undefined;
      if (!user?.public_key || !spk) throw new NotFoundError('this user has no keys');
      const bundle: PreKeyBundle = {
        userId,
        identityKey: user.public_key,
        signedPreKey: { keyId: Number(spk.key_id), publicKey: spk.public_key, signature: spk.signature },
      };
      const otk = await claimOneTimePrekey(tx.db, userId);
      if (otk) {
        bundle.oneTimePreKey = { keyId: Number(otk.key_id), publicKey: otk.public_key };
        const remaining = await countOneTimePrekeys(tx.db, userId);
        // Once per refill cycle: the owner's next upload re-arms it.
        if (remaining < PREKEY_LOW_THRESHOLD && (await markLowNotified(tx.db, userId, clock.now()))) {
          await mailbox.append(tx, userId, 'prekeys.low', { remaining });
        }
      }
      return bundle;
    });
  }

  async count(userId: string): Promise<KeyCount> {
    return { oneTimePreKeys: await countOneTimePrekeys(this.deps.db.db, userId) };
  }
}
