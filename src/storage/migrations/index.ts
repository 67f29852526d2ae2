import * as m0001 from './0001-init.js';
import * as m0002 from './0002-prekeys.js';
import type { CtxMigration } from './provider.js';

/** Every migration, in order. Add new ones at the end; never edit a released one. */
export const migrations: Record<string, CtxMigration> = {
  '0001': m0001,
  '0002': m0002,
};
