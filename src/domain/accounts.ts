import type { AuthResponse, ChangePasswordBody, LoginBody, RegisterBody, TokenPair } from '@safechat/protocol';
import type { Logger } from 'pino';
import { ConflictError, UnauthorizedError, ValidationError } from '../errors.js';
import type { RateLimiter } from '../limits/limiter.js';
import { isUniqueViolation } from '../storage/dialect.js';
import type { Database } from '../storage/db.js';
import { forgetUnreadFrom } from '../storage/repositories/chats.js';
import { deleteUser, findUserById, findUserByUsername, insertUser, setPasswordHash, type UserRow } from '../storage/repositories/users.js';
import type { Clock } from '../util/clock.js';
import { uuidv7 } from '../util/ids.js';
import type { PasswordHasher } from './password-hasher.js';
import { isCommonPassword } from './passwords.js';
import { isValidIdentityKey } from './public-keys.js';
import type { TokenService } from './tokens.js';
import { toUser } from './wire.js';

const BAD_LOGIN = 'invalid username or password';
const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

export class AccountService {
  constructor(
    private readonly deps: {
      db: Database;
      hasher: PasswordHasher;
      tokens: TokenService;
      limiter: RateLimiter;
      clock: Clock;
      log: Logger;
      /** Told after an account is deleted (caches that name the user). */
      deleted?: (userId: string) => void;
    },
  ) {}

  async register(body: RegisterBody, ip: string): Promise<AuthResponse> {
    const { db, hasher, tokens, limiter, clock, log } = this.deps;
    await limiter.consume('registerPerIp', ip);
    if (isCommonPassword(body.password) || body.password.toLowerCase() === body.username.toLowerCase()) {
      throw new ValidationError('password is too common; choose a longer or less predictable one', [
        { path: ['password'], reason: 'weak_password' },
      ]);
    }
    if (body.publicKey !== undefined && !isValidIdentityKey(Buffer.from(body.publicKey, 'base64'))) {
      throw new ValidationError('publicKey is not a valid Ed25519 (32 bytes) or Curve25519 (33 bytes, 0x05 first) public key', [{ path: ['publicKey'], reason: 'invalid_key' }]);
    }
    if (await findUserByUsername(db.db, body.username)) await this.usernameTaken(ip);
    const passwordHash = await hasher.hash(body.password);
    const now = clock.now();
    const row = { id: uuidv7(now), username: body.username, username_lower: body.username.toLowerCase(), password_hash: passwordHash, public_key: body.publicKey ?? null, created_at: now };
    try {
      const pair = await db.transaction(async (tx) => {
        await insertUser(tx.db, row);
        return tokens.startSession(tx, row.id);
      });
      log.info({ userId: row.id, ip }, 'user registered');
      return { user: toUser(row), ...pair };
    } catch (err) {
      if (isUniqueViolation(err, 'users_username_lower_key')) return this.usernameTaken(ip);
      throw err;
    }
  }

  async login(body: LoginBody, ip: string): Promise<AuthResponse> {
    const { db, hasher, tokens, limiter, log } = this.deps;
    const account = body.username.toLowerCase();
    await limiter.consume('loginPerIp', ip);
    // For every name, existing or not, so the limiter is no user-enumeration oracle. The failure
    // is counted before the password is checked and given back if it is right: counting only after
    // a failed check let any number of guesses sent together pass a bucket with one token left.
    await limiter.consume('loginFailuresPerAccount', account);
    let user: UserRow | undefined;
    let ok: boolean;
    try {
      // A name that could never have been registered is simply unknown (and never reaches SQL).
      user = USERNAME.test(body.username) ? await findUserByUsername(db.db, body.username) : undefined;
      ok = user ? await hasher.verify(user.password_hash, body.password) : await hasher.verifyDummy(body.password);
    } catch (err) {
      // Not a failed guess (the hasher is overloaded, the database away): nothing to count.
      await limiter.refund('loginFailuresPerAccount', account);
      throw err;
    }
    if (!user || !ok) {
      log.info({ ip, known: user !== undefined, ...(user ? { userId: user.id } : {}) }, 'login failed');
      throw new UnauthorizedError(BAD_LOGIN);
    }
    await limiter.refund('loginFailuresPerAccount', account);
    const rehash = hasher.needsRehash(user.password_hash) ? await hasher.hash(body.password) : null;
    const pair = await db.transaction(async (tx) => {
      if (rehash) await setPasswordHash(tx.db, user.id, rehash);
      return tokens.startSession(tx, user.id);
    });
    log.info({ userId: user.id, ip }, 'login succeeded');
    return { user: toUser(user), ...pair };
  }

  /** Requires the current password; ends every other login (and its sockets); the caller gets a new pair. */
  async changePassword(userId: string, familyId: string, body: ChangePasswordBody, ip: string): Promise<TokenPair> {
    const { db, hasher, tokens, log } = this.deps;
    const user = await this.reauthenticate(userId, body.currentPassword, ip);
    if (isCommonPassword(body.newPassword) || body.newPassword.toLowerCase() === user.username.toLowerCase()) {
      throw new ValidationError('password is too common; choose a longer or less predictable one', [{ path: ['newPassword'], reason: 'weak_password' }]);
    }
    const passwordHash = await hasher.hash(body.newPassword);
    const pair = await db.transaction(async (tx) => {
      await setPasswordHash(tx.db, userId, passwordHash);
      await tokens.revokeAllInTx(tx, userId, 'password change');
      return tokens.startSession(tx, userId);
    });
    log.info({ userId, familyId, ip }, 'password changed; other sessions revoked');
    return pair;
  }

  /** Deletes the account and everything tied to it; every token and socket of it ends at once. */
  async deleteAccount(userId: string, password: string, ip: string): Promise<void> {
    const { db, tokens, log } = this.deps;
    await this.reauthenticate(userId, password, ip);
    await db.transaction(async (tx) => {
      await tokens.revokeAllInTx(tx, userId, 'account deleted');
      await forgetUnreadFrom(tx.db, userId);
      await deleteUser(tx.db, userId);
    });
    this.deps.deleted?.(userId);
    log.info({ userId, ip }, 'account deleted');
  }

  /** Checks the caller's password again, under the same per-account failure limit as login. */
  private async reauthenticate(userId: string, password: string, ip: string) {
    const { db, hasher, limiter, log } = this.deps;
    const user = await findUserById(db.db, userId);
    if (!user) throw new UnauthorizedError();
    // Counted before the check and given back when right, as for login.
    await limiter.consume('loginFailuresPerAccount', user.username_lower);
    const ok = await hasher.verify(user.password_hash, password).catch(async (err: unknown) => {
      await limiter.refund('loginFailuresPerAccount', user.username_lower);
      throw err;
    });
    if (!ok) {
      log.info({ userId, ip }, 're-authentication failed');
      throw new UnauthorizedError('current password is wrong');
    }
    await limiter.refund('loginFailuresPerAccount', user.username_lower);
    return user;
  }

  private async usernameTaken(ip: string): Promise<never> {
    await this.deps.limiter.consume('registerTakenPerIp', ip);
    throw new ConflictError('username is already taken');
  }
}
