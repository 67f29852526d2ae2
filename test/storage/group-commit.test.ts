import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../src/storage/db.js';
import { turnCounter } from '../_helpers/turns.js';

// SQLite group commit on a file database: a group's units run in slices with turns of the event
// loop between them, inside one open transaction; units that arrive meanwhile join it.
let dir: string;
let db: Database;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-group-'));
  db = await createDatabase({ kind: 'sqlite', path: path.join(dir, 'db.sqlite'), synchronous: 'NORMAL' }, pino({ level: 'silent' }));
  await db.transaction((tx) => sql`create table t (id integer primary key, v text not null)`.execute(tx.db));
});
afterAll(async () => {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};
const count = async () => Number((await sql<{ n: number }>`select count(*) as n from t`.execute(db.db)).rows[0]!.n);

it('a long group lets the event loop run between slices, and takes in units that arrive meanwhile', async () => {
  const before = await count();
  const turns = turnCounter();
  // 30 units of 0.4 ms each: more than one 8 ms slice, and far inside the group's limits (50 ms of
  // work, 150 ms from its start) even on a loaded machine, where wall-clock time stretches.
  let firstAnswered = false;
  const turnAt: number[] = [];
  const units = Array.from({ length: 30 }, (_, i) =>
    db.transaction(async (tx) => {
      turnAt[i] = turns.now();
      busy(0.4);
      await sql`insert into t (v) values (${`unit-${i}`})`.execute(tx.db);
    }),
  );
  void units[0]!.then(() => (firstAnswered = true));
  // Queued behind the group's first turn: it arrives while the group is under way.
  const late = new Promise<{ answeredBefore: boolean; visibleToReaders: number }>((resolve, reject) => {
    setImmediate(() => {
      db.transaction(async (tx) => {
        await sql`insert into t (v) values ('late')`.execute(tx.db);
        // Same transaction as the 30: none of them is answered yet, and readers see none of it.
        return { answeredBefore: firstAnswered, visibleToReaders: (await count()) - before };
      }).then(resolve, reject);
    });
  });
  await Promise.all(units);
  const seen = await late;
  turns.stop();

  expect(seen).toEqual({ answeredBefore: false, visibleToReaders: 0 });
  expect(await count()).toBe(before + 31);
  // The loop turned while the group ran (8 ms slices of 12 ms of work); one slice would be 0.
  expect(turnAt[29]! - turnAt[0]!).toBeGreaterThanOrEqual(1);
});

it('a unit that fails rolls back alone, also in a sliced group', async () => {
  const before = await count();
  const results = await Promise.allSettled(
    Array.from({ length: 40 }, (_, i) =>
      db.transaction(async (tx) => {
        busy(0.5);
        await sql`insert into t (v) values (${`s-${i}`})`.execute(tx.db);
        if (i === 25) throw new Error('unit 25 refuses');
      }),
    ),
  );
  expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
  expect(await count()).toBe(before + 39);
  const rows = (await sql<{ v: string }>`select v from t where v = 's-25'`.execute(db.db)).rows;
  expect(rows).toEqual([]);
});

it('a large group answers its callers over several turns, in order', async () => {
  const turns = turnCounter();
  const answered: { i: number; turn: number }[] = [];
  // 300 cheap units: one group, committed once, answered 128 per turn.
  await Promise.all(
    Array.from({ length: 300 }, (_, i) =>
      db
        .transaction((tx) => sql`insert into t (v) values (${`answer-${i}`})`.execute(tx.db))
        .then(() => answered.push({ i, turn: turns.now() })),
    ),
  );
  turns.stop();
  expect(answered.map((a) => a.i)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  expect(new Set(answered.map((a) => a.turn)).size).toBeGreaterThanOrEqual(3);
});
