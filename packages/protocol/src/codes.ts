/**
 * The closed list of error codes and the HTTP status of each. The first seven are the SPEC's; the
 * rest cover statuses the SPEC does not name (method, media type, outages, bugs). Plain data, no
 * zod: clients import it from `@safechat/protocol/codes` without pulling in the schemas.
 */
export const ERROR_STATUS = {
  validation_error: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
