import { afterAll, beforeAll, expect, it } from 'vitest';
import { closeAllSockets, connect, TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';

let s: WsServer;
beforeAll(async () => {
  s = await wsServer({});
});
afterAll(async () => {
  closeAllSockets();
  await s.close();
});

it('dropping every socket lets clients reconnect; shutdown also turns away sockets that open afterwards', async () => {
  const a = await s.user();
  const first = await connect(s.wsUrl, a.token);
  s.ctx.hub.closeAll(1001, 'test: connection lost');
  expect(await first.waitClose()).toBe(1001);
  // A lost connection is not a shutdown: the client is back at once.
  const again = await connect(s.wsUrl, a.token);

  s.ctx.hub.shutdown(1012, 'server restarting');
  expect(await again.waitClose()).toBe(1012);
  // An upgrade that completes after shutdown began (its checks were still running) is closed too.
  const late = new TestSocket(s.wsUrl, { token: a.token });
  expect(await late.waitClose()).toBe(1012);
  expect(late.frames.filter((f) => f.type === 'ready')).toHaveLength(0);
});
