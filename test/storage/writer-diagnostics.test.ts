import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { createDatabase, SQLITE_DIAGNOSTICS, type CommitGroupEvent, type Database, type WalRestartEvent } from '../../src/storage/db.js';

// The SQLite writer tells subscribers of node:diagnostics_channel what its commit groups and WAL
// restarts cost (`npm run bench -- --trace` lines a latency tail up with them).
const opened: { dir: string; db: Database }[] = [];
afterEach(async () => {
  for (const { dir, db } of opened.splice(0)) {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function open(checkpoint?: { intervalMs: number; restartFrames: number; quietFrames: number }): Promise<Database> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-diag-'));
  const db = await createDatabase({ kind: 'sqlite', path: path.join(dir, 'db.sqlite'), synchronous: 'FULL', ...(checkpoint ? { checkpoint } : {}) }, pino({ level: 'silent' }));
  opened.push({ dir, db });
  await db.transaction((tx) => sql`create table t (id integer primary key, body text not null)`.execute(tx.db));
  return db;
}

function listen<E>(name: string): { events: E[]; stop: () => void } {
  const events: E[] = [];
  const onEvent = (e: unknown) => events.push(e as E);
  subscribe(name, onEvent);
  return { events, stop: () => unsubscribe(name, onEvent) };
}

it('publishes each commit group once it is durable: its units and the time of its statements, commit and fsync', async () => {
  const db = await open();
  const groups = listen<CommitGroupEvent>(SQLITE_DIAGNOSTICS.commitGroup);
  try {
    await Promise.all(Array.from({ length: 40 }, (_, i) => db.transaction((tx) => sql`insert into t (body) values (${`unit-${i}`})`.execute(tx.db))));
    expect(groups.events.reduce((n, g) => n + g.units, 0)).toBe(40);
    for (const g of groups.events) {
      expect(g.units).toBeGreaterThan(0);
      expect(Math.min(g.runMs, g.commitMs)).toBeGreaterThanOrEqual(0);
      // SQLITE_SYNCHRONOUS=FULL: the WAL is fsynced on the thread pool before anyone is answered.
      expect(g.syncMs).toBeGreaterThan(0);
    }
  } finally {
    groups.stop();
  }
  // Nothing is published (or measured) without a subscriber.
  await db.transaction((tx) => sql`insert into t (body) values ('after')`.execute(tx.db));
  expect(groups.events.reduce((n, g) => n + g.units, 0)).toBe(40);
});

/** Commits of ~20 KB each, yielding now and then so the checkpoint thread can run. */
async function writeMegabytes(db: Database): Promise<void> {
  const body = 'x'.repeat(1000);
  for (let c = 0; c < 200; c++) {
    await db.transaction(async (tx) => {
      for (let i = 0; i < 20; i++) await sql`insert into t (body) values (${body})`.execute(tx.db);
    });
    if (c % 10 === 0) await new Promise((r) => setTimeout(r, 2));
  }
}

it('publishes each pause the writer takes so that the WAL can start over, and none while the WAL is short', async () => {
  const short = listen<WalRestartEvent>(SQLITE_DIAGNOSTICS.walRestart);
  try {
    // ~4 MB through a WAL that may hold ~200 frames of 2 KiB: the thread asks for pauses.
    await writeMegabytes(await open({ intervalMs: 5, restartFrames: 200, quietFrames: 50 }));
  } finally {
    short.stop();
  }
  expect(short.events.length).toBeGreaterThan(0);
  for (const e of short.events) {
    expect(e.pauseMs).toBeGreaterThanOrEqual(0);
    expect(e.waiting).toBeGreaterThanOrEqual(0);
    expect(e.frames).toBeGreaterThanOrEqual(0);
  }
  // The thread's pass behind each pause: on Linux, its time on a CPU and waiting for one, which
  // cannot exceed the pass itself (the rest is the disk).
  const passes = short.events.flatMap((e) => (e.pass ? [e.pass] : []));
  expect(passes.length).toBeGreaterThan(0);
  for (const pass of passes) {
    expect(pass.ms).toBeGreaterThanOrEqual(0);
    if (process.platform !== 'linux') continue;
    expect(pass.cpuMs).toBeGreaterThanOrEqual(0);
    expect(pass.cpuMs! + pass.runqMs!).toBeLessThanOrEqual(pass.ms + 1);
  }

  // The control: the same writes with the server's threshold (20,000 frames, ~40 MB) never pause.
  const long = listen<WalRestartEvent>(SQLITE_DIAGNOSTICS.walRestart);
  try {
    await writeMegabytes(await open());
  } finally {
    long.stop();
  }
  expect(long.events).toEqual([]);
});
