import { defineConfig } from 'vitest/config';

/** The load tests (T-LOAD-02, T-LOAD-04): minutes each, and sensitive to whatever else the machine runs. */
export const NIGHTLY = ['test/faults/load-cluster.test.ts', 'test/faults/connection-scale.test.ts'];

/**
 * The fault suite (test/faults, docs/faults.md): real server processes killed, restarted and starved
 * while clients send. One test at a time (the faults and the timings must not overlap), generous
 * timeouts; every wait inside a test is bounded by the test itself.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    // Tier B of the test plan (SECURITY.md §4): `npm run test:nightly`, not every CI run.
    exclude: NIGHTLY,
    globalSetup: ['test/_helpers/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
