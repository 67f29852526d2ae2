import os from 'node:os';
import path from 'node:path';
import { DEFAULT_MAX_CIPHERTEXT_BYTES } from '@safechat/protocol';
import type { Env } from './env.js';
import { CAPS } from '../limits/catalog.js';
import { parseDuration } from '../util/duration.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`Invalid ${variable}: ${message}`);
  }
}

/** How the SQLite WAL checkpoint thread paces its passes (src/storage/checkpointer.ts). */
export interface CheckpointPacing {
  intervalMs: number;
  restartFrames: number;
  quietFrames: number;
}

export type DatabaseConfig =
  | {
      kind: 'sqlite';
      path: string;
      synchronous: 'FULL' | 'NORMAL';
      /** Tests only (never from the environment): the WAL checkpoint thread's pacing. */
      checkpoint?: CheckpointPacing;
    }
  | { kind: 'postgres'; url: string; poolSize: number; schema?: string };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ServerConfig {
  production: boolean;
  http: { host: string; port: number; trustProxy: boolean | string[] };
  dataDir: string;
  db: DatabaseConfig;
  redisUrl: string | null;
  auth: {
    issuer: string;
    audience: string;
    accessTtlSec: number;
    refreshTtlSec: number;
    /** Absolute lifetime of a login (token family), however often it is refreshed. */
    sessionMaxAgeSec: number;
    argon2: { memoryCost: number; timeCost: number; parallelism: number };
  };
  rateLimits: boolean;
  /** Open WebSockets per client address on this instance (with rate limits on). */
  maxSocketsPerIp: number;
  allowedOrigins: string[];
  /** holdAfterCommitMs: a fault-test hook (TEST_HOLD_AFTER_COMMIT_MS), 0 outside those tests. */
  messages: { maxCiphertextBytes: number; holdAfterCommitMs: number };
  events: { retentionDays: number };
  serveApp: boolean;
  shutdownGraceMs: number;
  logLevel: LogLevel;
}

const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function int(variable: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^[0-9]+$/.test(text)) throw new ConfigError(variable, `expected a whole number, got "${text}"`);
  const n = Number(text);
  if (n < min || n > max) throw new ConfigError(variable, `expected ${min}..${max}, got ${n}`);
  return n;
}

function duration(variable: string, text: string | undefined, fallback: string, minSec: number, maxSec: number): number {
  const sec = parseDuration(text ?? fallback);
  if (sec === null) throw new ConfigError(variable, `expected a number and a unit (30s, 15m, 12h, 30d), got "${text}"`);
  if (sec < minSec || sec > maxSec) throw new ConfigError(variable, `expected between ${minSec}s and ${maxSec}s`);
  return sec;
}

function onOff(variable: string, text: string | undefined, fallback: boolean): boolean {
  if (text === undefined) return fallback;
  if (['on', 'true', '1', 'yes'].includes(text.toLowerCase())) return true;
  if (['off', 'false', '0', 'no'].includes(text.toLowerCase())) return false;
  throw new ConfigError(variable, `expected on or off, got "${text}"`);
}

function databaseConfig(env: Env, dataDir: string): DatabaseConfig {
  const url = env.DATABASE_URL ?? `sqlite:${path.join(dataDir, 'safechat.db')}`;
  const synchronous = (env.SQLITE_SYNCHRONOUS ?? 'FULL').toUpperCase();
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
    throw new ConfigError('SQLITE_SYNCHRONOUS', `expected FULL or NORMAL, got "${env.SQLITE_SYNCHRONOUS}"`);
  }
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file === '') throw new ConfigError('DATABASE_URL', 'expected sqlite:<path>, sqlite::memory: or postgres://…');
    return { kind: 'sqlite', path: file === ':memory:' ? ':memory:' : path.resolve(file), synchronous };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    try {
      new URL(url);
    } catch {
      throw new ConfigError('DATABASE_URL', 'not a valid postgres:// URL');
    }
    return { kind: 'postgres', url, poolSize: int('DB_POOL_SIZE', env.DB_POOL_SIZE, 10, 1, 1000) };
  }
  throw new ConfigError('DATABASE_URL', 'expected sqlite:<path>, sqlite::memory: or postgres://…');
}

function trustProxy(text: string | undefined): boolean | string[] {
  if (text === undefined) return false;
  if (['off', 'false', '0', 'no'].includes(text.toLowerCase())) return false;
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.some((s) => !/^[0-9a-fA-F.:/]+$/.test(s))) {
    throw new ConfigError('TRUST_PROXY', 'expected a comma-separated list of proxy addresses or CIDR ranges');
  }
  return list;
}

function origins(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((o) => {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new ConfigError('ALLOWED_ORIGINS', `"${o}" is not an origin like https://chat.example.com`);
    }
    if (u.origin !== o.replace(/\/$/, '')) throw new ConfigError('ALLOWED_ORIGINS', `"${o}" is not a bare origin (scheme://host[:port])`);
    return u.origin;
  });
}

/** Applies defaults and checks every value; a bad value fails with one line naming the variable. */
export function envToConfig(env: Env): ServerConfig {
  const nodeEnv = env.NODE_ENV ?? 'development';
  const production = nodeEnv === 'production';
  const dataDir = path.resolve(env.DATA_DIR ?? './data');
  const logLevel = (env.LOG_LEVEL ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}`);
  const rateLimits = onOff('RATE_LIMITS', env.RATE_LIMITS, true);
  if (production && !rateLimits) throw new ConfigError('RATE_LIMITS', 'off is refused when NODE_ENV=production');
  const trusted = trustProxy(env.TRUST_PROXY);
  // @NOTE Tokens travel in headers and frames: in production the listener sits behind a proxy that
  // terminates TLS (https/wss). Refusing to start without one named is cheaper than a leak.
  if (production && trusted === false && !onOff('ALLOW_PLAIN_HTTP', env.ALLOW_PLAIN_HTTP, false)) {
    throw new ConfigError('TRUST_PROXY', 'is required when NODE_ENV=production: name the reverse proxy that terminates TLS (or set ALLOW_PLAIN_HTTP=on if TLS is handled another way)');
  }
  const redisUrl = env.REDIS_URL ?? null;
  if (redisUrl !== null && !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('REDIS_URL', 'expected redis://… or rediss://…');
  const accessTtlSec = duration('ACCESS_TOKEN_TTL', env.ACCESS_TOKEN_TTL, '15m', 10, 24 * 3600);
  // SECURITY.md TOK-03: an access token lives at most 15 minutes in production (a stolen one is
  // usable that long; sockets re-check at expiry). Longer only for development and benchmarks.
  if (production && accessTtlSec > 15 * 60) throw new ConfigError('ACCESS_TOKEN_TTL', 'must be at most 15m when NODE_ENV=production');
  const refreshTtlSec = duration('REFRESH_TOKEN_TTL', env.REFRESH_TOKEN_TTL, '30d', 60, 365 * 86400);
  // Unset, a login's absolute lifetime is 90 days, or the refresh lifetime if that is longer.
  const sessionMaxAgeSec =
    env.SESSION_MAX_AGE === undefined ? Math.max(90 * 86400, refreshTtlSec) : duration('SESSION_MAX_AGE', env.SESSION_MAX_AGE, '90d', 60, 3650 * 86400);
  if (sessionMaxAgeSec < refreshTtlSec) throw new ConfigError('SESSION_MAX_AGE', 'must not be shorter than REFRESH_TOKEN_TTL');
  // A fault-test hook (T-DUR-02): the answer to a send waits this long after its commit.
  const holdAfterCommitMs = int('TEST_HOLD_AFTER_COMMIT_MS', env.TEST_HOLD_AFTER_COMMIT_MS, 0, 0, 10_000);
  if (production && holdAfterCommitMs > 0) throw new ConfigError('TEST_HOLD_AFTER_COMMIT_MS', 'is a test hook, refused when NODE_ENV=production');
  return {
    production,
    http: {
      host: env.HOST ?? '127.0.0.1',
      port: int('PORT', env.PORT, 3000, 0, 65535),
      trustProxy: trusted,
    },
    dataDir,
    db: databaseConfig(env, dataDir),
    redisUrl,
    auth: {
      issuer: 'safechat',
      audience: 'safechat-api',
      accessTtlSec,
      refreshTtlSec,
      sessionMaxAgeSec,
      // @NOTE OWASP Password Storage Cheat Sheet, first Argon2id option: m=19 MiB, t=2, p=1.
      argon2: { memoryCost: 19456, timeCost: 2, parallelism: 1 },
    },
    rateLimits,
    maxSocketsPerIp: int('MAX_SOCKETS_PER_IP', env.MAX_SOCKETS_PER_IP, CAPS.socketsPerIp, 1, 1_000_000),
    allowedOrigins: origins(env.ALLOWED_ORIGINS),
    messages: { maxCiphertextBytes: int('MAX_MESSAGE_BYTES', env.MAX_MESSAGE_BYTES, DEFAULT_MAX_CIPHERTEXT_BYTES, 1024, 1024 * 1024), holdAfterCommitMs },
    events: { retentionDays: int('EVENT_RETENTION_DAYS', env.EVENT_RETENTION_DAYS, 30, 30, 3650) },
    serveApp: onOff('SERVE_APP', env.SERVE_APP, !production),
    shutdownGraceMs: duration('SHUTDOWN_GRACE', env.SHUTDOWN_GRACE, '10s', 1, 600) * 1000,
    logLevel,
  };
}

/** Argon2 work is bounded by the thread pool; two per core keeps logins from queueing forever. */
export const ARGON2_MAX_IN_FLIGHT = Math.max(2, os.availableParallelism() * 2);
