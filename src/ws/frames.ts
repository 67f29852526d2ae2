import { ClientFrame, type ErrorCode, type ErrorFrame, type ServerFrame } from '@safechat/protocol';
import { AppError, issueDetail } from '../errors.js';
import { parseStrictJson, StrictJsonError } from '../util/strict-json.js';

/** Parses and validates one client frame with the same strict rules as HTTP bodies. */
export function parseClientFrame(text: string): ClientFrame {
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (err) {
    const reason = err instanceof StrictJsonError ? err.reason : 'invalid_json';
    throw new AppError('validation_error', 'the frame is not acceptable JSON', [{ reason }]);
  }
  const parsed = ClientFrame.safeParse(value);
  if (!parsed.success) {
    const details = parsed.error.issues.map(issueDetail);
    throw new AppError('validation_error', 'invalid frame', details);
  }
  return parsed.data;
}

export function errorFrame(code: ErrorCode, message: string, requestId?: string, details?: unknown): string {
  const frame: ErrorFrame = { type: 'error', ...(requestId !== undefined ? { requestId } : {}), error: { code, message, ...(details !== undefined ? { details } : {}) } };
  return JSON.stringify(frame);
}

export function frame(f: ServerFrame): string {
  return JSON.stringify(f);
}

/** A best-effort requestId from a frame that failed validation, so the client can match the error. */
export function salvageRequestId(text: string): string | undefined {
  const m = /"requestId"\s*:\s*"([^"\\]{1,64})"/.exec(text.slice(0, 4096));
  return m?.[1];
}
