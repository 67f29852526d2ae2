import * as m0001 from './0001-init.js';
import * as m0002 from './0002-prekeys.js';
import * as m0003 from './0003-message-log.js';
import * as m0004 from './0004-member-wrote.js';
import type { CtxMigration } from './provider.js';

/** Every migration, in order. Add new ones at the end; never edit a released one. */
export const migrations: Record<string, CtxMigration> = {
  '0001': m0001,
  '0002': m0002,
  '0003': m0003,
  '0004': m0004,
};
