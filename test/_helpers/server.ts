import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { describe } from 'vitest';
import { createApp } from '../../src/app.js';
import { envToConfig, type ServerConfig } from '../../src/config/config.js';
import type { Env } from '../../src/config/env.js';
import { AppContext, type ContextOverrides } from '../../src/context.js';

export type DialectName = 'sqlite' | 'postgres';

const PG_URL = process.env.TEST_DATABASE_URL;

/** SQLite always; PostgreSQL too when TEST_DATABASE_URL is set. */
export const dialects: DialectName[] = PG_URL ? ['sqlite', 'postgres'] : ['sqlite'];

let warned = false;
/** Runs a suite once per configured database. */
export function describeEachDialect(name: string, fn: (dialect: DialectName) => void): void {
  if (!PG_URL && !warned) {
    warned = true;
    console.warn('[tests] TEST_DATABASE_URL is not set: PostgreSQL variants are SKIPPED (SQLite only).');
  }
  for (const dialect of dialects) describe(`${name} [${dialect}]`, () => fn(dialect));
}

export const TEST_JWT_SECRET = new TextEncoder().encode('test-only-secret-7f3a9c1e5b2d8f4a6c0e9b3d7a1f5c8e');

export interface TestServerOptions {
  dialect?: DialectName;
  env?: Env;
  overrides?: ContextOverrides;
  /** Listen on 127.0.0.1:<random> (for WebSocket and raw-socket tests). */
  listen?: boolean;
  /** An explicit SQLite path (default: in memory). */
  sqlitePath?: string;
  /** Reuse an existing PostgreSQL schema (several instances on one database). */
  pgSchema?: string;
  cfg?: (cfg: ServerConfig) => void;
}

export interface TestServer {
  ctx: AppContext;
  app: FastifyInstance;
  /** http://127.0.0.1:port when listening */
  url: string;
  wsUrl: string;
  pgSchema?: string;
  close(): Promise<void>;
}

/** A real app on a real database: SQLite in memory, or a fresh PostgreSQL schema. */
export async function testServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dialect = opts.dialect ?? 'sqlite';
  if (dialect === 'postgres' && !PG_URL) throw new Error('TEST_DATABASE_URL is not set');
  const databaseUrl = dialect === 'postgres' ? PG_URL! : `sqlite:${opts.sqlitePath ?? ':memory:'}`;
  const cfg = envToConfig({ LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl, DATA_DIR: '/tmp/safechat-test-data', SERVE_APP: 'off', ...opts.env });
  let pgSchema: string | undefined;
  if (cfg.db.kind === 'postgres') {
    pgSchema = opts.pgSchema ?? `t_${randomBytes(6).toString('hex')}`;
    cfg.db.schema = pgSchema;
    cfg.db.poolSize = 5;
  }
  opts.cfg?.(cfg);
  const ctx = await AppContext.fromConfig(cfg, { jwtSecret: TEST_JWT_SECRET }, { instanceId: randomUUID(), ...opts.overrides });
  const app = await createApp(ctx);
  let url = '';
  if (opts.listen) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    if (addr && typeof addr === 'object') url = `http://127.0.0.1:${addr.port}`;
  } else {
    await app.ready();
  }
  const ownsSchema = pgSchema !== undefined && opts.pgSchema === undefined;
  return {
    ctx,
    app,
    url,
    wsUrl: url.replace('http', 'ws') + '/ws',
    ...(pgSchema !== undefined ? { pgSchema } : {}),
    async close() {
      await app.close();
      await ctx.close();
      if (ownsSchema) await dropSchema(pgSchema!);
    },
  };
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}
