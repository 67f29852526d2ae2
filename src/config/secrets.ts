import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, type ServerConfig } from './config.js';
import type { Env } from './env.js';

export interface ServerSecrets {
  jwtSecret: Uint8Array;
}

// Values seen in tutorials and .env examples: a server must never run with one of them.
const KNOWN_WEAK = ['secret', 'changeme', 'change-me', 'your-secret', 'jwt-secret', 'test', 'password', 'supersecret'];

function checkSecret(text: string): Uint8Array {
  if (text.length < 32) throw new ConfigError('JWT_SECRET', 'must be at least 32 characters');
  const lower = text.toLowerCase();
  if (KNOWN_WEAK.some((w) => lower.replaceAll(w, '') === '' || lower.startsWith(w + '-') || lower === w)) {
    throw new ConfigError('JWT_SECRET', 'is a well-known example value; generate one with `openssl rand -base64 48`');
  }
  if (new Set(text).size < 8) throw new ConfigError('JWT_SECRET', 'is too repetitive to be random');
  return new TextEncoder().encode(text);
}

/**
 * JWT_SECRET from the environment; required in production. In development a random secret is
 * generated once and kept in DATA_DIR so tokens survive restarts.
 */
export function envToSecrets(env: Env, cfg: ServerConfig): ServerSecrets {
  if (env.JWT_SECRET !== undefined) return { jwtSecret: checkSecret(env.JWT_SECRET) };
  if (cfg.production) throw new ConfigError('JWT_SECRET', 'is required when NODE_ENV=production');
  const file = path.join(cfg.dataDir, 'jwt-secret');
  fs.mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch {
    text = randomBytes(48).toString('base64url');
    try {
      fs.writeFileSync(file, text + '\n', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another instance sharing DATA_DIR won the race: use its secret.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      text = fs.readFileSync(file, 'utf8').trim();
    }
  }
  return { jwtSecret: checkSecret(text) };
}
