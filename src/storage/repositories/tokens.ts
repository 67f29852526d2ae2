import type { Kysely, Selectable } from 'kysely';
import { prepared } from '../prepared.js';
import type { RefreshTokensTable, Schema, TokenFamiliesTable } from '../schema.js';

export type FamilyRow = Selectable<TokenFamiliesTable>;
export type RefreshTokenRow = Selectable<RefreshTokensTable>;

export async function insertFamily(db: Kysely<Schema>, row: FamilyRow): Promise<void> {
  await db.insertInto('token_families').values(row).execute();
}

export async function insertRefreshToken(db: Kysely<Schema>, row: RefreshTokenRow): Promise<void> {
  await db.insertInto('refresh_tokens').values(row).execute();
}

/** Marks an unused token used; at most one caller ever gets the row back. */
export function claimRefreshToken(db: Kysely<Schema>, tokenHash: string, now: number): Promise<RefreshTokenRow | undefined> {
  return db
    .updateTable('refresh_tokens')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
}

export function findRefreshToken(db: Kysely<Schema>, tokenHash: string): Promise<RefreshTokenRow | undefined> {
  return db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

export function findFamily(db: Kysely<Schema>, id: string): Promise<FamilyRow | undefined> {
  return db.selectFrom('token_families').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function touchFamily(db: Kysely<Schema>, id: string, now: number): Promise<void> {
  await db.updateTable('token_families').set({ last_used_at: now }).where('id', '=', id).execute();
}

/** Revokes one family (returns whether it was active), and forgets its refresh tokens. */
export async function revokeFamily(db: Kysely<Schema>, id: string, now: number, reason: string): Promise<boolean> {
  const r = await db
    .updateTable('token_families')
    .set({ revoked_at: now, revoke_reason: reason })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  await db.deleteFrom('refresh_tokens').where('family_id', '=', id).where('used_at', 'is', null).execute();
  return Number(r.numUpdatedRows) > 0;
}

/** Is this login still valid for access tokens? (Not revoked, not past its absolute lifetime, user exists.) */
const activeQ = prepared<{ id: string; userId: string; now: number }, { id: string }>((db, arg) =>
  db
    .selectFrom('token_families')
    .select('id')
    .where('id', '=', arg('id'))
    .where('user_id', '=', arg('userId'))
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', arg('now')),
);

/** Which of these logins are still live (not revoked, not expired, account not deleted). */
export async function liveFamilyIds(db: Kysely<Schema>, ids: string[], now: number): Promise<Set<string>> {
  const live = new Set<string>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db
      .selectFrom('token_families')
      .select('id')
      .where('id', 'in', ids.slice(i, i + 500))
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .execute();
    for (const r of rows) live.add(r.id);
  }
  return live;
}

export async function isFamilyActive(db: Kysely<Schema>, id: string, userId: string, now: number): Promise<boolean> {
  return (await activeQ.first(db, { id, userId, now })) !== undefined;
}

/** A user's live logins, least recently used first. */
export async function activeFamilies(db: Kysely<Schema>, userId: string, now: number): Promise<FamilyRow[]> {
  return db
    .selectFrom('token_families')
    .selectAll()
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('last_used_at', 'asc')
    .orderBy('id', 'asc')
    .execute();
}
