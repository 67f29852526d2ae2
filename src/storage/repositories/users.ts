import type { Kysely, Selectable } from 'kysely';
import type { Schema, UsersTable } from '../schema.js';

export type UserRow = Selectable<UsersTable>;

export async function insertUser(db: Kysely<Schema>, row: UserRow): Promise<void> {
  await db.insertInto('users').values(row).execute();
  await db.insertInto('mailboxes').values({ user_id: row.id }).execute();
}

export function findUserById(db: Kysely<Schema>, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findUserByUsername(db: Kysely<Schema>, username: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('username_lower', '=', username.toLowerCase()).executeTakeFirst();
}

export async function countExistingUsers(db: Kysely<Schema>, ids: string[]): Promise<number> {
  const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('id', 'in', ids).executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function setPasswordHash(db: Kysely<Schema>, id: string, hash: string): Promise<void> {
  await db.updateTable('users').set({ password_hash: hash }).where('id', '=', id).execute();
}

export async function setPublicKey(db: Kysely<Schema>, id: string, publicKey: string): Promise<void> {
  await db.updateTable('users').set({ public_key: publicKey }).where('id', '=', id).execute();
}

/** Deletes the account; foreign keys cascade to its logins, memberships, messages, keys and events. */
export async function deleteUser(db: Kysely<Schema>, id: string): Promise<void> {
  await db.deleteFrom('users').where('id', '=', id).execute();
}
