import type { FastifyReply, FastifyRequest } from 'fastify';
import { UnauthorizedError } from '../../errors.js';
import type { RateLimiter } from '../../limits/limiter.js';
import type { AccessClaims, TokenService } from '../../domain/tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    auth: AccessClaims | null;
  }
}

/** The bearer token of a request: only from the Authorization header, never the URL. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header);
  return m ? m[1]! : null;
}

/** onRequest hook for authenticated routes: runs before the body is read or validated. */
export function authenticate(tokens: TokenService, limiter: RateLimiter) {
  return async function (request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const token = bearerToken(request.headers.authorization);
    if (token === null) throw new UnauthorizedError();
    request.auth = await tokens.verifyAccess(token);
    await limiter.consume('requestsPerUser', request.auth.userId);
  };
}

/** The authenticated caller; only for handlers behind `authenticate`. */
export function caller(request: FastifyRequest): AccessClaims {
  if (!request.auth) throw new UnauthorizedError();
  return request.auth;
}
