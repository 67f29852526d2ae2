/** The only reader of `process.env`: raw strings, nothing interpreted yet. */
export interface Env {
  NODE_ENV?: string;
  PORT?: string;
  HOST?: string;
  DATABASE_URL?: string;
  DATA_DIR?: string;
  REDIS_URL?: string;
  JWT_SECRET?: string;
  ACCESS_TOKEN_TTL?: string;
  REFRESH_TOKEN_TTL?: string;
  SESSION_MAX_AGE?: string;
  LOG_LEVEL?: string;
  RATE_LIMITS?: string;
  ALLOWED_ORIGINS?: string;
  TRUST_PROXY?: string;
  DB_POOL_SIZE?: string;
  SQLITE_SYNCHRONOUS?: string;
  MAX_MESSAGE_BYTES?: string;
  MAX_SOCKETS_PER_IP?: string;
  EVENT_RETENTION_DAYS?: string;
  SERVE_APP?: string;
  SHUTDOWN_GRACE?: string;
  ALLOW_PLAIN_HTTP?: string;
  TEST_HOLD_AFTER_COMMIT_MS?: string;
}

const KEYS: (keyof Env)[] = [
  'NODE_ENV', 'PORT', 'HOST', 'DATABASE_URL', 'DATA_DIR', 'REDIS_URL', 'JWT_SECRET', 'ACCESS_TOKEN_TTL',
  'REFRESH_TOKEN_TTL', 'SESSION_MAX_AGE', 'LOG_LEVEL', 'RATE_LIMITS', 'ALLOWED_ORIGINS', 'TRUST_PROXY',
  'DB_POOL_SIZE', 'SQLITE_SYNCHRONOUS', 'MAX_MESSAGE_BYTES', 'MAX_SOCKETS_PER_IP',
  'EVENT_RETENTION_DAYS', 'SERVE_APP', 'SHUTDOWN_GRACE', 'ALLOW_PLAIN_HTTP', 'TEST_HOLD_AFTER_COMMIT_MS',
];

export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const env: Env = {};
  for (const key of KEYS) {
    const value = source[key];
    // An empty variable means "unset": `FOO= npm start` should not be an error.
    if (value !== undefined && value.trim() !== '') env[key] = value.trim();
  }
  return env;
}
