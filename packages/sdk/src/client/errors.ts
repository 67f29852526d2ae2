/** Errors of the client layer (HTTP, WebSocket, high-level client). */
import { ERROR_STATUS, type ErrorCode } from '@safechat/protocol/codes';

/**
 * Codes an {@link ApiError} can carry: the server's closed list, plus four the client produces
 * itself (`status` 0): the request never got an answer (`network_error`), no answer in time
 * (`timeout`), the socket is not connected (`not_connected`), or the answer was not the
 * contract's JSON (`invalid_response`).
 */
export type ApiErrorCode = ErrorCode | 'network_error' | 'timeout' | 'not_connected' | 'invalid_response';

const CODE_OF_STATUS: Record<number, ErrorCode> = Object.fromEntries(Object.entries(ERROR_STATUS).map(([c, s]) => [s, c as ErrorCode]));

export function statusOfCode(code: ApiErrorCode): number {
  return (ERROR_STATUS as Record<string, number>)[code] ?? 0;
}

export function codeOfStatus(status: number): ErrorCode {
  return CODE_OF_STATUS[status] ?? (status >= 500 ? 'internal_error' : 'validation_error');
}

/**
 * A failed API call, over REST or over the WebSocket: `{status, code, message, details,
 * retryAfter}`. `status` is the HTTP status (0 when the server never answered); `retryAfter` is
 * in seconds (from `Retry-After` or `details.retryAfter`) when the server said when to retry.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: unknown,
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  /** True when the request may not have reached the server, or the server may take it later: retrying is safe for idempotent calls. */
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status === 503;
  }
}

/** The session is over (refresh token rejected, logged out): sign in again. */
export class SignedOutError extends ApiError {
  override name = 'SignedOutError';
  constructor(message = 'signed out: sign in again') {
    super(401, 'unauthorized', message);
  }
}

/**
 * The key directory contradicts itself: the pre-key bundle's identity key is not the user's
 * `publicKey`. Nothing was stored; retry later (the user may be changing keys right now).
 */
export class IdentityMismatchError extends Error {
  override name = 'IdentityMismatchError';
  constructor(readonly userId: string) {
    super("the pre-key bundle's identity key is not the user's public key");
  }
}
