/**
 * The transport ceiling: a bare `ws` relay with no auth and no storage.
 *
 * A client connects to `ws://host:port/?user=<id>` and gets `{"type":"ready"}`. For every
 * `message.send` frame (the same frame the real server takes) the relay parses the JSON, builds
 * the message object the real server would build (id, chatId, seq, senderId, receiverId, the
 * ciphertext fields, type, status, clientMessageId, timestamp), forwards it as a `message.new`
 * frame (with a per-receiver cursor) to every socket of the addressed user, and answers the
 * sender with `message.sent` carrying the requestId and the same message object. So per message
 * the relay, like the server, reads one frame and writes two of the same shape and size: what it
 * leaves out is exactly what the server adds (validation, auth, storage, the event log).
 *
 * `GET /health` answers 200; `GET /loop` answers the largest event-loop delay (ms) since the
 * previous `/loop` (monitorEventLoopDelay, as the server's /metrics reports it) and resets it.
 *
 * Env: PORT (default 0: any; the port is printed as `relay listening on <port>`), HOST.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocketServer, type WebSocket } from 'ws';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? '0');

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

const sockets = new Map<string, Set<WebSocket>>();
/** Per-receiver event cursor, as the server's per-user event log. */
const cursors = new Map<string, number>();
/** Per-chat message seq, as the server's per-chat order. */
const chatSeqs = new Map<string, number>();

interface SendData {
  chatId?: string;
  receiverId?: string;
  encryptedContent: string;
  iv: string;
  mac: string;
  type: string;
  clientMessageId?: string;
}

function onFrame(ws: WebSocket, userId: string, data: Buffer): void {
  let f: { type?: string; requestId?: string; data?: SendData };
  try {
    f = JSON.parse(data.toString('utf8'));
  } catch {
    ws.send('{"type":"error","error":{"code":"validation_error","message":"the frame is not acceptable JSON"}}');
    return;
  }
  if (f.type === 'ping') {
    ws.send('{"type":"pong"}');
    return;
  }
  if (f.type !== 'message.send' || typeof f.requestId !== 'string' || !f.data || typeof f.data.receiverId !== 'string') {
    ws.send(JSON.stringify({ type: 'error', requestId: f.requestId, error: { code: 'validation_error', message: 'invalid frame' } }));
    return;
  }
  const d = f.data;
  const receiverId = d.receiverId!;
  const chatId = d.chatId ?? (userId < receiverId ? `${userId}:${receiverId}` : `${receiverId}:${userId}`);
  const seq = (chatSeqs.get(chatId) ?? 0) + 1;
  chatSeqs.set(chatId, seq);
  const message: Record<string, unknown> = {
    id: randomUUID(),
    chatId,
    seq,
    senderId: userId,
    receiverId,
    encryptedContent: d.encryptedContent,
    iv: d.iv,
    mac: d.mac,
    type: d.type,
    status: 'sent',
    timestamp: new Date().toISOString(),
  };
  if (d.clientMessageId !== undefined) message.clientMessageId = d.clientMessageId;
  const json = JSON.stringify(message);
  const cursor = (cursors.get(receiverId) ?? 0) + 1;
  cursors.set(receiverId, cursor);
  const event = `{"type":"message.new","cursor":"${cursor}","data":${json}}`;
  for (const peer of sockets.get(receiverId) ?? []) if (peer.readyState === peer.OPEN) peer.send(event);
  ws.send(`{"type":"message.sent","requestId":${JSON.stringify(f.requestId)},"data":${json}}`);
}

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
  } else if (req.url === '/loop') {
    const maxMs = loop.max / 1e6;
    loop.reset();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ maxMs }));
  } else {
    res.writeHead(404).end();
  }
});

const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 128 * 1024 });
wss.on('connection', (ws, req) => {
  const userId = new URL(req.url ?? '/', 'http://relay').searchParams.get('user');
  if (!userId) {
    ws.close(4400, 'user is required');
    return;
  }
  let set = sockets.get(userId);
  if (!set) sockets.set(userId, (set = new Set()));
  set.add(ws);
  ws.on('message', (data) => onFrame(ws, userId, data as Buffer));
  ws.on('error', () => undefined);
  ws.on('close', () => {
    set.delete(ws);
    if (set.size === 0 && sockets.get(userId) === set) sockets.delete(userId);
  });
  ws.send(JSON.stringify({ type: 'ready', data: { userId, cursor: String(cursors.get(userId) ?? 0) } }));
});

server.listen(port, host, () => {
  const addr = server.address();
  console.log(`relay listening on ${typeof addr === 'object' && addr ? addr.port : port}`);
});

const stop = () => {
  for (const set of sockets.values()) for (const ws of set) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
