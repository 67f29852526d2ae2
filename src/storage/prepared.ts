import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';
import { dialectOf } from './dialect.js';
import type { Schema } from './schema.js';

// @NOTE Hot-path queries are built with Kysely once per dialect and then only executed:
// building and compiling a query costs more than SQLite takes to run it. The SQL still comes
// from the one Kysely definition, so both dialects share the query code.

const SENTINEL = '\u0000param:';

type Slot = { name: string } | { value: unknown };

interface Template {
  sql: string;
  slots: Slot[];
}

/** A synchronous SQLite connection behind a Kysely handle (better-sqlite3's prepare, cached). */
export interface SyncConnection {
  prepare(sql: string): { reader: boolean; all(params: unknown[]): unknown[]; run(params: unknown[]): unknown };
}

const syncConnections = new WeakMap<object, SyncConnection>();

/** PostgreSQL: the SQL of every prepared query, and the statement name it is prepared under. */
const pgStatementNames = new Map<string, string>();

/**
 * The server-side statement name for this SQL if it is one of ours (see PostgresDatabase): each
 * connection then parses and plans it once instead of on every execution.
 */
export function pgStatementName(sql: string): string | undefined {
  return pgStatementNames.get(sql);
}

/**
 * Marks a Kysely handle (a SQLite transaction, or the reader) as backed by a synchronous
 * connection: prepared queries on it run on that connection directly, skipping Kysely's
 * asynchronous executor — the same SQL, a fraction of the cost.
 */
export function bindSyncConnection(handle: object, connection: SyncConnection): void {
  syncConnections.set(handle, connection);
}

export interface PreparedOptions {
  /**
   * PostgreSQL: send the statement unnamed, so it is planned on every execution with the table
   * sizes of the moment. For statements whose best plan depends on how big the tables are (joins
   * over many rows): a named statement's generic plan, made while a table was small, stays
   * cached until an ANALYZE of that table, and with autovacuum off that is never.
   */
  planEachTime?: boolean;
}

/** A query compiled once per dialect with named parameters, then executed with values. */
export class Prepared<Args extends Record<string, unknown>, Row> {
  private readonly templates = new Map<string, Template>();

  constructor(
    private readonly build: (db: Kysely<Schema>, arg: <K extends keyof Args & string>(name: K) => Args[K]) => Compilable<Row>,
    private readonly options: PreparedOptions = {},
  ) {}

  private template(db: Kysely<Schema>): Template {
    const dialect = dialectOf(db);
    let t = this.templates.get(dialect);
    if (!t) {
      const compiled = this.build(db, (name) => `${SENTINEL}${name}` as never).compile();
      const slots = compiled.parameters.map((p): Slot =>
        typeof p === 'string' && p.startsWith(SENTINEL) ? { name: p.slice(SENTINEL.length) } : { value: p },
      );
      t = { sql: compiled.sql, slots };
      this.templates.set(dialect, t);
      if (dialect === 'postgres' && !this.options.planEachTime && !pgStatementNames.has(t.sql)) pgStatementNames.set(t.sql, `safechat_${pgStatementNames.size + 1}`);
    }
    return t;
  }

  execute(db: Kysely<Schema>, args: Args): Promise<QueryResult<Row>> {
    if (syncConnections.has(db)) return Promise.resolve({ rows: this.allNow(db, args) });
    const t = this.template(db);
    const params = t.slots.map((s) => ('name' in s ? args[s.name] : s.value));
    // eslint-disable-next-line no-restricted-properties -- SQL Kysely compiled (template()), values bound
    return db.executeQuery<Row>(CompiledQuery.raw(t.sql, params));
  }

  /**
   * SQLite inside a commit group (a handle bound to its synchronous connection): the rows at once,
   * no promise. A send runs four statements; awaiting each cost a promise and a microtask apiece
   * (decision 0029).
   */
  allNow(db: Kysely<Schema>, args: Args): Row[] {
    const sync = syncConnections.get(db);
    if (!sync) throw new Error('allNow/runNow need a handle bound to a synchronous SQLite connection');
    const t = this.template(db);
    const params = t.slots.map((s) => ('name' in s ? args[s.name] : s.value));
    const stmt = sync.prepare(t.sql);
    if (stmt.reader) return stmt.all(params) as Row[];
    stmt.run(params);
    return [];
  }

  runNow(db: Kysely<Schema>, args: Args): void {
    this.allNow(db, args);
  }

  async all(db: Kysely<Schema>, args: Args): Promise<Row[]> {
    return (await this.execute(db, args)).rows;
  }

  async first(db: Kysely<Schema>, args: Args): Promise<Row | undefined> {
    return (await this.execute(db, args)).rows[0];
  }
}

export function prepared<Args extends Record<string, unknown>, Row>(
  build: (db: Kysely<Schema>, arg: <K extends keyof Args & string>(name: K) => Args[K]) => Compilable<Row>,
  options?: PreparedOptions,
): Prepared<Args, Row> {
  return new Prepared(build, options);
}
