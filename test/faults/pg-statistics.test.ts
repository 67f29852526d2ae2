import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PgCluster, pgClusterUnavailable, ServerProcess, sleep, useFaultHooks, waitFor } from './_harness.js';

/**
 * A PostgreSQL with autovacuum off never re-analyses the tables, so the statements the server
 * keeps prepared stay planned for the tables as they were (decision 0025 found a send batch
 * scanning a grown table that way). The server says so at start, once, as a warning.
 */
useFaultHooks();

const skip = pgClusterUnavailable();
if (skip) console.warn(`[faults] autovacuum warning test SKIPPED: ${skip}.`);

const WARNING = 'table statistics: autovacuum is off';

describe.skipIf(skip !== null)('PostgreSQL table statistics (private cluster)', () => {
  it('warns at start when autovacuum is off, and not when it is on', async () => {
    const cluster = await PgCluster.create();
    const srv = await ServerProcess.start({ name: 'pg-statistics', databaseUrl: cluster.url() });
    // The check runs right after the server starts listening; a second is ample for its warning.
    await sleep(1000);
    expect(srv.logText()).not.toContain(WARNING);

    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    try {
      await admin.query('alter system set autovacuum = off');
      await admin.query('select pg_reload_conf()');
      await waitFor(async () => (await admin.query<{ autovacuum: string }>('show autovacuum')).rows[0]!.autovacuum === 'off', 5_000, 'autovacuum off');
    } finally {
      await admin.end();
    }
    await srv.restart();
    await waitFor(async () => srv.logText().includes(WARNING), 5_000, 'the warning');
    const lines = srv.logText().split('\n').filter((l) => l.includes(WARNING));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, autovacuum: 'off', track_counts: 'on' });
  });
});
