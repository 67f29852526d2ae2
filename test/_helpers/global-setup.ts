import pg from 'pg';

/**
 * Vitest global setup: the PostgreSQL database named by TEST_DATABASE_URL is created when it does
 * not exist yet (each suite then makes its own schema in it), so `npm test` works on a fresh
 * PostgreSQL server too. A server that cannot be reached is left to the suites to report.
 */
export async function setup(): Promise<void> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) return;
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) return;
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`create database "${name}"`);
  } catch {
    // Unreachable or not allowed: the suites that need it fail with the real error.
  } finally {
    await client.end().catch(() => undefined);
  }
}
