import { ERROR_STATUS, type ErrorBody, type ErrorCode } from '@safechat/protocol';

/** A deliberate, client-visible failure: one code from the closed list, one human message. */
export class AppError extends Error {
  override name = 'AppError';
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.status = ERROR_STATUS[code];
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

export class ValidationError extends AppError {
  override name = 'ValidationError';
  constructor(message: string, details?: unknown) {
    super('validation_error', message, details);
  }
}

export class UnauthorizedError extends AppError {
  override name = 'UnauthorizedError';
  constructor(message = 'authentication required') {
    super('unauthorized', message, undefined, { 'WWW-Authenticate': 'Bearer' });
  }
}

export class ForbiddenError extends AppError {
  override name = 'ForbiddenError';
  constructor(message: string) {
    super('forbidden', message);
  }
}

export class NotFoundError extends AppError {
  override name = 'NotFoundError';
  /**
   * `denied`: the object exists but the caller may not see it. Answered exactly like a missing
   * one; only the server's log tells them apart (an authorization denial, SECURITY DATA-03).
   */
  constructor(
    message: string,
    readonly denied = false,
  ) {
    super('not_found', message);
  }
}

export class ConflictError extends AppError {
  override name = 'ConflictError';
  constructor(message: string) {
    super('conflict', message);
  }
}

export class PayloadTooLargeError extends AppError {
  override name = 'PayloadTooLargeError';
  constructor(message: string, details?: unknown) {
    super('payload_too_large', message, details);
  }
}

export class RateLimitedError extends AppError {
  override name = 'RateLimitedError';
  constructor(
    readonly retryAfterSec: number,
    message = 'too many requests, retry later',
    /** Which limit (logged, never sent). */
    readonly limit?: string,
  ) {
    super('rate_limited', message, { retryAfter: retryAfterSec }, { 'Retry-After': String(retryAfterSec) });
  }
}

/** A dependency (database, Redis, the password hasher) cannot serve now; the client should retry. */
export class UnavailableError extends AppError {
  override name = 'UnavailableError';
  constructor(message = 'service temporarily unavailable, retry later', retryAfterSec = 2) {
    super('unavailable', message, undefined, { 'Retry-After': String(retryAfterSec) });
  }
}

/**
 * Anything that is not an AppError is a bug: answered generically, never described, with the
 * request's id (also in the server's log line) so an operator can find what happened.
 */
export function internalErrorBody(requestId: string): ErrorBody {
  return { error: { code: 'internal_error', message: 'internal error', details: { requestId } } };
}

export interface IssueDetail {
  path: (string | number)[];
  message: string;
  reason?: string;
}

/** One zod issue as a client-facing detail: where, what, and a machine-readable reason when we have one. */
export function issueDetail(issue: { path?: readonly PropertyKey[]; message?: string; code?: string; params?: unknown }): IssueDetail {
  const path = (issue.path ?? []).map((p) => (typeof p === 'number' ? p : String(p)));
  const reason = (issue.params as { reason?: string } | undefined)?.reason ?? (issue.code === 'unrecognized_keys' ? 'unknown_field' : undefined);
  return { path, message: issue.message ?? 'invalid', ...(reason ? { reason } : {}) };
}
