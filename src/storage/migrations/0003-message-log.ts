import { sql, type Kysely } from 'kysely';
import type { MigrationCtx } from './provider.js';

// @NOTE Frozen in time: imports nothing from the app.
//
// A message.new event is the message row itself: `receiver_seq` is its place in the receiver's
// event log (null once pruned). Until now each message also wrote an events row and its index
// entry; dropping them removes a quarter of the pages a send dirties (decision 0010).

export async function up(db: Kysely<any>, _ctx: MigrationCtx): Promise<void> {
  await db.schema.alterTable('messages').addColumn('receiver_seq', 'bigint').execute();

  // Carry existing message.new events over, then drop them from the events table.
  await db.schema.createIndex('events_message_tmp_idx').on('events').column('message_id').execute();
  await sql`
    update messages set receiver_seq = (
      select e.seq from events e
      where e.message_id = messages.id and e.user_id = messages.receiver_id and e.type = 'message.new'
    )`.execute(db);
  await db.deleteFrom('events').where('type', '=', 'message.new').execute();
  await db.schema.dropIndex('events_message_tmp_idx').execute();
  await db.schema.alterTable('events').dropColumn('message_id').execute();

  // Replaces messages_receiver_idx: the receiver's log in order (and the receiver_id cascade).
  await db.schema.dropIndex('messages_receiver_idx').execute();
  await db.schema.createIndex('messages_receiver_seq_key').unique().on('messages').columns(['receiver_id', 'receiver_seq']).execute();
  // Only entries still in the log, oldest first: what the retention job looks for.
  await db.schema
    .createIndex('messages_log_created_idx')
    .on('messages')
    .column('created_at')
    .where(sql.ref('receiver_seq'), 'is not', null)
    .execute();
}
