import pino, { type Logger } from 'pino';
import type { LogLevel } from './config/config.js';

/**
 * Secrets never reach a log line: request headers that carry tokens, and any field named like a
 * password, token or ciphertext, wherever it appears (two levels deep covers our shapes).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["sec-websocket-protocol"]',
  ...['password', 'currentPassword', 'newPassword', 'token', 'accessToken', 'refreshToken', 'encryptedContent', 'iv', 'mac', 'jwtSecret']
    .flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
];

export interface Loggers {
  root: Logger;
  http: Logger;
  ws: Logger;
  db: Logger;
  pubsub: Logger;
  auth: Logger;
  jobs: Logger;
}

export function createLoggers(level: LogLevel, destination?: pino.DestinationStream): Loggers {
  const root = pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Request URLs can carry `?since=` cursors but never tokens (tokens in URLs are refused).
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
  return {
    root,
    http: root.child({ subsystem: 'http' }),
    ws: root.child({ subsystem: 'ws' }),
    db: root.child({ subsystem: 'db' }),
    pubsub: root.child({ subsystem: 'pubsub' }),
    auth: root.child({ subsystem: 'auth' }),
    jobs: root.child({ subsystem: 'jobs' }),
  };
}
