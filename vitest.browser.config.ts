import { defineConfig } from 'vitest/config';

// The browser suite (`npm run test:browser`): the web client in Debian's Chromium through
// playwright-core. One file at a time: two browser contexts and a server are enough for two cores.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
  },
});
