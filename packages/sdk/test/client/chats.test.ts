/** The chat list through the SDK: one page with getChats(), every chat with listChats(). */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestServer } from '../../../../test/_helpers/server.js';
import { client, countingFetch, PASSWORD, registered, startServer, uniqueName } from './helpers.js';

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server?.close());

it('listChats() follows nextCursor through every page; getChats() returns one page', async () => {
  const f = countingFetch();
  const me = client(server, { fetch: f });
  await me.register(uniqueName(), PASSWORD);
  const other = await registered(server);
  // 450 chats (more than two pages of 200), written directly: the API limits chat creation.
  const base = Date.now() - 1_000;
  const ids = Array.from({ length: 450 }, () => randomUUID());
  await server.ctx.db.transaction(async (tx) => {
    await tx.db
      .insertInto('chats')
      .values(ids.map((id, i) => ({ id, kind: 'group' as const, direct_key: null, last_message_id: null, last_activity_at: base + i, encryption_status: 'pending' as const, created_by: other.user!.id, created_at: base })))
      .execute();
    await tx.db
      .insertInto('chat_members')
      .values(ids.flatMap((chat_id) => [me.user!.id, other.user!.id].map((user_id) => ({ chat_id, user_id, joined_at: base }))))
      .execute();
  });

  const mark = f.calls.length;
  const all = await me.api.listChats();
  expect(all.map((c) => c.id)).toEqual([...ids].reverse());
  expect(f.calls.slice(mark)).toEqual(['GET /chats', 'GET /chats', 'GET /chats']);

  const page = await me.api.getChats({ limit: 3 });
  expect(page.chats.map((c) => c.id)).toEqual(ids.slice(-3).reverse());
  expect(page.hasMore).toBe(true);
  const next = await me.api.getChats({ limit: 3, cursor: page.nextCursor! });
  expect(next.chats.map((c) => c.id)).toEqual(ids.slice(-6, -3).reverse());
});
