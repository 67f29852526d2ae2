#!/usr/bin/env node
// Runs Vitest and prints one closing "N passed, N failed" line (the form CI reads).
// Usage: node scripts/test.mjs [vitest args…]   e.g. node scripts/test.mjs --config vitest.security.config.ts
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const report = path.join(os.tmpdir(), `safechat-vitest-${process.pid}.json`);
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
const run = spawnSync('npx', args, { stdio: 'inherit', env: process.env });

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const r = JSON.parse(fs.readFileSync(report, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.numFailedTestSuites > 0 && r.numFailedTests === 0 ? r.numFailedTestSuites : 0);
  skipped = r.numPendingTests + r.numTodoTests;
  fs.rmSync(report, { force: true });
} catch {
  failed = Math.max(failed, 1);
}
if (!process.env.TEST_DATABASE_URL) console.log('note: TEST_DATABASE_URL not set — PostgreSQL variants skipped');
if (!process.env.TEST_REDIS_URL) console.log('note: TEST_REDIS_URL not set — Redis multi-instance suites skipped');
if (skipped > 0) console.log(`${skipped} skipped`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = run.status === 0 && failed === 0 ? 0 : 1;
