import { defineConfig } from 'vitest/config';
import { NIGHTLY } from './vitest.faults.config.js';

/**
 * Tier B of the test plan (SECURITY.md §4, "nightly/manual"): the load tests T-LOAD-02 and
 * T-LOAD-04 (about 8 minutes, on PostgreSQL + Redis), with the fault suite's settings.
 * `npm run test:nightly`, on a quiet machine: other work on the box is the very CPU contention
 * these tests measure against.
 */
export default defineConfig({
  test: {
    include: NIGHTLY,
    globalSetup: ['test/_helpers/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
