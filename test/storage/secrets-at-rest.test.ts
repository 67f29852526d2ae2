import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api, envelope } from '../_helpers/api.js';
import { testServer, type TestServer } from '../_helpers/server.js';

/** Scans the SQLite file (and its WAL) for every secret the server was given. */
let dir: string;
let s: TestServer;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-scan-'));
  s = await testServer({ sqlitePath: path.join(dir, 'db.sqlite') });
});
afterAll(async () => {
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('stores no password, token or plaintext in the database file', async () => {
  const api = new Api(s.app);
  const password = 'Unique-Scan-Password-9130';
  const a = await api.register(undefined, password);
  const b = await api.register();
  const refreshed = await api.post('/auth/refresh-token', { refreshToken: b.refreshToken });
  const marker = 'PLAINTEXT-MARKER-should-never-be-stored';
  // The client encrypts; the server only ever sees base64 ciphertext. Store one real envelope.
  const m = await api.send(a, { receiverId: b.id, ...envelope(48) });
  await s.ctx.db.db.selectFrom('users').selectAll().execute();
  const bytes = Buffer.concat(fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f))));
  const text = bytes.toString('latin1');
  expect(text).toContain(m.encryptedContent.slice(0, 20)); // sanity: the scan sees the data
  for (const secret of [password, a.token, a.refreshToken, b.refreshToken, refreshed.body.refreshToken, refreshed.body.accessToken, marker]) {
    expect(text.includes(secret), secret.slice(0, 12)).toBe(false);
  }
});
