/**
 * Shared by the security suite: a fingerprint of the database ("nothing changed"), a strict check of
 * the SPEC's error shape, and raw-socket helpers for the cases a client library will not send.
 */
import net from 'node:net';
import { sql } from 'kysely';
import { expect } from 'vitest';
import { ERROR_STATUS } from '@safechat/protocol';
import type { Res } from '../_helpers/api.js';
import type { TestServer } from '../_helpers/server.js';

/** Tables whose row counts must not move when a request is refused. */
export const TABLES = [
  'users',
  'messages',
  'chats',
  'chat_members',
  'events',
  'refresh_tokens',
  'token_families',
  'one_time_prekeys',
  'signed_prekeys',
] as const;

export type Snapshot = Record<string, number>;

/**
 * Row counts of every table above plus a few state counters a refused request must not move
 * either (statuses, revocations, identity keys, unread counts) — one query, both dialects.
 */
export async function snapshot(server: Pick<TestServer, 'ctx'>): Promise<Snapshot> {
  const counts = TABLES.map((t) => sql`(select count(*) from ${sql.table(t)}) as ${sql.ref(t)}`);
  const state = [
    sql`(select count(*) from messages where status <> 'sent') as messages_not_sent`,
    sql`(select count(*) from token_families where revoked_at is not null) as families_revoked`,
    sql`(select count(*) from refresh_tokens where used_at is not null) as refresh_used`,
    sql`(select count(*) from users where public_key is not null) as users_with_key`,
    sql`(select coalesce(sum(unread_count), 0) from chat_members) as unread_total`,
  ];
  const { rows } = await sql<Record<string, unknown>>`select ${sql.join([...counts, ...state])}`.execute(server.ctx.db.db);
  return Object.fromEntries(Object.entries(rows[0]!).map(([k, v]) => [k, Number(v)]));
}

/** Runs `fn` and asserts the database fingerprint is the same afterwards. */
export async function unchanged<T>(server: Pick<TestServer, 'ctx'>, fn: () => Promise<T>, label = ''): Promise<T> {
  const before = await snapshot(server);
  const out = await fn();
  expect(await snapshot(server), `database changed: ${label}`).toEqual(before);
  return out;
}

/** What an error body must never contain: stack frames, file paths, SQL and driver names, internals. */
export const LEAK =
  /\bat \S+:\d+:\d+|node_modules|\/work\/|\.[jt]s:\d|SQLITE_[A-Z]|SqliteError|DatabaseError|pg-protocol|syntax error at|relation "|violates|[A-Z][a-z]*Error: |"stack"|errno|ECONN[A-Z]/;

/**
 * The SPEC's error shape, exactly: `{"error":{code,message,details?}}`, `code` from the closed list,
 * the HTTP status the code maps to, nothing that leaks internals, and `Retry-After` on 429/503.
 */
export function expectError(res: Pick<Res, 'status' | 'body' | 'text' | 'headers'>, status: number, code?: string, label = ''): void {
  const where = `${label} → ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, where).toBe(status);
  expectErrorBody(res.body, where);
  expect(ERROR_STATUS[res.body.error.code as keyof typeof ERROR_STATUS], where).toBe(res.status);
  if (code !== undefined) expect(res.body.error.code, where).toBe(code);
  expect(String(res.headers['content-type']), where).toMatch(/^application\/json/);
  if (status === 429 || status === 503) expect(res.headers['retry-after'], where).toMatch(/^[1-9][0-9]*$/);
}

/** The body part of {@link expectError}, for WebSocket error frames and refused upgrades too. */
export function expectErrorBody(body: unknown, where = ''): void {
  expect(body, where).toBeTypeOf('object');
  const b = body as { error?: Record<string, unknown> };
  expect(Object.keys(b ?? {}), where).toEqual(['error']);
  const e = b.error!;
  expect(e, where).toBeTypeOf('object');
  for (const k of Object.keys(e)) expect(['code', 'message', 'details'], where).toContain(k);
  expect(Object.keys(ERROR_STATUS), where).toContain(e.code);
  expect(e.message, where).toBeTypeOf('string');
  expect(JSON.stringify(body), where).not.toMatch(LEAK);
}

/** An error's `details` as text, to look for a finer reason such as `unknown_field`. */
export function reasons(res: Pick<Res, 'body'>): string {
  return JSON.stringify(res.body?.error?.details ?? null);
}

/** True when `s` is a legal HTTP header value a client library will send as is. */
export function headerSafe(s: string): boolean {
  return /^[\x21-\x7e]*$/.test(s);
}

export interface RawResponse {
  /** Everything the server wrote, as latin1 text. */
  text: string;
  /** Status codes of every HTTP response in `text`, in order. */
  statuses: number[];
  /** The server closed the connection (not our timeout). */
  closed: boolean;
  /** Milliseconds from the first byte written to the first byte read. */
  firstByteMs: number;
}

/**
 * Writes raw bytes to the server and collects the answer until it closes the connection or
 * `waitMs` passes. `endAfterWrite` half-closes our side once everything is written.
 */
export function rawHttp(port: number, chunks: (string | Buffer)[], opts: { waitMs?: number; endAfterWrite?: boolean } = {}): Promise<RawResponse> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    const t0 = Date.now();
    let firstByteMs = -1;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(parts).toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ text, statuses, closed, firstByteMs });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 2000);
    sock.on('data', (d) => {
      if (firstByteMs < 0) firstByteMs = Date.now() - t0;
      parts.push(d);
    });
    sock.on('close', () => finish(true));
    sock.on('error', () => undefined);
    sock.on('connect', () => {
      void (async () => {
        for (const c of chunks) {
          if (sock.destroyed) return;
          if (!sock.write(c)) await new Promise((r) => sock.once('drain', r));
        }
        if (opts.endAfterWrite) sock.end();
      })().catch(() => undefined);
    });
  });
}

/** The JSON body of the first HTTP response in a raw answer (undefined if none parses). */
export function rawBody(text: string): unknown {
  const start = text.indexOf('\r\n\r\n');
  if (start < 0) return undefined;
  const rest = text.slice(start + 4);
  const end = rest.indexOf('HTTP/1.1 ');
  try {
    return JSON.parse(end < 0 ? rest : rest.slice(0, end));
  } catch {
    return undefined;
  }
}

/** `count` fresh client addresses (documentation range), so a suite's setup trips no per-IP limit. */
let ipSeq = 0;
export function freshIp(): string {
  ipSeq++;
  return `198.18.${(ipSeq >> 8) & 255}.${ipSeq & 255}`;
}

/** Times an async call in milliseconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await fn();
  return [out, performance.now() - t0];
}
