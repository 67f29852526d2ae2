import { sql, type Kysely } from 'kysely';
import type { MigrationCtx } from './provider.js';

// @NOTE Frozen in time: imports nothing from the app.
//
// When a member first wrote in a chat (null: never). The receiver's byte limit charges senders a
// receiver has never written to ("strangers") together, and each sender separately: strangers
// that fill their shared allowance cannot silence the people the receiver talks to (decision 0022).

export async function up(db: Kysely<any>, _ctx: MigrationCtx): Promise<void> {
  await db.schema.alterTable('chat_members').addColumn('wrote_at', 'bigint').execute();
  await sql`
    update chat_members set wrote_at = (
      select min(m.created_at) from messages m
      where m.chat_id = chat_members.chat_id and m.sender_id = chat_members.user_id
    )`.execute(db);
}
