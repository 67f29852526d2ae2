import { describe, expect, it } from 'vitest';
import type { PostgresDatabase } from '../../src/storage/db.js';
import { Api } from '../_helpers/api.js';
import { testServer } from '../_helpers/server.js';

describe.skipIf(!process.env.TEST_DATABASE_URL)('PostgreSQL named statements', () => {
  it('runs the send path as statements prepared once per connection, and they keep working', async () => {
    const s = await testServer({ dialect: 'postgres', cfg: (cfg) => cfg.db.kind === 'postgres' && (cfg.db.poolSize = 1) });
    try {
      const api = new Api(s.app);
      const [a, b] = await Promise.all([api.register(), api.register()]);
      const chat = await api.chat(a, b);
      for (let i = 0; i < 3; i++) await api.send(a, { chatId: chat.id });
      const pool = (s.ctx.db as PostgresDatabase).pool;
      const { rows } = await pool.query<{ name: string; statement: string }>('select name, statement from pg_prepared_statements');
      const ours = rows.filter((r) => r.name.startsWith('safechat_'));
      expect(ours.some((r) => r.statement.startsWith('with "c" as (update "chats"'))).toBe(true);
      expect((await api.get(`/messages/${chat.id}`, b.token)).body.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2, 3]);
    } finally {
      await s.close();
    }
  });
});
