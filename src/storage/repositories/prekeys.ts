import type { Kysely, Selectable } from 'kysely';
import { lockSkipLocked } from '../dialect.js';
import type { OneTimePrekeysTable, Schema, SignedPrekeysTable } from '../schema.js';

export type SignedPrekeyRow = Selectable<SignedPrekeysTable>;
export type OneTimePrekeyRow = Selectable<OneTimePrekeysTable>;

export async function upsertSignedPrekey(db: Kysely<Schema>, row: SignedPrekeyRow): Promise<void> {
  await db
    .insertInto('signed_prekeys')
    .values(row)
    .onConflict((oc) =>
      oc.column('user_id').doUpdateSet({ key_id: row.key_id, public_key: row.public_key, signature: row.signature, created_at: row.created_at, low_notified_at: null }),
    )
    .execute();
}

export function findSignedPrekey(db: Kysely<Schema>, userId: string): Promise<SignedPrekeyRow | undefined> {
  return db.selectFrom('signed_prekeys').selectAll().where('user_id', '=', userId).executeTakeFirst();
}

/** Adds one-time pre-keys; an id the user already has keeps its first key. */
export async function addOneTimePrekeys(db: Kysely<Schema>, rows: OneTimePrekeyRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.insertInto('one_time_prekeys').values(rows).onConflict((oc) => oc.columns(['user_id', 'key_id']).doNothing()).execute();
}

export async function deleteOneTimePrekeys(db: Kysely<Schema>, userId: string): Promise<void> {
  await db.deleteFrom('one_time_prekeys').where('user_id', '=', userId).execute();
}

export async function countOneTimePrekeys(db: Kysely<Schema>, userId: string): Promise<number> {
  const row = await db.selectFrom('one_time_prekeys').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Takes one of the user's one-time pre-keys, in one statement: a key is handed out at most once,
 * however many claims race, on any number of instances.
 */
export function claimOneTimePrekey(db: Kysely<Schema>, userId: string): Promise<{ key_id: number; public_key: string } | undefined> {
  const pick = lockSkipLocked(db, db.selectFrom('one_time_prekeys').select('key_id').where('user_id', '=', userId).orderBy('key_id').limit(1));
  return db
    .deleteFrom('one_time_prekeys')
    .where('user_id', '=', userId)
    .where('key_id', '=', pick)
    .returning(['key_id', 'public_key'])
    .executeTakeFirst();
}

/** Marks `prekeys.low` as sent for this refill cycle; true only for the first caller. */
export async function markLowNotified(db: Kysely<Schema>, userId: string, now: number): Promise<boolean> {
  const r = await db
    .updateTable('signed_prekeys')
    .set({ low_notified_at: now })
    .where('user_id', '=', userId)
    .where('low_notified_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
