import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, ForbiddenError, internalErrorBody, issueDetail, NotFoundError, RateLimitedError, UnauthorizedError, UnavailableError, type IssueDetail } from '../../errors.js';
import { isConnectionError } from '../../storage/dialect.js';
import { StrictJsonError } from '../../util/strict-json.js';

/** Fastify's own client errors, mapped onto our closed list of codes. */
const FASTIFY_CODES: Record<string, () => AppError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => new AppError('payload_too_large', 'request body is too large'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new AppError('unsupported_media_type', 'send JSON with Content-Type: application/json'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new AppError('validation_error', 'Content-Length does not match the body'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new AppError('validation_error', 'the JSON body is empty'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new AppError('validation_error', 'the body is not valid JSON', [{ reason: 'invalid_json' }]),
  FST_ERR_CTP_INVALID_PARSE_TYPE: () => new AppError('unsupported_media_type', 'unsupported content type'),
};

function validationIssues(err: { validation: { instancePath: string; keyword: string; message?: string; params?: unknown }[] }): IssueDetail[] {
  // fastify-type-provider-zod puts the zod issue's code in `keyword` and its other fields in `params`.
  return err.validation.map((v) =>
    issueDetail({
      path: v.instancePath.split('/').filter(Boolean),
      message: v.message,
      code: v.keyword,
      params: (v.params as { params?: unknown } | undefined)?.params,
    }),
  );
}

/** Converts anything thrown into the SPEC's error shape; a 5xx never says what went wrong inside. */
export function toHttpError(err: unknown): AppError | null {
  if (err instanceof AppError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const context = (err as unknown as { validationContext?: string }).validationContext ?? 'request';
    return new AppError('validation_error', `invalid ${context}`, validationIssues(err));
  }
  if (err instanceof StrictJsonError) {
    return new AppError('validation_error', 'the body is not acceptable JSON', [{ reason: err.reason, message: err.message }]);
  }
  const code = (err as FastifyError | null)?.code;
  if (typeof code === 'string' && FASTIFY_CODES[code]) return FASTIFY_CODES[code]();
  if (isConnectionError(err)) return new UnavailableError();
  const status = (err as FastifyError | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return new AppError('validation_error', 'bad request');
  return null;
}

/**
 * The security event an error answer is (SECURITY DATA-03), if any. A 401 counts only for a bearer
 * token refused: logins, refreshes and re-authentication log their own failures.
 */
function securityEvent(e: AppError, request: FastifyRequest): { msg: string; fields: Record<string, unknown> } | null {
  if (e instanceof RateLimitedError) return { msg: 'rate limited', fields: { limit: e.limit ?? e.message } };
  if (e instanceof ForbiddenError) return { msg: 'authorization denied', fields: { reason: e.message } };
  if (e instanceof NotFoundError && e.denied) return { msg: 'authorization denied', fields: { reason: 'not a member (answered 404)' } };
  if (e instanceof UnauthorizedError && request.auth === null && request.headers.authorization !== undefined) return { msg: 'authentication failed', fields: { reason: e.message } };
  return null;
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const appErr = toHttpError(err);
    if (!appErr) {
      request.log.error({ err }, 'unhandled error');
      return reply.code(500).type('application/json').send(internalErrorBody(request.id));
    }
    const body = appErr.toBody();
    if (appErr.status >= 500) {
      request.log.warn({ error: (err as Error).message, code: (err as FastifyError).code }, 'dependency unavailable');
      // A 5xx carries the request's id (the log line's reqId): the one thing worth reporting.
      body.error.details = { requestId: request.id };
    } else {
      const event = securityEvent(appErr, request);
      // Who (if known), from where, what; the time is the line's.
      if (event) request.log.info({ ip: request.ip, ...(request.auth ? { userId: request.auth.userId } : {}), route: request.routeOptions.url ?? 'unmatched', ...event.fields }, event.msg);
    }
    return reply.code(appErr.status).headers(appErr.headers ?? {}).type('application/json').send(body);
  });
}
