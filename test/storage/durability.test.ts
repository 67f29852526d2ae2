import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { Api, envelope } from '../_helpers/api.js';
import { testServer, type TestServer } from '../_helpers/server.js';

// SQLITE_SYNCHRONOUS=FULL (the default): a send is acknowledged only after the WAL holding it
// has been flushed to disk (the server does that fdatasync itself, off the event loop).
let dir: string;
let s: TestServer;
let api: Api;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-durable-'));
  s = await testServer({ sqlitePath: path.join(dir, 'db.sqlite') });
  api = new Api(s.app);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('flushes the WAL before acknowledging a send, and acknowledges nothing whose flush failed', async () => {
  const [a, b] = await Promise.all([api.register(), api.register()]);
  const chat = await api.chat(a, b);
  const flush = vi.spyOn(fs, 'fdatasync');
  await api.send(a, { chatId: chat.id });
  expect(flush).toHaveBeenCalled();

  flush.mockImplementation(((_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  }));
  const body = { ...envelope(), chatId: chat.id, clientMessageId: 'flush-fails-1' };
  const failed = await api.post('/messages', body, a.token);
  expect(failed.status).toBeGreaterThanOrEqual(500);
  expect(failed.body.error.message).not.toMatch(/EIO|fdatasync/);

  // Once the disk works again, the client's retry (same clientMessageId) gets its message, once.
  flush.mockRestore();
  const retried = await api.post('/messages', body, a.token);
  expect([200, 201]).toContain(retried.status);
  const history = (await api.get(`/messages/${chat.id}`, b.token)).body.messages;
  expect(history.filter((m: { clientMessageId?: string }) => m.clientMessageId === 'flush-fails-1')).toHaveLength(1);
});

it('T-CFG-03: the database reports how durable an acknowledged write is (logged at start)', async () => {
  expect(await s.ctx.db.durability()).toEqual({
    settings: { journal_mode: 'wal', synchronous: 'FULL (NORMAL + the WAL fsynced before every answer)' },
    survivesPowerLoss: true,
  });
  const normal = await testServer({ sqlitePath: path.join(dir, 'normal.sqlite'), env: { SQLITE_SYNCHRONOUS: 'NORMAL' } });
  const memory = await testServer({});
  try {
    expect(await normal.ctx.db.durability()).toEqual({ settings: { journal_mode: 'wal', synchronous: 'NORMAL' }, survivesPowerLoss: false });
    expect((await memory.ctx.db.durability()).survivesPowerLoss).toBe(false);
  } finally {
    await normal.close();
    await memory.close();
  }
});

it.skipIf(!process.env.TEST_DATABASE_URL)('T-CFG-03: PostgreSQL reports fsync, synchronous_commit and full_page_writes (this test server must have them on)', async () => {
  const pg = await testServer({ dialect: 'postgres' });
  try {
    expect(await pg.ctx.db.durability()).toEqual({ settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' }, survivesPowerLoss: true });
  } finally {
    await pg.close();
  }
});

it('SQLite reports no table statistics to keep current (nothing is logged at start)', async () => {
  expect(await s.ctx.db.statistics()).toBeNull();
});

it.skipIf(!process.env.TEST_DATABASE_URL)('PostgreSQL reports autovacuum and track_counts as the server has them, and whether both are on', async () => {
  const server = await testServer({ dialect: 'postgres' });
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  try {
    const show = async (name: string) => (await admin.query<Record<string, string>>(`show ${name}`)).rows[0]![name]!;
    const settings = { autovacuum: await show('autovacuum'), track_counts: await show('track_counts') };
    expect(await server.ctx.db.statistics()).toEqual({ settings, keptCurrent: settings.autovacuum === 'on' && settings.track_counts === 'on' });
  } finally {
    await admin.end();
    await server.close();
  }
});
