import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Session } from '../_helpers/api.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';
import type { AccessClaims } from '../../src/domain/tokens.js';
import { LocalPubSub } from '../../src/pubsub/local.js';

/**
 * WS-04: a socket whose login ended is closed, also when the revocation lands where no socket was
 * registered yet (decision 0021): between the token check and the socket's attach, between a
 * re-auth's token check and the switch to its login, or on another instance whose signal was lost.
 */
describeEachDialect('ws login re-checks', (dialect) => {
  let srv: WsServer;

  beforeAll(async () => {
    srv = await wsServer({ dialect });
  });
  afterAll(() => srv.close());
  afterEach(() => closeAllSockets());

  /** A second login of the same user: another token family. */
  const secondSession = (u: Session) => srv.api.login(u);

  /** The next token check passes, then `revoke` commits before the caller goes on: the race, made certain. */
  function revokeRightAfterNextTokenCheck(revoke: () => Promise<void>): Promise<void> {
    const tokens = srv.ctx.services.tokens;
    let done!: () => void;
    const revoked = new Promise<void>((r) => (done = r));
    tokens.verifyAccess = async (token: string): Promise<AccessClaims> => {
      // Once: from now on the prototype's method again.
      delete (tokens as Partial<typeof tokens>).verifyAccess;
      const claims = await tokens.verifyAccess(token);
      await revoke();
      done();
      return claims;
    };
    return revoked;
  }

  it('a logout that commits after the upgrade’s token check, before the socket is attached, closes it with 4401 and no `ready`', async () => {
    for (const byFrame of [false, true]) {
      const u = await srv.user();
      const revoked = revokeRightAfterNextTokenCheck(() => srv.ctx.services.tokens.logout(u.refreshToken));
      const s = byFrame ? new TestSocket(srv.wsUrl) : new TestSocket(srv.wsUrl, { token: u.token });
      if (byFrame) {
        await s.opened;
        s.send({ type: 'auth', token: u.token });
      }
      await revoked;
      expect(await s.waitClose(3000)).toBe(4401);
      expect(s.closeReason).toBe('session revoked');
      expect(s.ofType('ready')).toHaveLength(0);
    }
  });

  it('a re-auth whose new login is revoked while its token is checked closes the socket with 4401', async () => {
    const u = await srv.user();
    const other = await secondSession(u);
    const s = await connect(srv.wsUrl, u.token);
    const revoked = revokeRightAfterNextTokenCheck(() => srv.ctx.services.tokens.logout(other.refreshToken));
    s.send({ type: 'auth', token: other.token });
    await revoked;
    expect(await s.waitClose(3000)).toBe(4401);
    expect(s.closeReason).toBe('session revoked');
  });
});

describeEachDialect('ws login re-check across instances, the revocation signal lost', (dialect) => {
  let one: WsServer;
  let two: WsServer;
  let dir: string | undefined;
  const HEARTBEAT_MS = 500;
  const LOGIN_CHECK_MS = 1000;

  beforeAll(async () => {
    dir = dialect === 'sqlite' ? fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-recheck-')) : undefined;
    const sqlitePath = dir ? path.join(dir, 'shared.db') : undefined;
    // One database, and a pub/sub each: every signal between them is lost.
    one = await wsServer({ dialect, sqlitePath, overrides: { pubsub: new LocalPubSub() } });
    two = await wsServer({
      dialect,
      sqlitePath,
      ...(one.pgSchema ? { pgSchema: one.pgSchema } : {}),
      overrides: { pubsub: new LocalPubSub(), heartbeatMs: HEARTBEAT_MS, loginCheckMs: LOGIN_CHECK_MS },
    });
  });
  afterAll(async () => {
    await two?.close();
    await one?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => closeAllSockets());

  it('a logout on one instance closes the socket on the other within the re-check period; another login’s socket stays', async () => {
    const u = await one.user();
    const res = await one.api.post('/auth/login', { username: u.username, password: u.password });
    const kept = await connect(two.wsUrl, res.body.accessToken);
    const s = await connect(two.wsUrl, u.token);

    expect((await one.api.post('/auth/logout', { refreshToken: u.refreshToken })).status).toBe(204);
    const t0 = Date.now();
    expect(await s.waitClose(LOGIN_CHECK_MS + 4 * HEARTBEAT_MS + 2000)).toBe(4401);
    expect(s.closeReason).toBe('session revoked');
    expect(Date.now() - t0).toBeLessThanOrEqual(LOGIN_CHECK_MS + HEARTBEAT_MS + 1000);
    await kept.sync();
    expect(kept.closeCode).toBeNull();
  });
});
