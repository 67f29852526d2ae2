import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.js';
import { parseStrictJson } from '../../util/strict-json.js';

/**
 * JSON bodies only, UTF-8 only, parsed strictly: duplicate keys, `__proto__`/`constructor`/
 * `prototype` keys, nesting over 16 and more than 1,000 keys are refused before any handler runs.
 */
export function registerBodyParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      done(new AppError('unsupported_media_type', 'JSON bodies must be UTF-8'), undefined);
      return;
    }
    let text: string;
    try {
      // fatal: invalid UTF-8 is refused instead of becoming U+FFFD.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
    } catch {
      done(new AppError('validation_error', 'the body is not valid UTF-8', [{ reason: 'invalid_utf8' }]), undefined);
      return;
    }
    try {
      done(null, parseStrictJson(text));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}
