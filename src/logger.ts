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

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A request's logger, made when the request first logs at an enabled level. Fastify makes one per
 * request to bind its id; with the wildcard paths above, pino runs the redaction over those
 * bindings, ~7 µs per request (against ~0.5 without redaction), and almost no request logs
 * (decision 0028). A route-level log level needs its own child at once: it decides what is enabled.
 */
export function requestLogger(parent: Logger, bindings: pino.Bindings, options: pino.ChildLoggerOptions): Logger {
  if (Object.keys(options).length > 0) return parent.child(bindings, options);
  return new LazyRequestLogger(parent, bindings) as unknown as Logger;
}

type LogArgs = Parameters<pino.LogFn>;

/**
 * The stand-in: methods on a class, not arrows on a literal, so a request makes one object and no
 * closures (and tsx names no function per request; round 16 of docs/performance.md).
 */
class LazyRequestLogger {
  private made: Logger | undefined;
  constructor(
    private readonly parent: Logger,
    private readonly bound: pino.Bindings,
  ) {}

  private make(): Logger {
    return (this.made ??= this.parent.child(this.bound));
  }

  private write(level: Level, args: unknown[]): void {
    if (!(this.made ?? this.parent).isLevelEnabled(level)) return;
    this.make()[level](...(args as LogArgs));
  }

  get level(): string {
    return this.made?.level ?? this.parent.level;
  }
  set level(level: string) {
    this.make().level = level;
  }
  get msgPrefix(): string | undefined {
    return this.parent.msgPrefix;
  }
  isLevelEnabled(level: string): boolean {
    return (this.made ?? this.parent).isLevelEnabled(level);
  }
  silent(): void {}
  child(b: pino.Bindings, o?: pino.ChildLoggerOptions): Logger {
    return this.make().child(b, o);
  }
  bindings(): pino.Bindings {
    return this.make().bindings();
  }
  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
}
