import { defineConfig } from 'vitest/config';

/**
 * The fault suite (test/faults, docs/faults.md): real server processes killed, restarted and starved
 * while clients send. One test at a time (the faults and the timings must not overlap), generous
 * timeouts; every wait inside a test is bounded by the test itself.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/_helpers/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
