import http from 'node:http';
import type { Duplex } from 'node:stream';

const RETRY_AFTER_SEC = 5;
const BUSY = JSON.stringify({ error: { code: 'unavailable', message: 'starting: the database is not reachable yet, retry later' } });

/**
 * Listens on the server's address while PostgreSQL is not reachable at start (SECURITY REL-06,
 * T-FAULT-PG-3): the process is up (`/health/live` 200), not ready (`/health` 503), and every
 * request or upgrade gets 503 in the error shape, instead of connections being refused. Closed
 * (and its connections dropped) just before the real app listens on the same address.
 */
export async function listenWhileStarting(host: string, port: number): Promise<{ close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const headers = { 'content-type': 'application/json', 'retry-after': String(RETRY_AFTER_SEC), 'cache-control': 'no-store' };
    if (req.method === 'GET' && req.url === '/health/live') return res.writeHead(200, headers).end('{"status":"ok"}');
    if (req.method === 'GET' && req.url === '/health') return res.writeHead(503, headers).end('{"status":"unavailable","checks":{"database":"down"}}');
    res.writeHead(503, headers).end(BUSY);
  });
  // Every connection, upgraded ones included (the HTTP server stops tracking those): all are cut at close.
  const sockets = new Set<Duplex>();
  server.on('connection', (socket: Duplex) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (_req, socket: Duplex) => {
    socket.on('error', () => undefined);
    socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: ${RETRY_AFTER_SEC}\r\nContent-Length: ${Buffer.byteLength(BUSY)}\r\nConnection: close\r\n\r\n${BUSY}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
