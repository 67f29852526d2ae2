/**
 * `npm run bench:storage`: what storing a message durably costs on this machine with nothing else
 * around it — the floor under `ws-send`'s CPU per message (README, Performance; docs/performance.md).
 *
 * The server's schema (its migrations, on a fresh SQLite file with the server's page size and
 * pragmas), 200 users, 1,000 one-to-one chats; then messages in commit groups exactly as a SQLite
 * send runs them: the insert that takes the chat's and the receiver's next numbers
 * (src/storage/repositories/messages.ts, placeSqliteQ), the chat's, mailbox's and unread counter's
 * updates, COMMIT, the WAL fdatasync the server does for SQLITE_SYNCHRONOUS=FULL, and a PASSIVE
 * checkpoint from a second connection every 200 ms (the server's checkpoint thread, here inline).
 * No JavaScript of the server runs: what is printed is SQLite, the kernel and better-sqlite3's
 * bindings only, pinned to one core when taskset is available.
 *
 * Each message carries a `clientMessageId` made as the SDK makes it (time first, then random:
 * packages/sdk/src/client/random.ts); `--random-client-ids` uses random ones instead, to show what
 * they cost in the (sender, clientMessageId) index as history grows (decision 0027).
 *
 *   npm run bench:storage                 # groups of 64 and 512, 60,000 messages each
 *   npm run bench:storage -- 512 100000   # one group size, N messages
 *   npm run bench:storage -- 64 400000 --random-client-ids
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pino from 'pino';
import { timeOrderedId } from '../packages/sdk/src/client/random.js';
import { createDatabase } from '../src/storage/db.js';
import { procIo } from './lib.js';

const COLUMNS = ['id', 'chat_id', 'seq', 'sender_id', 'receiver_id', 'encrypted_content', 'iv', 'mac', 'type', 'status', 'client_message_id', 'created_at', 'delivered_at', 'read_at', 'receiver_seq'];

async function freshDatabase(dir: string): Promise<string> {
  const file = path.join(dir, 'floor.db');
  const db = await createDatabase({ kind: 'sqlite', path: file, synchronous: 'FULL' }, pino({ level: 'silent' }));
  await db.migrate();
  await db.close();
  return file;
}

function run(file: string, group: number, total: number, randomClientIds: boolean): void {
  const db = new BetterSqlite3(file);
  // The writer's settings (src/storage/db.ts).
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('cache_size = -16384');
  db.pragma('wal_autocheckpoint = 100000');
  const now = Date.now();
  const users = Array.from({ length: 200 }, () => randomUUID());
  const chats: [string, string, string][] = [];
  db.transaction(() => {
    const user = db.prepare('insert into users (id, username, username_lower, password_hash, public_key, created_at) values (?, ?, ?, ?, null, ?)');
    const mailbox = db.prepare('insert into mailboxes (user_id) values (?)');
    users.forEach((u, i) => {
      user.run(u, `u${i}`, `u${i}`, 'x', now);
      mailbox.run(u);
    });
    const chat = db.prepare("insert into chats (id, kind, direct_key, last_seq, last_activity_at, encryption_status, created_by, created_at) values (?, 'direct', ?, 0, ?, 'none', ?, ?)");
    const member = db.prepare('insert into chat_members (chat_id, user_id, unread_count, joined_at) values (?, ?, 0, ?)');
    const pairs = new Set<string>();
    while (chats.length < 1000) {
      const a = users[Math.floor(Math.random() * users.length)]!;
      const b = users[Math.floor(Math.random() * users.length)]!;
      const key = a < b ? `${a}:${b}` : `${b}:${a}`;
      if (a === b || pairs.has(key)) continue;
      pairs.add(key);
      const id = randomUUID();
      chat.run(id, key, now, a, now);
      member.run(id, a, now);
      member.run(id, b, now);
      chats.push([id, a, b]);
    }
  })();

  const values = COLUMNS.map((c) => (c === 'seq' ? 'c.last_seq + 1' : c === 'receiver_seq' ? 'mb.last_seq + 1' : '?')).join(', ');
  const place = db.prepare(
    `insert into messages (${COLUMNS.join(', ')}) select ${values} from chats as c, mailboxes as mb where c.id = ? and mb.user_id = ? ` +
      'on conflict (sender_id, client_message_id) do nothing returning seq, receiver_seq',
  );
  const settleChat = db.prepare('update chats set last_seq = ?, last_message_id = ?, last_activity_at = ? where id = ?');
  const settleMailbox = db.prepare('update mailboxes set last_seq = ? where user_id = ?');
  const unread = db.prepare('update chat_members set unread_count = unread_count + 1 where chat_id = ? and user_id = ?');
  const begin = db.prepare('begin immediate');
  const commit = db.prepare('commit');
  const checkpointer = new BetterSqlite3(file);
  const wal = fs.openSync(`${file}-wal`, 'r+');
  const content = randomBytes(256).toString('base64');
  const iv = randomBytes(16).toString('base64');
  const mac = randomBytes(32).toString('base64');

  let statements = 0n;
  let commits = 0n;
  let syncs = 0n;
  let checkpoints = 0n;
  let lastCheckpoint = performance.now();
  let n = 0;
  const io0 = procIo('self');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let done = 0; done < total; done += group) {
    // Made before the clock starts: the ids are the client's work, not the server's.
    const clientIds = Array.from({ length: group }, () => (randomClientIds ? randomUUID() : timeOrderedId()));
    const t1 = process.hrtime.bigint();
    begin.run();
    for (let i = 0; i < group; i++) {
      const [chatId, a, b] = chats[Math.floor(Math.random() * chats.length)]!;
      const [sender, receiver] = Math.random() < 0.5 ? [a, b] : [b, a];
      const id = `${Date.now().toString(16).padStart(12, '0')}${(n++).toString(16).padStart(20, '0')}`;
      const row = place.get(id, chatId, sender, receiver, content, iv, mac, 'text', 'sent', clientIds[i], now, null, null, chatId, receiver) as { seq: number; receiver_seq: number };
      settleChat.run(row.seq, id, now, chatId);
      settleMailbox.run(row.receiver_seq, receiver);
      unread.run(chatId, receiver);
    }
    const t2 = process.hrtime.bigint();
    commit.run();
    const t3 = process.hrtime.bigint();
    fs.fdatasyncSync(wal);
    const t4 = process.hrtime.bigint();
    statements += t2 - t1;
    commits += t3 - t2;
    syncs += t4 - t3;
    if (performance.now() - lastCheckpoint >= 200) {
      checkpointer.pragma('wal_checkpoint(PASSIVE)');
      lastCheckpoint = performance.now();
      checkpoints += process.hrtime.bigint() - t4;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  const io1 = procIo('self');
  const wall = performance.now() - t0;
  const per = (ns: bigint) => (Number(ns) / 1000 / total).toFixed(1);
  console.log(
    `groups of ${String(group).padStart(4)}: CPU ${((cpu.user + cpu.system) / total).toFixed(1)} µs/msg (user ${(cpu.user / total).toFixed(1)}, system ${(cpu.system / total).toFixed(1)}); ` +
      `wall ${((wall * 1000) / total).toFixed(1)} µs/msg = statements ${per(statements)} + commit ${per(commits)} + fdatasync ${per(syncs)} + checkpoints ${per(checkpoints)}` +
      (io0 && io1
        ? // A few per cent between runs: checkpoints every 200 ms of wall time save more copies when the loop is slower.
          `; per msg: ${((io1.wchar - io0.wchar) / total / 1024).toFixed(1)} KiB written, ${((io1.syscr - io0.syscr) / total).toFixed(2)} read calls (bytes: WAL frames and checkpoint copies; reads: checkpoint copies and pages missed in the cache)`
        : ''),
  );
  fs.closeSync(wal);
  checkpointer.close();
  db.close();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const randomClientIds = args.includes('--random-client-ids');
  const [groupArg, totalArg] = args.filter((a) => !a.startsWith('--'));
  const groups = groupArg ? [Number(groupArg)] : [64, 512];
  const total = Number(totalArg ?? 60_000);
  if (groups.some((g) => !(g > 0)) || !(total > 0)) throw new Error('usage: storage-floor.ts [group] [messages] [--random-client-ids]');
  // One core, like the server in `npm run bench`: re-run under taskset once.
  if (!process.env.STORAGE_FLOOR_PINNED) {
    try {
      execFileSync('taskset', ['-c', '0', process.execPath, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, STORAGE_FLOOR_PINNED: '1' } });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      console.log('taskset unavailable: not pinned');
    }
  }
  console.log(`storage floor: ${total} messages per run, ${randomClientIds ? 'random' : 'time-ordered'} clientMessageIds, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, node ${process.version}`);
  for (const group of groups) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-floor-'));
    try {
      run(await freshDatabase(dir), group, total, randomClientIds);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

await main();
