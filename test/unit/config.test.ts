import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, envToConfig } from '../../src/config/config.js';
import { readEnv } from '../../src/config/env.js';
import { envToSecrets } from '../../src/config/secrets.js';

function fails(env: Record<string, string>, variable: string): void {
  try {
    envToConfig(readEnv(env));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message).toMatch(new RegExp(`^Invalid ${variable}: `));
    return;
  }
  throw new Error(`expected ${variable} to be refused`);
}

describe('configuration', () => {
  it('has the SPEC defaults', () => {
    const cfg = envToConfig(readEnv({}));
    expect(cfg.http).toEqual({ host: '127.0.0.1', port: 3000, trustProxy: false });
    expect(cfg.db).toEqual({ kind: 'sqlite', path: path.resolve('data/safechat.db'), synchronous: 'FULL' });
    expect(cfg.auth.accessTtlSec).toBe(900);
    expect(cfg.auth.refreshTtlSec).toBe(30 * 86400);
    expect(cfg.rateLimits).toBe(true);
    expect(cfg.maxSocketsPerIp).toBe(100);
    expect(cfg.redisUrl).toBeNull();
    expect(cfg.auth.argon2).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
  });

  it('parses every documented form', () => {
    const cfg = envToConfig(
      readEnv({
        PORT: '8080', HOST: '0.0.0.0', DATABASE_URL: 'postgres://u@db:5432/chat', DB_POOL_SIZE: '20', REDIS_URL: 'redis://r:6379',
        ACCESS_TOKEN_TTL: '5m', REFRESH_TOKEN_TTL: '12h', RATE_LIMITS: 'off', ALLOWED_ORIGINS: 'https://a.example, https://b.example:8443',
        TRUST_PROXY: '10.0.0.0/8,127.0.0.1', LOG_LEVEL: 'debug', MAX_MESSAGE_BYTES: '131072', EVENT_RETENTION_DAYS: '45', SHUTDOWN_GRACE: '20s',
        MAX_SOCKETS_PER_IP: '5000',
      }),
    );
    expect(cfg.db).toEqual({ kind: 'postgres', url: 'postgres://u@db:5432/chat', poolSize: 20 });
    expect(cfg.maxSocketsPerIp).toBe(5000);
    expect(cfg.allowedOrigins).toEqual(['https://a.example', 'https://b.example:8443']);
    expect(cfg.http.trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect([cfg.auth.accessTtlSec, cfg.auth.refreshTtlSec, cfg.shutdownGraceMs]).toEqual([300, 43200, 20000]);
    expect(envToConfig(readEnv({ DATABASE_URL: 'sqlite::memory:' })).db).toMatchObject({ path: ':memory:' });
    expect(envToConfig(readEnv({ DATABASE_URL: 'sqlite:/var/lib/x.db' })).db).toMatchObject({ path: '/var/lib/x.db' });
    // An empty variable is unset.
    expect(envToConfig(readEnv({ PORT: '' })).http.port).toBe(3000);
  });

  it('refuses bad values with one line naming the variable', () => {
    fails({ PORT: 'eighty' }, 'PORT');
    fails({ PORT: '70000' }, 'PORT');
    fails({ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL');
    fails({ DATABASE_URL: 'sqlite:' }, 'DATABASE_URL');
    fails({ ACCESS_TOKEN_TTL: '15 minutes' }, 'ACCESS_TOKEN_TTL');
    fails({ ACCESS_TOKEN_TTL: '2d' }, 'ACCESS_TOKEN_TTL');
    fails({ RATE_LIMITS: 'maybe' }, 'RATE_LIMITS');
    fails({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL');
    fails({ REDIS_URL: 'http://x' }, 'REDIS_URL');
    fails({ ALLOWED_ORIGINS: 'https://a.example/path' }, 'ALLOWED_ORIGINS');
    fails({ EVENT_RETENTION_DAYS: '7' }, 'EVENT_RETENTION_DAYS');
    fails({ SQLITE_SYNCHRONOUS: 'OFF' }, 'SQLITE_SYNCHRONOUS');
    fails({ SESSION_MAX_AGE: '1d' }, 'SESSION_MAX_AGE');
    fails({ MAX_SOCKETS_PER_IP: '0' }, 'MAX_SOCKETS_PER_IP');
  });

  it('production refuses RATE_LIMITS=off and a listener without a TLS-terminating proxy', () => {
    fails({ NODE_ENV: 'production', TRUST_PROXY: '10.0.0.1', RATE_LIMITS: 'off' }, 'RATE_LIMITS');
    // TOK-03: access tokens of at most 15 minutes in production; longer only elsewhere (benchmarks).
    fails({ NODE_ENV: 'production', TRUST_PROXY: '10.0.0.1', ACCESS_TOKEN_TTL: '16m' }, 'ACCESS_TOKEN_TTL');
    expect(envToConfig(readEnv({ NODE_ENV: 'production', TRUST_PROXY: '10.0.0.1', ACCESS_TOKEN_TTL: '15m' })).auth.accessTtlSec).toBe(900);
    expect(envToConfig(readEnv({ ACCESS_TOKEN_TTL: '12h' })).auth.accessTtlSec).toBe(12 * 3600);
    // The fault suite's hook (T-DUR-02) never reaches production; elsewhere it is bounded.
    fails({ NODE_ENV: 'production', TRUST_PROXY: '10.0.0.1', TEST_HOLD_AFTER_COMMIT_MS: '100' }, 'TEST_HOLD_AFTER_COMMIT_MS');
    fails({ TEST_HOLD_AFTER_COMMIT_MS: '20000' }, 'TEST_HOLD_AFTER_COMMIT_MS');
    expect(envToConfig(readEnv({ TEST_HOLD_AFTER_COMMIT_MS: '250' })).messages.holdAfterCommitMs).toBe(250);
    expect(envToConfig(readEnv({})).messages.holdAfterCommitMs).toBe(0);
    fails({ NODE_ENV: 'production' }, 'TRUST_PROXY');
    expect(envToConfig(readEnv({ NODE_ENV: 'production', ALLOW_PLAIN_HTTP: 'on' })).production).toBe(true);
    expect(envToConfig(readEnv({ NODE_ENV: 'production', TRUST_PROXY: '10.0.0.1' })).serveApp).toBe(false);
  });

  it('JWT_SECRET: required in production, long, not a well-known value; generated and kept in development', () => {
    const prod = envToConfig(readEnv({ NODE_ENV: 'production', TRUST_PROXY: '10.0.0.1' }));
    expect(() => envToSecrets({}, prod)).toThrow(/JWT_SECRET/);
    for (const weak of ['short', 'changeme'.repeat(5), 'secret'.repeat(6), 'a'.repeat(40)]) {
      expect(() => envToSecrets({ JWT_SECRET: weak }, prod), weak).toThrow(/JWT_SECRET/);
    }
    expect(envToSecrets({ JWT_SECRET: 'q8Jd2-vLx9+Pz4mTr7Kw1Ns6Yb3Hc5Fg0Ae' }, prod).jwtSecret.length).toBe(35);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-secret-'));
    const dev = envToConfig(readEnv({ DATA_DIR: dir }));
    const first = envToSecrets({}, dev);
    const second = envToSecrets({}, dev);
    expect(Buffer.from(first.jwtSecret).equals(Buffer.from(second.jwtSecret))).toBe(true);
    expect(fs.statSync(path.join(dir, 'jwt-secret')).mode & 0o777).toBe(0o600);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the server exits at start with one clear line for a bad variable', () => {
    let out = '';
    try {
      execFileSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, PORT: 'nope' }, stdio: 'pipe', timeout: 20_000 });
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      expect(e.status).toBe(78);
      out = e.stderr.toString().trim();
    }
    expect(out).toBe('Invalid PORT: expected a whole number, got "nope"');
  });

  it('an address that cannot be listened on is named the same way (HOST, or PORT when taken)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-listen-'));
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    const port = (taken.address() as net.AddressInfo).port;
    const run = (env: Record<string, string>) => {
      try {
        execFileSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, DATA_DIR: dir, DATABASE_URL: 'sqlite::memory:', LOG_LEVEL: 'silent', ...env }, stdio: 'pipe', timeout: 20_000 });
        return { status: 0, line: '' };
      } catch (err) {
        const e = err as { status: number; stderr: Buffer };
        return { status: e.status, line: e.stderr.toString().trim() };
      }
    };
    try {
      expect(run({ HOST: 'no-such-host.invalid', PORT: '0' })).toEqual({ status: 78, line: expect.stringMatching(/^Invalid HOST: cannot listen on no-such-host\.invalid:0 \(E[A-Z_]+\)$/) });
      expect(run({ HOST: '127.0.0.1', PORT: String(port) })).toEqual({ status: 78, line: `Invalid PORT: cannot listen on 127.0.0.1:${port} (EADDRINUSE)` });
    } finally {
      taken.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SESSION_MAX_AGE, when unset, is never shorter than REFRESH_TOKEN_TTL', () => {
    expect(envToConfig(readEnv({})).auth.sessionMaxAgeSec).toBe(90 * 86400);
    expect(envToConfig(readEnv({ REFRESH_TOKEN_TTL: '120d' })).auth.sessionMaxAgeSec).toBe(120 * 86400);
    fails({ REFRESH_TOKEN_TTL: '120d', SESSION_MAX_AGE: '100d' }, 'SESSION_MAX_AGE');
  });
});
