import { channel } from 'node:diagnostics_channel';
import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  DEFAULT_MIGRATION_LOCK_TABLE,
  DEFAULT_MIGRATION_TABLE,
  Kysely,
  Migrator,
  PostgresDialect,
  PostgresIntrospector,
  sql,
  SqliteDialect,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type DatabaseMetadataOptions,
  type Driver,
  type PostgresDialectConfig,
  type TableMetadata,
} from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { DatabaseConfig } from '../config/config.js';
import { isConnectionError, isRetryableTxError, OverloadedError, type DialectName } from './dialect.js';
import { migrations } from './migrations/index.js';
import { CtxMigrationProvider } from './migrations/provider.js';
import { Checkpointer, type CatchUpPass } from './checkpointer.js';
import { bindSyncConnection, pgStatementName } from './prepared.js';
import type { Schema } from './schema.js';

/** A unit of work inside a transaction. `onCommit` hooks run only after the commit is durable. */
export interface Tx {
  readonly db: Kysely<Schema>;
  onCommit(hook: () => void): void;
}

export interface DatabaseLoad {
  /** Units of work waiting: for a pooled client (PostgreSQL), for a commit group (SQLite). */
  waiting: number;
  /** Connections doing work; idle ones. SQLite counts its one writer. */
  busy: number;
  idle: number;
}

/** `survivesPowerLoss`: an acknowledged write survives losing the machine, not only the process. */
export interface Durability {
  settings: Record<string, string>;
  survivesPowerLoss: boolean;
}

/** `keptCurrent`: something re-analyses tables as they grow, so cached plans follow them. */
export interface Statistics {
  settings: Record<string, string>;
  keptCurrent: boolean;
}

export abstract class Database {
  abstract readonly dialect: DialectName;
  /** For reads outside a transaction. Code inside `transaction()` must use `tx.db` only. */
  abstract readonly db: Kysely<Schema>;
  abstract transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * A unit of work that writes with **one statement on PostgreSQL**: there it runs autocommitted,
   * one round trip instead of BEGIN, the statement and COMMIT, holding a pool client for that one
   * trip only (decision 0023). A second statement would commit on its own: on PostgreSQL, `fn`
   * must issue exactly one. SQLite runs it like any transaction, in a commit group.
   */
  abstract oneStatement<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** How loaded the database is, for /metrics: an overload shows as a queue here first. */
  abstract load(): DatabaseLoad;

  constructor(protected readonly log: Logger) {}

  /** The connection that writes (migrations); the same as `db` unless the dialect reads elsewhere. */
  protected get writer(): Kysely<Schema> {
    return this.db;
  }

  /** PostgreSQL schema holding our tables (and the migration bookkeeping). */
  protected migrationSchema: string | undefined;

  async migrate(): Promise<void> {
    const migrator = new Migrator({
      db: this.writer,
      provider: new CtxMigrationProvider(migrations, { dialect: this.dialect }),
      // @NOTE Without a schema, Kysely looks for its bookkeeping tables in every schema of the
      // database, and another schema's copy would stop it from creating ours.
      ...(this.migrationSchema !== undefined ? { migrationTableSchema: this.migrationSchema } : {}),
    });
    const { error, results } = await migrator.migrateToLatest();
    for (const r of results ?? []) {
      if (r.status === 'Success') this.log.info({ migration: r.migrationName }, 'migration applied');
      if (r.status === 'Error') this.log.error({ migration: r.migrationName }, 'migration failed');
    }
    if (error) throw error instanceof Error ? error : new Error('migration failed', { cause: error });
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  /**
   * How durable an acknowledged write is, as the database reports it (logged at start: an
   * operator sees a PostgreSQL with fsync or synchronous_commit off before losing messages).
   */
  abstract durability(): Promise<Durability>;

  /**
   * Whether the database keeps its planner's table statistics current by itself (logged at start
   * when not). null for SQLite: it plans a statement when it is prepared, from fixed rules.
   */
  statistics(): Promise<Statistics | null> {
    return Promise.resolve(null);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/** Opens the database and applies migrations; a PostgreSQL that is not up yet is waited for (60 s). */
export async function createDatabase(cfg: DatabaseConfig, log: Logger, waitMs = 60_000): Promise<Database> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt++) {
    let db: Database | null = null;
    try {
      db = cfg.kind === 'sqlite' ? new SqliteDatabase(cfg, log) : await PostgresDatabase.create(cfg, log);
      await db.migrate();
      return db;
    } catch (err) {
      await db?.close().catch(() => undefined);
      if (cfg.kind === 'sqlite' || !isConnectionError(err) || Date.now() > deadline) throw err;
      log.warn({ attempt, error: (err as Error).message }, 'database not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(attempt * 500, 5000)));
    }
  }
}

/**
 * What the SQLite writer does, for whoever subscribes (`node:diagnostics_channel`; nothing is
 * published while no one does): `npm run bench -- --trace` lines a latency tail up with these.
 */
export const SQLITE_DIAGNOSTICS = {
  /** A commit group, when durable: its units and where its time went, in ms. */
  commitGroup: 'safechat:sqlite:commit-group',
  /** The writer paused between two groups so that the WAL could start over (decision 0014). */
  walRestart: 'safechat:sqlite:wal-restart',
} as const;
export interface CommitGroupEvent {
  units: number;
  /** From BEGIN to COMMIT: the units' statements and the slices between them. */
  runMs: number;
  commitMs: number;
  /** The WAL's fdatasync on the thread pool (0 at SQLITE_SYNCHRONOUS=NORMAL). */
  syncMs: number;
}
export interface WalRestartEvent {
  pauseMs: number;
  /** WAL frames the checkpoint thread copied during the pause. */
  frames: number;
  /** The checkpoint thread's pass (null if the pause ended without it: it took too long). */
  pass: CatchUpPass | null;
  /** Units that had arrived meanwhile: the next group takes them. */
  waiting: number;
}
const commitGroupChannel = channel(SQLITE_DIAGNOSTICS.commitGroup);
const walRestartChannel = channel(SQLITE_DIAGNOSTICS.walRestart);

interface Job {
  fn: (tx: Tx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** Up to this many units of work share one commit (one fsync). */
const MAX_GROUP = 1024;
/**
 * A group stops taking units after this much work (done in slices, below; an in-memory database
 * does it in one turn). It bounds how long a group's first units wait for their commit. A 10 ms
 * budget cost ~17 % of throughput, because smaller groups write more pages per message (0010).
 */
const GROUP_BUDGET_MS = 50;
/**
 * A group's units run in slices of this much work, with a turn of the event loop between them
 * (the transaction stays open): frames that arrive meanwhile are read and their units join the
 * same group. Groups stay large (few pages written per message) while no turn of the loop waits
 * for more than a slice (decision 0011).
 */
const SLICE_MS = 8;
/**
 * Callers answered per turn. Each answer's own work (~30-40 µs for a send: its reply, its event)
 * runs after the loop that resolves it; answering a whole group in one turn was a 40-60 ms turn.
 * Smaller turns batch fewer frames per socket write: ~4 % of saturated throughput (decision 0011).
 */
const SETTLE_SLICE_UNITS = 128;
/** However busy the loop is between slices, a group commits within this long of its start. */
const GROUP_WALL_MS = 150;
/** Units waiting for a commit group before new ones are refused (503). */
const MAX_QUEUED = 10_000;

/**
 * SQLite: one connection, WAL. Transactions are **group-committed**: every unit of work that
 * arrives while the previous commit runs joins the next one, so many writes share one fsync; a
 * failing unit rolls back only itself (see runGroup). A caller's promise settles only after the
 * commit. Units must therefore be re-runnable: they only read and write through `tx`.
 */
export class SqliteDatabase extends Database {
  readonly dialect = 'sqlite' as const;
  /** Reads outside transactions use their own connection: they see committed data and never wait for a commit group. */
  readonly db: Kysely<Schema>;
  private readonly write: Kysely<Schema>;
  private readonly writeConnection: ReturnType<typeof cachingDatabase>;
  private readonly raw: BetterSqlite3.Database;
  private readonly rawReader: BetterSqlite3.Database | null;
  private readonly checkpointer: Checkpointer | null = null;
  private readonly syncEachCommit: boolean;
  private readonly walPath: string;
  private walFd: number | null = null;
  private queue: Job[] = [];
  private running = false;
  /**
   * Whether a group may pause between slices with its transaction open. Not for an in-memory
   * database: its reads share the writer's connection and would see the open transaction.
   */
  private readonly slices: boolean;
  /** A file database's transactions: plain statements on the writer's synchronous connection. */
  private readonly rawControl: TxControl;

  constructor(cfg: Extract<DatabaseConfig, { kind: 'sqlite' }>, log: Logger) {
    super(log);
    if (cfg.path !== ':memory:') fs.mkdirSync(path.dirname(cfg.path), { recursive: true });
    this.raw = new BetterSqlite3(cfg.path);
    // @NOTE Takes effect only when the file is created. A commit writes every page it dirtied, and
    // a message dirties a handful of index pages (its chat's, sender's and receiver's); at 2 KiB
    // each commit writes half the bytes it would at the default 4 KiB (decision 0010).
    this.raw.pragma('page_size = 2048');
    this.raw.pragma('journal_mode = WAL');
    // @NOTE SQLITE_SYNCHRONOUS=FULL promises that an acknowledged write survives power loss, not
    // only a process crash: the WAL is fsynced after every commit before anyone is answered. We
    // do that fsync ourselves, on libuv's thread pool (syncWal), so the event loop keeps serving
    // while the disk flushes; SQLite itself runs at NORMAL (WAL stays consistent; only commits
    // not yet fsynced — not yet acknowledged — can be lost), decision 0010.
    this.raw.pragma('synchronous = NORMAL');
    this.syncEachCommit = cfg.synchronous === 'FULL' && cfg.path !== ':memory:';
    this.walPath = `${cfg.path}-wal`;
    this.raw.pragma('foreign_keys = ON');
    // @NOTE No busy wait on the writer: better-sqlite3 would spin inside the event loop while
    // another process (or instance) holds the write lock. Groups start with BEGIN IMMEDIATE and
    // retry asynchronously instead (see begin()).
    this.raw.pragma('busy_timeout = 0');
    this.raw.pragma('temp_store = MEMORY');
    // @NOTE 16 MiB page cache (default 2 MiB): a large commit group dirties thousands of pages
    // (one per chat, sender and receiver it touches); a small cache spills them mid-transaction.
    // Not larger: after a commit whose b-tree splits renumbered pages, SQLite walks the whole
    // page cache (pcache1TruncateUnsafe), and at a few hundred commits a second a 64 MiB cache
    // made that walk ~15 % of the process's CPU (decision 0015).
    this.raw.pragma('cache_size = -16384');
    if (cfg.path !== ':memory:') {
      // A pass every 200 ms copies a hot page (a chat's or receiver's index tail, the counters)
      // once for many commits; the WAL starts over at ~40 MiB of 2 KiB frames, after passes in a
      // row have left at most 100 frames for the pause: the pause is mostly the disk syncing what
      // its pass copied (decision 0014).
      this.checkpointer = new Checkpointer(cfg.path, log, cfg.checkpoint ?? { intervalMs: 200, restartFrames: 20_000, quietFrames: 100 });
      // A backstop only: the checkpoint thread keeps the WAL far below it.
      this.raw.pragma('wal_autocheckpoint = 100000');
      // Above the WAL's working size: truncating it at every restart made the next commit ~18 ms
      // (the file grew again block by block); it is cut back only after an unusual burst.
      this.raw.pragma('journal_size_limit = 134217728');
    }
    this.writeConnection = cachingDatabase(this.raw);
    this.write = new Kysely<Schema>({ dialect: new ImmediateSqliteDialect({ database: this.writeConnection }) });
    // An in-memory database exists only on its own connection, so it reads there too.
    this.rawReader = cfg.path === ':memory:' ? null : new BetterSqlite3(cfg.path);
    this.slices = this.rawReader !== null;
    if (this.rawReader) {
      this.rawReader.pragma('busy_timeout = 5000');
      this.rawReader.pragma('query_only = ON');
      this.rawReader.pragma('cache_size = -32768');
    }
    const readConnection = this.rawReader ? cachingDatabase(this.rawReader) : this.writeConnection;
    this.db = this.rawReader ? new Kysely<Schema>({ dialect: new SqliteDialect({ database: readConnection }) }) : this.write;
    bindSyncConnection(this.db, readConnection);
    if (this.slices) bindSyncConnection(this.write, this.writeConnection);
    this.rawControl = {
      db: this.write,
      // async: a failing statement is a rejection, like Kysely's (the error path relies on it).
      run: async (statement) => {
        this.writeConnection.prepare(statement).run([]);
      },
    };
  }

  protected override get writer(): Kysely<Schema> {
    return this.write;
  }

  durability(): Promise<Durability> {
    const journalMode = String(this.raw.pragma('journal_mode', { simple: true }));
    const level = ['OFF', 'NORMAL', 'FULL', 'EXTRA'][Number(this.raw.pragma('synchronous', { simple: true }))] ?? 'unknown';
    // SQLite runs at NORMAL and the server fsyncs the WAL before answering: FULL's promise.
    const synchronous = this.syncEachCommit ? 'FULL (NORMAL + the WAL fsynced before every answer)' : level;
    const survives = journalMode === 'wal' && (this.syncEachCommit || level === 'FULL' || level === 'EXTRA');
    return Promise.resolve({ settings: { journal_mode: journalMode, synchronous }, survivesPowerLoss: survives });
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    // Bounded: past this, callers get 503 instead of the queue (and memory) growing without end.
    if (this.queue.length >= MAX_QUEUED) return Promise.reject(new OverloadedError());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) {
        this.running = true;
        // Let every request of this turn of the event loop join the first group.
        setImmediate(() => void this.drain());
      }
    });
  }

  oneStatement<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.transaction(fn);
  }

  load(): DatabaseLoad {
    return { waiting: this.queue.length, busy: this.running ? 1 : 0, idle: this.running ? 0 : 1 };
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        if (this.checkpointer?.wantsQuiet) {
          const pausedAt = performance.now();
          await this.checkpointer.catchUp();
          if (walRestartChannel.hasSubscribers) {
            const event: WalRestartEvent = {
              pauseMs: performance.now() - pausedAt,
              frames: this.checkpointer.lastCopied,
              waiting: this.queue.length,
              pass: this.checkpointer.lastCatchUp,
            };
            walRestartChannel.publish(event);
          }
        }
        const group = this.queue.splice(0, MAX_GROUP);
        const used = await this.runGroup(group);
        // What did not fit in the time budget goes first into the next group.
        if (used < group.length) this.queue.unshift(...group.slice(used));
        // better-sqlite3 is synchronous and its promises resolve at once: without a macrotask
        // turn here, a long queue would be drained without the event loop serving any I/O.
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Optimistic first: the whole group in one transaction without savepoints (a failing unit is
   * rare: a lost race on a unique key, a rule checked inside the transaction). If a unit fails,
   * the group is rolled back and run again with a savepoint per unit, so only that unit fails.
   */
  private async runGroup(group: Job[]): Promise<number> {
    const first = await this.attempt(group, group.length === 1);
    if (first.outcome === 'retry') await this.attempt(group.slice(0, first.used), true);
    return first.used;
  }

  /**
   * Runs units until the group is done or, optimistically, until GROUP_BUDGET_MS of work. The
   * event loop serves nothing while a slice runs, so SLICE_MS bounds every other request's wait;
   * between slices the group takes in the units that arrived (up to MAX_GROUP).
   */
  private async attempt(group: Job[], isolated: boolean): Promise<{ outcome: 'done' | 'retry'; used: number }> {
    let trx: TxControl;
    try {
      trx = await this.begin();
    } catch (err) {
      for (const job of group) job.reject(err);
      return { outcome: 'done', used: group.length };
    }
    const settled: { job: Job; ok: boolean; value: unknown; unit: UnitTx }[] = [];
    const savepoints = isolated && group.length > 1;
    const started = performance.now();
    let sliceStart = started;
    let worked = 0;
    let attempted = 0;
    try {
      for (const job of group) {
        if (attempted > 0) {
          const now = performance.now();
          if (!this.slices) {
            if (!isolated && now - started >= GROUP_BUDGET_MS) break;
          } else if (now - sliceStart >= SLICE_MS) {
            worked += now - sliceStart;
            if (!isolated && (worked >= GROUP_BUDGET_MS || now - started >= GROUP_WALL_MS)) break;
            await new Promise((r) => setImmediate(r));
            // Units that arrived during the pause join this group (only the optimistic pass:
            // a retry runs exactly the units of the failed pass).
            if (!isolated && group.length < MAX_GROUP) group.push(...this.queue.splice(0, MAX_GROUP - group.length));
            sliceStart = performance.now();
          }
        }
        attempted++;
        const unit = new UnitTx(trx.db);
        if (savepoints) await trx.run('savepoint unit');
        try {
          const value = await job.fn(unit);
          if (savepoints) await trx.run('release unit');
          settled.push({ job, ok: true, value, unit });
        } catch (err) {
          if (!isolated) {
            await trx.run('rollback');
            return { outcome: 'retry', used: settled.length + 1 };
          }
          if (savepoints) {
            // If this fails too, the transaction itself is broken: the outer catch fails the group.
            await trx.run('rollback to unit');
            await trx.run('release unit');
          }
          settled.push({ job, ok: false, value: err, unit });
        }
      }
      if (settled.some((s) => s.ok)) {
        const committing = performance.now();
        await trx.run('commit');
        const syncing = performance.now();
        if (this.syncEachCommit) await this.syncWal();
        this.checkpointer?.poke();
        if (commitGroupChannel.hasSubscribers) {
          const done = performance.now();
          const event: CommitGroupEvent = { units: settled.length, runMs: committing - started, commitMs: syncing - committing, syncMs: done - syncing };
          commitGroupChannel.publish(event);
        }
      } else await trx.run('rollback');
    } catch (err) {
      this.log.error({ err }, 'group commit failed');
      await trx.run('rollback').catch(() => undefined);
      for (const job of group.slice(0, attempted)) job.reject(err);
      return { outcome: 'done', used: attempted };
    }
    // Answering a thousand units (their events, their callers' replies) is itself tens of
    // milliseconds: in slices too, in order. Most of that work runs after this loop, in the
    // callers' continuations (microtasks), so a slice is counted in units as well as in time.
    let sliceAt = performance.now();
    let inSlice = 0;
    for (const s of settled) {
      if (this.slices && (inSlice >= SETTLE_SLICE_UNITS || performance.now() - sliceAt >= SLICE_MS)) {
        await new Promise((r) => setImmediate(r));
        sliceAt = performance.now();
        inSlice = 0;
      }
      inSlice++;
      if (!s.ok) {
        s.job.reject(s.value);
        continue;
      }
      if (s.unit.hooks) runHooks(s.unit.hooks, this.log);
      s.job.resolve(s.value);
    }
    return { outcome: 'done', used: settled.length };
  }

  /**
   * Flushes the WAL to disk off the event loop. fdatasync on any descriptor of the file flushes
   * everything written to it so far, i.e. this group's frames; a failure fails the group (the
   * outer catch) like a failed commit would, so nothing unflushed is ever acknowledged.
   */
  private async syncWal(): Promise<void> {
    this.walFd ??= fs.openSync(this.walPath, 'r');
    const fd = this.walFd;
    await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Takes the write lock (BEGIN IMMEDIATE), waiting without blocking while someone else holds it.
   * A file database begins and ends its transactions on the synchronous connection itself, and
   * units query `this.write` (nothing else uses the writer's connection): Kysely's controlled
   * transaction cost ~20 KB of allocation per commit, a quarter of what a message allocates at
   * 1 k msg/s. An in-memory database keeps it: its reads share the writer's connection, and the
   * controlled transaction's lock is what keeps them out of an open transaction.
   */
  private async begin(): Promise<TxControl> {
    const deadline = Date.now() + WRITE_LOCK_WAIT_MS;
    for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
      try {
        if (this.slices) {
          this.writeConnection.prepare('begin immediate').run([]);
          return this.rawControl;
        }
        const trx = await this.write.startTransaction().execute();
        bindSyncConnection(trx, this.writeConnection);
        return {
          db: trx,
          run: async (statement) => {
            if (statement === 'commit') await trx.commit().execute();
            else if (statement === 'rollback') await trx.rollback().execute();
            // eslint-disable-next-line no-restricted-properties -- one of TxControl's fixed savepoint statements
            else await sql.raw(statement).execute(trx);
          },
        };
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  override async close(): Promise<void> {
    while (this.running) await new Promise((r) => setTimeout(r, 5));
    await this.checkpointer?.close();
    if (this.walFd !== null) fs.closeSync(this.walFd);
    if (this.db !== this.write) await this.db.destroy();
    await this.write.destroy();
  }
}

/** An open write transaction: the handle its units query, and its control statements. */
interface TxControl {
  readonly db: Kysely<Schema>;
  run(statement: 'commit' | 'rollback' | 'savepoint unit' | 'release unit' | 'rollback to unit'): Promise<void>;
}

/** How long a commit group waits for another process's write lock before failing (→ 503). */
const WRITE_LOCK_WAIT_MS = 5000;

/** Transactions take the write lock up front, so contention shows at BEGIN, before any work. */
class ImmediateSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    const driver = super.createDriver();
    driver.beginTransaction = async (connection: DatabaseConnection) => {
      // eslint-disable-next-line no-restricted-properties -- a constant statement
      await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    };
    return driver;
  }
}

/** better-sqlite3 statements are reusable; preparing one costs more than running it. */
function cachingDatabase(raw: BetterSqlite3.Database) {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => raw.close(),
    prepare(text: string) {
      let stmt = cache.get(text);
      if (!stmt) {
        stmt = raw.prepare(text);
        if (cache.size > 1000) cache.clear();
        cache.set(text, stmt);
      }
      return stmt;
    },
  };
}

/**
 * A unit's view of its commit group's transaction. A class, not an object literal with an arrow:
 * one per send, and tsx names every arrow assigned to a property where it is made (round 16 of
 * docs/performance.md).
 */
class UnitTx implements Tx {
  /** Its after-commit hooks (most units have none or one). */
  hooks: (() => void)[] | null = null;
  constructor(readonly db: Kysely<Schema>) {}
  onCommit(hook: () => void): void {
    (this.hooks ??= []).push(hook);
  }
}

function runHooks(hooks: (() => void)[], log: Logger): void {
  for (const hook of hooks) {
    try {
      hook();
    } catch (err) {
      log.error({ err }, 'after-commit hook failed');
    }
  }
}

/**
 * Kysely sends every query unnamed, so PostgreSQL parses and plans it each time; for our
 * prepared (hot) queries that was a large share of its CPU per message. Those go out as named
 * statements instead: parsed once per connection, planned once PostgreSQL settles on a plan.
 */
function useNamedStatements(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (config: unknown, values?: unknown, callback?: unknown) => unknown;
  (client as unknown as { query: typeof query }).query = (config, values, callback) => {
    const name = typeof config === 'string' && Array.isArray(values) ? pgStatementName(config) : undefined;
    return name ? query({ name, text: config, values }, undefined, callback) : query(config, values, callback);
  };
}

/**
 * PostgreSQL whose introspection sees our schema only. Kysely's Migrator asks the introspector
 * whether its bookkeeping tables exist (several times per start), and Kysely's own reads the
 * columns of every schema in the database and looks each up again by name (has_schema_privilege,
 * pg_get_serial_sequence). A schema dropped while that query runs — another deployment's on a
 * shared database; in the tests, another suite's, many times a second — fails our start with
 * `schema "<theirs>" does not exist` (or `relation`/`column … does not exist`). Ours reads the one
 * schema we migrate, which nothing else drops meanwhile.
 */
export class OneSchemaPostgresDialect extends PostgresDialect {
  constructor(
    config: PostgresDialectConfig,
    private readonly schema: string,
  ) {
    super(config);
  }

  override createIntrospector(db: Parameters<PostgresDialect['createIntrospector']>[0]): DatabaseIntrospector {
    return new OneSchemaIntrospector(db, this.schema);
  }
}

class OneSchemaIntrospector extends PostgresIntrospector {
  constructor(
    private readonly kysely: Parameters<PostgresDialect['createIntrospector']>[0],
    private readonly schema: string,
  ) {
    super(kysely);
  }

  /** The tables and views of our schema with their columns, as Kysely's introspector describes them. */
  override async getTables(options: DatabaseMetadataOptions = { withInternalKyselyTables: false }): Promise<TableMetadata[]> {
    const { rows } = await sql<{
      table: string;
      kind: string;
      column: string;
      type: string;
      type_schema: string;
      not_null: boolean;
      has_default: boolean;
      comment: string | null;
      serial: boolean;
    }>`
      select c.relname as table, c.relkind as kind, a.attname as column, typ.typname as type, dtns.nspname as type_schema,
        a.attnotnull as not_null, a.atthasdef as has_default, col_description(a.attrelid, a.attnum) as comment,
        pg_get_serial_sequence(quote_ident(ns.nspname) || '.' || quote_ident(c.relname), a.attname) is not null as serial
      from pg_catalog.pg_attribute a
      join pg_catalog.pg_class c on c.oid = a.attrelid
      join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
      join pg_catalog.pg_type typ on typ.oid = a.atttypid
      join pg_catalog.pg_namespace dtns on dtns.oid = typ.typnamespace
      where ns.nspname = ${this.schema} and c.relkind in ('r', 'v', 'p') and a.attnum >= 0 and not a.attisdropped
      order by c.relname, a.attnum`.execute(this.kysely);
    const tables = new Map<string, TableMetadata>();
    for (const r of rows) {
      if (!options.withInternalKyselyTables && (r.table === DEFAULT_MIGRATION_TABLE || r.table === DEFAULT_MIGRATION_LOCK_TABLE)) continue;
      let table = tables.get(r.table);
      if (!table) tables.set(r.table, (table = { name: r.table, schema: this.schema, isView: r.kind === 'v', columns: [] }));
      table.columns.push({
        name: r.column,
        dataType: r.type,
        dataTypeSchema: r.type_schema,
        isNullable: !r.not_null,
        hasDefaultValue: r.has_default,
        isAutoIncrementing: r.serial,
        ...(r.comment !== null ? { comment: r.comment } : {}),
      });
    }
    return [...tables.values()];
  }
}

// int8 (counts, sequence numbers, millisecond times) as numbers: all of ours fit in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/** PostgreSQL: a pool; transactions are plain (PostgreSQL groups commits itself), retried on deadlock. */
export class PostgresDatabase extends Database {
  readonly dialect = 'postgres' as const;
  readonly db: Kysely<Schema>;

  private constructor(
    readonly pool: pg.Pool,
    log: Logger,
    schema: string,
  ) {
    super(log);
    this.db = new Kysely<Schema>({ dialect: new OneSchemaPostgresDialect({ pool }, schema) });
    this.migrationSchema = schema;
  }

  static async create(cfg: Extract<DatabaseConfig, { kind: 'postgres' }>, log: Logger): Promise<PostgresDatabase> {
    if (cfg.schema !== undefined) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(cfg.schema)) throw new Error('invalid schema name');
      const client = new pg.Client({ connectionString: cfg.url });
      await client.connect();
      try {
        await client.query(`create schema if not exists "${cfg.schema}"`);
      } finally {
        await client.end();
      }
    }
    const pool = new pg.Pool({
      connectionString: cfg.url,
      max: cfg.poolSize,
      // Fail fast when the database is away (503 instead of a hang); a refused connection fails at
      // once, this bounds the wait for a free client under load.
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: 15_000,
      ...(cfg.schema !== undefined ? { options: `-c search_path=${cfg.schema}` } : {}),
    });
    // @NOTE Without this listener an idle client's error (e.g. the server restarting) crashes Node.
    pool.on('error', (err) => log.warn({ error: err.message }, 'idle database connection lost'));
    // pg-pool removes its listener while a client is checked out: an error then (PostgreSQL
    // restarting under load, 57P01) would be unhandled and end the process.
    pool.on('connect', (client) => {
      client.on('error', (err) => log.warn({ error: err.message }, 'database connection lost'));
      useNamedStatements(client);
    });
    return new PostgresDatabase(pool, log, cfg.schema ?? 'public');
  }

  /** Server settings by name, in one round trip. */
  private async settings<K extends string>(...names: K[]): Promise<Record<K, string>> {
    const rows = (await sql<{ name: K; setting: string }>`select name, setting from pg_settings where name = any(${names})`.execute(this.db)).rows;
    return Object.fromEntries(rows.map((r) => [r.name, r.setting])) as Record<K, string>;
  }

  async durability(): Promise<Durability> {
    const settings = await this.settings('fsync', 'synchronous_commit', 'full_page_writes');
    const survivesPowerLoss = settings.fsync === 'on' && settings.synchronous_commit !== 'off' && settings.full_page_writes === 'on';
    return { settings, survivesPowerLoss };
  }

  /**
   * Named statements keep generic plans until their tables are analysed again; with autovacuum off
   * nothing does, and a plan made for a small table stays when it is large (decision 0025).
   */
  override async statistics(): Promise<Statistics> {
    const settings = await this.settings('autovacuum', 'track_counts');
    return { settings, keptCurrent: settings.autovacuum === 'on' && settings.track_counts === 'on' };
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.retrying((onCommit) => this.db.transaction().execute((trx) => fn({ db: trx, onCommit })));
  }

  oneStatement<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.retrying((onCommit) => fn({ db: this.db, onCommit }));
  }

  load(): DatabaseLoad {
    return { waiting: this.pool.waitingCount, busy: this.pool.totalCount - this.pool.idleCount, idle: this.pool.idleCount };
  }

  /** Runs a unit, then its after-commit hooks; a deadlock or serialization failure runs it again. */
  private async retrying<T>(run: (onCommit: (hook: () => void) => void) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const hooks: (() => void)[] = [];
      try {
        const value = await run((h) => hooks.push(h));
        runHooks(hooks, this.log);
        return value;
      } catch (err) {
        if (attempt < 4 && isRetryableTxError(err)) continue;
        throw err;
      }
    }
  }
}
