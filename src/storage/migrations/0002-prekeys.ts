import type { Kysely } from 'kysely';
import type { MigrationCtx } from './provider.js';

// @NOTE Frozen in time: imports nothing from the app. The identity key is users.public_key.

export async function up(db: Kysely<any>, _ctx: MigrationCtx): Promise<void> {
  await db.schema
    .createTable('signed_prekeys')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('key_id', 'bigint', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('signature', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // When `prekeys.low` was last sent; cleared by the next upload, so the owner hears it once per refill.
    .addColumn('low_notified_at', 'bigint')
    .execute();

  await db.schema
    .createTable('one_time_prekeys')
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('key_id', 'bigint', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('one_time_prekeys_pkey', ['user_id', 'key_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('one_time_prekeys').execute();
  await db.schema.dropTable('signed_prekeys').execute();
}
