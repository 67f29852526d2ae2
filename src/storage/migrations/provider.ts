import type { Kysely, Migration, MigrationProvider } from 'kysely';
import type { DialectName } from '../dialect.js';

export interface MigrationCtx {
  dialect: DialectName;
}

export interface CtxMigration {
  up(db: Kysely<any>, ctx: MigrationCtx): Promise<void>;
  down?(db: Kysely<any>, ctx: MigrationCtx): Promise<void>;
}

/** Hands each migration the dialect (atproto's CtxMigrationProvider); the list is explicit, not discovered. */
export class CtxMigrationProvider implements MigrationProvider {
  constructor(
    private readonly migrations: Record<string, CtxMigration>,
    private readonly ctx: MigrationCtx,
  ) {}

  getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const [name, m] of Object.entries(this.migrations)) {
      out[name] = {
        up: (db) => m.up(db, this.ctx),
        ...(m.down ? { down: (db: Kysely<any>) => m.down!(db, this.ctx) } : {}),
      };
    }
    return Promise.resolve(out);
  }
}
