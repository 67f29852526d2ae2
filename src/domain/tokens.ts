import { createHash, randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { TokenPair } from '@safechat/protocol';
import type { ServerConfig } from '../config/config.js';
import { UnauthorizedError } from '../errors.js';
import type { Logger } from 'pino';
import type { Database, Tx } from '../storage/db.js';
import { CAPS } from '../limits/catalog.js';
import type { RateLimiter } from '../limits/limiter.js';
import {
  activeFamilies,
  claimRefreshToken,
  findFamily,
  findRefreshToken,
  insertFamily,
  insertRefreshToken,
  isFamilyActive,
  liveFamilyIds,
  revokeFamily,
  touchFamily,
} from '../storage/repositories/tokens.js';
import type { Clock } from '../util/clock.js';
import { uuidv7 } from '../util/ids.js';
import type { SessionSink } from './notifier.js';

export interface AccessClaims {
  userId: string;
  familyId: string;
  /** Expiry, Unix seconds. */
  exp: number;
}

const ALG = 'HS256';
const ACCESS_TYP = 'at+jwt';
/** 256-bit opaque refresh tokens, base64url. */
const REFRESH_SHAPE = /^[A-Za-z0-9_-]{43}$/;
const CLOCK_TOLERANCE_SEC = 5;
const VERIFIED_CACHE_SIZE = 10_000;
// The signature is HS256's 32 bytes: 43 characters whose last carries 4 bits and two zero bits.
// A decoder ignores those two, so without this a token had four spellings that all verified.
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * Access tokens: short-lived HS256 JWTs (algorithm pinned, typ/iss/aud/exp checked), bound to a
 * login ("family") that is checked on every use, so logout and revocation take effect at once.
 * Refresh tokens: opaque, stored as SHA-256, single use; a reused one revokes its whole family.
 */
export class TokenService {
  private sink: SessionSink | null = null;
  private readonly verified = new Map<string, AccessClaims>();
  /** The secret imported once: jose imports a raw Uint8Array key again on every sign and verify. */
  private key: Promise<CryptoKey> | null = null;
  /** The logins `isLive` was asked about this turn, and the one read that answers them all. */
  private liveBatch: { ids: Set<string>; result: Promise<Set<string>> } | null = null;

  constructor(
    private readonly db: Database,
    private readonly cfg: ServerConfig['auth'],
    private readonly secret: Uint8Array,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly limiter: RateLimiter,
  ) {}

  connect(sink: SessionSink): void {
    this.sink = sink;
  }

  /** Starts a new login for `userId` inside the caller's transaction; the oldest beyond the cap ends. */
  async startSession(tx: Tx, userId: string): Promise<TokenPair> {
    const now = this.clock.now();
    const live = await activeFamilies(tx.db, userId, now);
    for (const old of live.slice(0, Math.max(0, live.length - CAPS.sessionsPerUser + 1))) {
      await this.revokeInTx(tx, userId, old.id, 'session limit');
    }
    const familyId = uuidv7(now);
    await insertFamily(tx.db, {
      id: familyId,
      user_id: userId,
      created_at: now,
      last_used_at: now,
      expires_at: now + this.cfg.sessionMaxAgeSec * 1000,
      revoked_at: null,
      revoke_reason: null,
    });
    const refreshToken = await this.addRefreshToken(tx, familyId, userId, now);
    return { accessToken: await this.signAccess(userId, familyId, now), refreshToken, expiresIn: this.cfg.accessTtlSec };
  }

  async refresh(refreshToken: string, ip: string): Promise<TokenPair> {
    if (!REFRESH_SHAPE.test(refreshToken)) throw new UnauthorizedError('invalid refresh token');
    const tokenHash = hashToken(refreshToken);
    const known = await findRefreshToken(this.db.db, tokenHash);
    if (known) await this.limiter.consume('refreshPerFamily', known.family_id);
    const now = this.clock.now();
    const outcome = await this.db.transaction(async (tx) => {
      const claimed = await claimRefreshToken(tx.db, tokenHash, now);
      if (!claimed) {
        const seen = await findRefreshToken(tx.db, tokenHash);
        // @NOTE A rotated token presented again means it leaked (or a client raced itself):
        // revoke the whole family, as RFC 9700 §4.14.2 recommends.
        if (!seen) return 'unknown' as const;
        await this.revokeInTx(tx, seen.user_id, seen.family_id, 'refresh token reuse');
        return { reused: { userId: seen.user_id, familyId: seen.family_id } };
      }
      const family = await findFamily(tx.db, claimed.family_id);
      if (!family || family.revoked_at !== null || family.expires_at <= now || claimed.expires_at <= now) return 'expired' as const;
      await touchFamily(tx.db, family.id, now);
      const next = await this.addRefreshToken(tx, family.id, family.user_id, now);
      return { userId: family.user_id, familyId: family.id, refreshToken: next };
    });
    if (typeof outcome === 'string') {
      this.log.info({ ip, reason: outcome }, 'refresh failed');
      throw new UnauthorizedError('invalid refresh token');
    }
    if ('reused' in outcome) {
      this.log.warn({ ...outcome.reused, ip }, 'refresh token reuse detected: family revoked');
      throw new UnauthorizedError('invalid refresh token');
    }
    this.log.info({ userId: outcome.userId, familyId: outcome.familyId, ip }, 'session refreshed');
    return {
      accessToken: await this.signAccess(outcome.userId, outcome.familyId, now),
      refreshToken: outcome.refreshToken,
      expiresIn: this.cfg.accessTtlSec,
    };
  }

  /** Ends the login the refresh token belongs to (idempotent for an already-ended login). */
  async logout(refreshToken: string): Promise<void> {
    if (!REFRESH_SHAPE.test(refreshToken)) throw new UnauthorizedError('invalid refresh token');
    const tokenHash = hashToken(refreshToken);
    const found = await this.db.transaction(async (tx) => {
      const token = await findRefreshToken(tx.db, tokenHash);
      if (!token) return false;
      await this.revokeInTx(tx, token.user_id, token.family_id, 'logout');
      return true;
    });
    if (!found) throw new UnauthorizedError('invalid refresh token');
  }

  /** Ends every login of the user except `keepFamilyId` (password change, account deletion). */
  async revokeAllInTx(tx: Tx, userId: string, reason: string, keepFamilyId?: string): Promise<void> {
    for (const f of await activeFamilies(tx.db, userId, this.clock.now())) {
      if (f.id !== keepFamilyId) await this.revokeInTx(tx, userId, f.id, reason);
    }
  }

  async revokeInTx(tx: Tx, userId: string, familyId: string, reason: string): Promise<void> {
    if (await revokeFamily(tx.db, familyId, this.clock.now(), reason)) {
      tx.onCommit(() => this.sink?.sessionsRevoked(userId, familyId));
    }
  }

  /** Which of these logins are still live: for sockets that may have missed a revocation. */
  liveFamilies(familyIds: string[]): Promise<Set<string>> {
    return liveFamilyIds(this.db.db, familyIds, this.clock.now());
  }

  /**
   * Whether one login is still live. The checks asked in one turn share one read (500 logins a
   * query): a burst of sockets starting, or a heartbeat's re-checks, costs a few queries, not one each.
   */
  isLive(familyId: string): Promise<boolean> {
    if (!this.liveBatch) {
      const ids = new Set<string>();
      const result = new Promise((r) => setImmediate(r)).then(() => {
        this.liveBatch = null;
        return this.liveFamilies([...ids]);
      });
      result.catch((err: unknown) => this.log.warn({ error: (err as Error).message, logins: ids.size }, 'checking logins failed'));
      this.liveBatch = { ids, result };
    }
    this.liveBatch.ids.add(familyId);
    return this.liveBatch.result.then((live) => live.has(familyId));
  }

  /** Verifies an access token: signature, pinned algorithm, typ, iss, aud, exp, and a live login. */
  async verifyAccess(token: string): Promise<AccessClaims> {
    const claims = await this.verifyJwt(token);
    if (!(await isFamilyActive(this.db.db, claims.familyId, claims.userId, this.clock.now()))) {
      throw new UnauthorizedError('session ended');
    }
    return claims;
  }

  private async verifyJwt(token: string): Promise<AccessClaims> {
    // One spelling per token: three unpadded base64url segments (no padding, no +/ alphabet).
    if (token.length > 4096 || !JWT_SHAPE.test(token)) throw new UnauthorizedError('invalid access token');
    // A token whose signature was already checked is not checked again (WebCrypto HMAC costs more
    // than the rest of a request); expiry is, and the login is checked by the caller every time.
    const cached = this.verified.get(token);
    if (cached) {
      if (cached.exp + CLOCK_TOLERANCE_SEC <= Math.floor(this.clock.now() / 1000)) {
        this.verified.delete(token);
        throw new UnauthorizedError('access token expired');
      }
      return cached;
    }
    const claims = await this.verifySignature(token);
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, claims);
    return claims;
  }

  private hmacKey(): Promise<CryptoKey> {
    this.key ??= crypto.subtle.importKey('raw', new Uint8Array(this.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    return this.key;
  }

  private async verifySignature(token: string): Promise<AccessClaims> {
    try {
      const nowSec = Math.floor(this.clock.now() / 1000);
      const { payload } = await jwtVerify(token, await this.hmacKey(), {
        algorithms: [ALG],
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        typ: ACCESS_TYP,
        clockTolerance: CLOCK_TOLERANCE_SEC,
        currentDate: new Date(nowSec * 1000),
        requiredClaims: ['sub', 'sid', 'exp', 'iat', 'jti'],
      });
      const { sub, sid, exp, iat } = payload;
      if (typeof sub !== 'string' || typeof sid !== 'string' || typeof exp !== 'number' || typeof iat !== 'number') {
        throw new UnauthorizedError('invalid access token');
      }
      // jose accepts an `iat` in the future; a token minted "later" is not one we issued.
      if (iat > nowSec + CLOCK_TOLERANCE_SEC) throw new UnauthorizedError('invalid access token');
      return { userId: sub, familyId: sid, exp };
    } catch (err) {
      if (err instanceof UnauthorizedError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new UnauthorizedError('access token expired');
      // Any other failure (bad signature, alg, claims, malformed): one answer, no oracle.
      throw new UnauthorizedError('invalid access token');
    }
  }

  private async addRefreshToken(tx: Tx, familyId: string, userId: string, now: number): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await insertRefreshToken(tx.db, {
      token_hash: hashToken(token),
      family_id: familyId,
      user_id: userId,
      created_at: now,
      expires_at: now + this.cfg.refreshTtlSec * 1000,
      used_at: null,
    });
    return token;
  }

  private async signAccess(userId: string, familyId: string, nowMs: number): Promise<string> {
    const iat = Math.floor(nowMs / 1000);
    return new SignJWT({ sid: familyId })
      .setProtectedHeader({ alg: ALG, typ: ACCESS_TYP })
      .setSubject(userId)
      .setIssuer(this.cfg.issuer)
      .setAudience(this.cfg.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.cfg.accessTtlSec)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(await this.hmacKey());
  }
}
