import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  createChat,
  envelope,
  freshDatabase,
  LiveSocket,
  register,
  reportFigures,
  ServerProcess,
  TEST_DATABASE_URL,
  tempDir,
  useFaultHooks,
  waitFor,
} from './_harness.js';

/**
 * T-DUR-02 (SECURITY.md §4c): the kill falls *between* the commit and the answer. The server runs
 * with the test hook TEST_HOLD_AFTER_COMMIT_MS (refused in production), so every send's answer waits
 * after its commit; the test watches the database until the message is there, then kill -9s the
 * server while the answer is still held. The client saw no answer. After a restart, the retry with the
 * same clientMessageId must get the original message (200 over REST; over the socket, `message.sent`
 * with the original id) and store nothing new.
 */
useFaultHooks();

const HOLD_MS = 3000;

async function storedId(databaseUrl: string, clientMessageId: string): Promise<string[]> {
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new BetterSqlite3(databaseUrl.slice('sqlite:'.length), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('select id from messages where client_message_id = ?').all(clientMessageId) as { id: string }[]).map((r) => r.id);
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    return (await c.query<{ id: string }>('select id from messages where client_message_id = $1', [clientMessageId])).rows.map((r) => r.id);
  } finally {
    await c.end();
  }
}

async function killBetweenCommitAndAnswer(label: string, databaseUrl: string | undefined): Promise<void> {
  const dataDir = tempDir(`hold-${label}`);
  const dbUrl = databaseUrl ?? `sqlite:${dataDir}/safechat.db`;
  const srv = await ServerProcess.start({ name: `hold-${label}`, dataDir, databaseUrl: dbUrl, env: { TEST_HOLD_AFTER_COMMIT_MS: String(HOLD_MS) } });
  const [alice, bob] = [await register(srv), await register(srv)];
  const chatId = await createChat(srv, alice, bob);

  // The socket first, so that both sends start together: REST's and the socket's answers are
  // each held HOLD_MS after their commits.
  const sock = new LiveSocket(srv.wsUrl, alice.token, undefined, { onEvent: () => undefined });
  await sock.ready;
  const restBody = { chatId, ...envelope(64), clientMessageId: `dur2-rest-${label}` };
  const pending = srv.post('/messages', restBody, alice.token, 20_000);
  const wsBody = { chatId, ...envelope(64), clientMessageId: `dur2-ws-${label}` };
  const wsPending = sock.request('r1', wsBody, 20_000);

  const committed = await waitFor(
    async () => {
      const [a, b] = [await storedId(dbUrl, restBody.clientMessageId), await storedId(dbUrl, wsBody.clientMessageId)];
      return a.length === 1 && b.length === 1 ? { rest: a[0]!, ws: b[0]! } : null;
    },
    HOLD_MS - 500,
    'both messages to be committed',
    20,
  );
  const exit = await srv.kill9();
  const lost = await pending;
  const wsLost = await wsPending;
  // The premise: the commits happened, the answers did not.
  expect(exit.signal).toBe('SIGKILL');
  expect(lost.status).toBeNull();
  expect(wsLost).toBeNull();

  await srv.restart();
  const retry = await srv.post('/messages', restBody, alice.token, 20_000);
  expect(retry.status).toBe(200);
  expect(retry.body.id).toBe(committed.rest);
  const again = new LiveSocket(srv.wsUrl, alice.token, undefined, { onEvent: () => undefined });
  await again.ready;
  const wsRetry = await again.request('r2', wsBody, 20_000);
  expect(wsRetry?.type).toBe('message.sent');
  expect(wsRetry?.data.id).toBe(committed.ws);
  again.terminate();
  // Nothing new was stored.
  expect(await storedId(dbUrl, restBody.clientMessageId)).toEqual([committed.rest]);
  expect(await storedId(dbUrl, wsBody.clientMessageId)).toEqual([committed.ws]);
  const history = await srv.get(`/messages/${chatId}?limit=100`, bob.token);
  expect(history.body.messages.map((m: { id: string }) => m.id).sort()).toEqual([committed.rest, committed.ws].sort());
  reportFigures('T-DUR-02', { database: label, holdMs: HOLD_MS, restRetry: retry.status, wsRetry: wsRetry?.type, sameIds: true });
}

describe('killed between commit and answer (T-DUR-02)', () => {
  it('SQLite: the retry gets the original message, nothing new is stored', async () => {
    await killBetweenCommitAndAnswer('sqlite', undefined);
  });

  it.skipIf(!TEST_DATABASE_URL)('PostgreSQL: the retry gets the original message, nothing new is stored', async () => {
    await killBetweenCommitAndAnswer('pg', await freshDatabase(TEST_DATABASE_URL!));
  });
});
