import { PostgresAdapter, type Kysely, type SelectQueryBuilder } from 'kysely';

/** Every difference between SQLite and PostgreSQL that the code has to know about, in one place. */
export type DialectName = 'sqlite' | 'postgres';

interface DriverError {
  code?: unknown;
  constraint?: unknown;
  message?: unknown;
}

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as DriverError | null;
  if (!e || typeof e !== 'object') return false;
  if (e.code === '23505') return constraint === undefined || e.constraint === constraint;
  if (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    // SQLite names columns, not constraints: "UNIQUE constraint failed: messages.sender_id, messages.client_message_id".
    return constraint === undefined || (typeof e.message === 'string' && e.message.includes(CONSTRAINT_COLUMNS[constraint] ?? '\0'));
  }
  return false;
}

/** Unique constraints the code reacts to, and the column list SQLite reports for each. */
const CONSTRAINT_COLUMNS: Record<string, string> = {
  users_username_lower_key: 'users.username_lower',
  chats_direct_key_key: 'chats.direct_key',
  messages_sender_client_id_key: 'messages.sender_id, messages.client_message_id',
};

/** A row refers to one that does not exist (e.g. a user deleted meanwhile). */
export function isForeignKeyViolation(err: unknown): boolean {
  const code = (err as DriverError | null)?.code;
  return code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

/** Serialization failures and deadlocks on PostgreSQL: the transaction may simply be retried. */
export function isRetryableTxError(err: unknown): boolean {
  const code = (err as DriverError | null)?.code;
  return code === '40001' || code === '40P01';
}

/** The database cannot take more work right now (its write queue is full). */
export class OverloadedError extends Error {
  override name = 'OverloadedError';
  readonly code = 'SAFECHAT_OVERLOADED';
  constructor() {
    super('database write queue is full');
  }
}

/** Connection-level failures and overload: the database cannot serve now, so the request gets 503. */
export function isConnectionError(err: unknown): boolean {
  const e = err as DriverError | null;
  const code = e?.code;
  if (typeof code === 'string') {
    if (code === 'SAFECHAT_OVERLOADED') return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(code)) return true;
    // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 08xxx connection exceptions, 53300 too many connections.
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_IOERR' || code === 'SQLITE_FULL') return true;
  }
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection refused|pool is (draining|ended)/i.test(message);
}

/**
 * Row locking for "take one, at most once" subqueries: on PostgreSQL concurrent claimers skip each
 * other's rows (each gets a different one); SQLite has one writer, so nothing is needed.
 */
export function lockSkipLocked<DB, TB extends keyof DB, O>(db: Kysely<DB>, qb: SelectQueryBuilder<DB, TB, O>): SelectQueryBuilder<DB, TB, O> {
  return dialectOf(db) === 'postgres' ? qb.forUpdate().skipLocked() : qb;
}

/** Which dialect a Kysely handle (or transaction) speaks. */
export function dialectOf(db: { getExecutor(): { adapter: unknown } }): DialectName {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}
