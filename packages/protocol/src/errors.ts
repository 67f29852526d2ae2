import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode as Code } from './codes.js';

export { ERROR_STATUS };
export type ErrorCode = Code;
export const ErrorCode = z.enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]);

export const ErrorBody = z.object({
  error: z.object({
    code: ErrorCode,
    message: z.string(),
    details: z.unknown().optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;
