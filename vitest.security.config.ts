import { defineConfig } from 'vitest/config';

// The security suite (`npm run test:security`): test/security only, same pool settings as vitest.config.ts.
export default defineConfig({
  test: {
    include: ['test/security/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/_helpers/global-setup.ts'],
    pool: 'forks',
    // @NOTE two cores here: more workers only add contention (argon2, SQLite fsync).
    maxWorkers: 2,
  },
});
