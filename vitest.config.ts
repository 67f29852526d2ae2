import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'src/**/*.test.ts'],
    exclude: ['test/faults/**', 'test/security/**', 'test/browser/**', '**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/_helpers/global-setup.ts'],
    pool: 'forks',
    // @NOTE two cores here: more workers only add contention (argon2, SQLite fsync).
    maxWorkers: 2,
  },
});
