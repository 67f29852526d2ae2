import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { paceUpgrades } from '../../src/ws/gateway.js';
import { closeAllSockets, connect, wsServer, type WsServer } from '../_helpers/ws.js';

/** A socket that records what is written to it. */
class FakeSocket extends Duplex {
  written = '';
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.written += chunk.toString();
    done();
  }
}

it('upgrades reach the WebSocket layer a few per turn, in order; past the waiting limit they get a 503 in the error shape', async () => {
  const server = new EventEmitter();
  const into = new EventEmitter();
  const stop = paceUpgrades(server as never, into, { perTurn: 2, maxWaiting: 5 });
  const reached: number[] = [];
  into.on('upgrade', (request: { n: number }) => reached.push(request.n));

  const sockets = Array.from({ length: 12 }, () => new FakeSocket());
  // Twelve arrive in one turn: 2 go on, 5 wait, 5 are turned away.
  sockets.forEach((socket, n) => server.emit('upgrade', { n }, socket, Buffer.alloc(0)));
  expect(reached).toEqual([0, 1]);
  // One of those waiting goes away (a reset) before its turn.
  sockets[4]!.emit('error', new Error('ECONNRESET'));

  await new Promise((r) => setTimeout(r, 50));
  expect(reached).toEqual([0, 1, 2, 3, 5, 6]);
  for (const socket of sockets.slice(7)) {
    const [head, body] = socket.written.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/\r\nRetry-After: 2\r\n/);
    expect(JSON.parse(body!)).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
  }
  expect(sockets.slice(0, 7).every((s) => s.written === '')).toBe(true);
  // A turned-away socket that is reset does not throw (no unhandled 'error').
  sockets[11]!.emit('error', new Error('ECONNRESET'));

  // After stop (shutdown), what still waits is closed, and nothing more is taken.
  const late = [new FakeSocket(), new FakeSocket(), new FakeSocket()];
  late.forEach((socket, i) => server.emit('upgrade', { n: 100 + i }, socket, Buffer.alloc(0)));
  stop();
  server.emit('upgrade', { n: 200 }, new FakeSocket(), Buffer.alloc(0));
  await new Promise((r) => setTimeout(r, 20));
  expect(reached).toEqual([0, 1, 2, 3, 5, 6, 100, 101]);
  expect(late[2]!.destroyed).toBe(true);
});

let s: WsServer;
beforeAll(async () => {
  // Room for the burst: the cap on open sockets per address is 100 by default.
  s = await wsServer({ env: { MAX_SOCKETS_PER_IP: '200' } });
});
afterAll(async () => {
  closeAllSockets();
  await s.close();
});

it('150 sockets connecting at once (within the per-address limits) are all served, each with its ready', async () => {
  const users = await Promise.all(Array.from({ length: 15 }, () => s.user()));
  const sockets = await Promise.all(Array.from({ length: 150 }, (_, i) => connect(s.wsUrl, users[i % users.length]!.token)));
  for (const ws of sockets) expect(ws.frames.filter((f) => f.type === 'ready')).toHaveLength(1);
  expect(s.ctx.hub.connectionCount(users[0]!.id)).toBe(10);
  closeAllSockets();
});
