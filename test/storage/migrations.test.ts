import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, sql, SqliteDialect } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../src/config/config.js';
import { Mailbox } from '../../src/domain/mailbox.js';
import { createDatabase, OneSchemaPostgresDialect } from '../../src/storage/db.js';
import * as m0001 from '../../src/storage/migrations/0001-init.js';
import * as m0002 from '../../src/storage/migrations/0002-prekeys.js';
import * as m0003 from '../../src/storage/migrations/0003-message-log.js';
import { CtxMigrationProvider } from '../../src/storage/migrations/provider.js';
import { describeEachDialect, dropSchema } from '../_helpers/server.js';

const log = pino({ level: 'silent' });
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

/** A database as release 0002 left it, with its data written the 0002 way (message.new as events rows). */
async function databaseAt0002(dialect: 'sqlite' | 'postgres'): Promise<{ cfg: DatabaseConfig; db: Kysely<any> }> {
  if (dialect === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-migrate-'));
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'old.db');
    return { cfg: { kind: 'sqlite', path: file, synchronous: 'FULL' }, db: new Kysely<any>({ dialect: new SqliteDialect({ database: new BetterSqlite3(file) }) }) };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const url = process.env.TEST_DATABASE_URL!;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`create schema "${schema}"`);
  await admin.end();
  cleanups.push(() => dropSchema(schema));
  const pool = new pg.Pool({ connectionString: url, max: 2, options: `-c search_path=${schema}` });
  // The Migrator introspects: through Kysely's own introspector it would read every schema, and
  // fail when another suite drops its schema meanwhile (see OneSchemaPostgresDialect).
  return { cfg: { kind: 'postgres', url, poolSize: 2, schema }, db: new Kysely<any>({ dialect: new OneSchemaPostgresDialect({ pool }, schema) }) };
}

describeEachDialect('migration 0003 (message.new lives on the message row)', (dialect) => {
  it('carries existing message.new events over, in order with the other events, and replays them the same', async () => {
    const { cfg, db: old } = await databaseAt0002(dialect);
    const migrator = new Migrator({
      db: old,
      provider: new CtxMigrationProvider({ '0001': m0001, '0002': m0002 }, { dialect }),
      ...(cfg.kind === 'postgres' ? { migrationTableSchema: cfg.schema } : {}),
    });
    const { error } = await migrator.migrateToLatest();
    expect(error).toBeUndefined();

    const t = 1_764_000_000_000;
    await old.insertInto('users').values([
      { id: 'u-a', username: 'a', username_lower: 'a', password_hash: 'x', public_key: null, created_at: t },
      { id: 'u-b', username: 'b', username_lower: 'b', password_hash: 'x', public_key: null, created_at: t },
    ]).execute();
    await old.insertInto('mailboxes').values([{ user_id: 'u-a', last_seq: 0 }, { user_id: 'u-b', last_seq: 3 }]).execute();
    await old.insertInto('chats').values({ id: 'c-1', kind: 'direct', direct_key: 'u-a:u-b', last_seq: 2, last_message_id: 'm-2', last_activity_at: t, encryption_status: 'pending', created_by: 'u-a', created_at: t }).execute();
    const message = (id: string, seq: number) => ({
      id, chat_id: 'c-1', seq, sender_id: 'u-a', receiver_id: 'u-b', encrypted_content: 'AAAA', iv: 'AAAAAAAAAAAAAAAAAAAAAA==', mac: 'AAAA', type: 'text', status: 'sent',
      client_message_id: null, created_at: t + seq, delivered_at: null, read_at: null,
    });
    await old.insertInto('messages').values([message('m-1', 1), message('m-2', 2)]).execute();
    await old.insertInto('events').values([
      { user_id: 'u-b', seq: 1, type: 'message.new', message_id: 'm-1', data: null, created_at: t + 1 },
      { user_id: 'u-b', seq: 2, type: 'key.changed', message_id: null, data: JSON.stringify({ userId: 'u-a', publicKey: 'k' }), created_at: t + 2 },
      { user_id: 'u-b', seq: 3, type: 'message.new', message_id: 'm-2', data: null, created_at: t + 3 },
    ]).execute();
    await old.destroy();

    const db = await createDatabase(cfg, log, 0);
    try {
      const mailbox = new Mailbox(db, { now: () => t + 10 });
      const all = await mailbox.readAfter('u-b', 0, 10);
      expect(all.map((e) => [e.seq, (JSON.parse(e.frame) as { type: string }).type])).toEqual([
        [1, 'message.new'],
        [2, 'key.changed'],
        [3, 'message.new'],
      ]);
      expect((JSON.parse(all[0]!.frame) as { data: { id: string } }).data.id).toBe('m-1');
      expect((JSON.parse(all[2]!.frame) as { data: { id: string } }).data.id).toBe('m-2');
      expect((await mailbox.readAfter('u-b', 1, 10)).map((e) => e.seq)).toEqual([2, 3]);
      expect((await mailbox.readAfter('u-b', 0, 2)).map((e) => e.seq)).toEqual([1, 2]);
      const left = await db.db.selectFrom('events').select('type').execute();
      expect(left).toEqual([{ type: 'key.changed' }]);
    } finally {
      await db.close();
    }
  });
});

describeEachDialect('migration 0004 (when each member first wrote)', (dialect) => {
  it('records, for members who have written, their first message time; null for those who never wrote', async () => {
    const { cfg, db: old } = await databaseAt0002(dialect);
    const migrator = new Migrator({
      db: old,
      provider: new CtxMigrationProvider({ '0001': m0001, '0002': m0002, '0003': m0003 }, { dialect }),
      ...(cfg.kind === 'postgres' ? { migrationTableSchema: cfg.schema } : {}),
    });
    expect((await migrator.migrateToLatest()).error).toBeUndefined();

    const t = 1_764_000_000_000;
    const user = (id: string) => ({ id, username: id, username_lower: id, password_hash: 'x', public_key: null, created_at: t });
    await old.insertInto('users').values([user('u-a'), user('u-b'), user('u-c')]).execute();
    await old.insertInto('mailboxes').values([{ user_id: 'u-a', last_seq: 1 }, { user_id: 'u-b', last_seq: 2 }, { user_id: 'u-c', last_seq: 0 }]).execute();
    const chat = (id: string, key: string) => ({ id, kind: 'direct', direct_key: key, last_seq: 0, last_message_id: null, last_activity_at: t, encryption_status: 'pending', created_by: 'u-a', created_at: t });
    await old.insertInto('chats').values([chat('c-ab', 'u-a:u-b'), chat('c-ac', 'u-a:u-c')]).execute();
    await old.insertInto('chat_members').values(
      [['c-ab', 'u-a'], ['c-ab', 'u-b'], ['c-ac', 'u-a'], ['c-ac', 'u-c']].map(([chat_id, user_id]) => ({ chat_id, user_id, unread_count: 0, joined_at: t })),
    ).execute();
    const message = (id: string, seq: number, from: string, to: string, at: number) => ({
      id, chat_id: 'c-ab', seq, sender_id: from, receiver_id: to, encrypted_content: 'AAAA', iv: 'AAAAAAAAAAAAAAAAAAAAAA==', mac: 'AAAA', type: 'text', status: 'sent',
      client_message_id: null, created_at: at, delivered_at: null, read_at: null, receiver_seq: seq,
    });
    await old.insertInto('messages').values([message('m-1', 1, 'u-a', 'u-b', t + 5), message('m-2', 2, 'u-a', 'u-b', t + 9), message('m-3', 3, 'u-b', 'u-a', t + 7)]).execute();
    await old.destroy();

    const db = await createDatabase(cfg, log, 0);
    try {
      const rows = await db.db.selectFrom('chat_members').select(['chat_id', 'user_id', 'wrote_at']).orderBy('chat_id').orderBy('user_id').execute();
      expect(rows.map((r) => [r.chat_id, r.user_id, r.wrote_at === null ? null : Number(r.wrote_at)])).toEqual([
        ['c-ab', 'u-a', t + 5],
        ['c-ab', 'u-b', t + 7],
        ['c-ac', 'u-a', null],
        ['c-ac', 'u-c', null],
      ]);
    } finally {
      await db.close();
    }
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('migrating next to schemas that come and go [postgres]', () => {
  it("reads only its own schema: another one dropped while the Migrator's introspection runs does not fail it", async () => {
    const url = process.env.TEST_DATABASE_URL!;
    const [ours, theirs] = [`t_${randomBytes(6).toString('hex')}`, `t_${randomBytes(6).toString('hex')}`];
    cleanups.push(() => dropSchema(ours), () => dropSchema(theirs));
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const db = new Kysely<any>({ dialect: new OneSchemaPostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }, ours) });
    try {
      await admin.query(`create schema "${ours}"; create table "${ours}".mine (id serial primary key, note text)`);
      await admin.query(`create schema "${theirs}"; create table "${theirs}".theirs (id serial primary key)`);
      // A snapshot taken before the drop still lists the dropped schema's tables while lookups by
      // name find it gone: what an introspection query running when another suite drops its
      // schema sees. Kysely's own introspector fails here with 'schema "<theirs>" does not exist'.
      await db.transaction().setIsolationLevel('repeatable read').execute(async (trx) => {
        await sql`select 1`.execute(trx);
        await admin.query(`drop schema "${theirs}" cascade`);
        const tables = await trx.introspection.getTables();
        expect(tables.map((t) => ({ schema: t.schema, name: t.name, columns: t.columns.map((c) => [c.name, c.dataType, c.isNullable, c.isAutoIncrementing]) }))).toEqual([
          { schema: ours, name: 'mine', columns: [['id', 'int4', false, true], ['note', 'text', true, false]] },
        ]);
      });
    } finally {
      await db.destroy();
      await admin.end();
    }
  });
});
