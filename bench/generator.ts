/**
 * The load generator: its own process, started by bench/run.ts with BENCH_CONFIG (a GenConfig as
 * JSON) and pinned to a different core than the server. It writes a GenResult to
 * `cfg.resultFile` and progress lines to stderr.
 *
 * Every message carries `clientMessageId = <runTag>.<sender>.<seq>.<t>`: the sender's index, its
 * per-sender sequence number and the send time in µs on this process's monotonic clock (the
 * *scheduled* time in open loop, so a server stall cannot hide latency behind a late send). It
 * comes back in `message.new`, so latency is receive time − send time on one clock, and every
 * message is accounted for exactly: lost (acknowledged, never delivered), unacknowledged,
 * duplicated, out of order (per sender→receiver pair), misrouted (delivered to someone else).
 *
 * Order, per pair: over a WebSocket the sender's frames go out in one order on one socket, so
 * the receiver must see them in that order (FIFO). Over REST, concurrent requests have no
 * order; a message must only never overtake one that was acknowledged (201) before it was sent
 * (causal order).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import {
  cpuDelta,
  LATE_MS,
  cpuSnapshot,
  pidsByName,
  procCpuSeconds,
  procStat,
  procRunqWaitSeconds,
  psiSomeSeconds,
  procStatusKiB,
  Samples,
  sleep,
  summarize,
  type GenConfig,
  type GenResult,
  type IdleResult,
  type PhaseResult,
} from './lib.js';

const cfg = JSON.parse(process.env.BENCH_CONFIG ?? 'null') as GenConfig;
if (!cfg) {
  console.error('generator: BENCH_CONFIG is not set (start it through bench/run.ts)');
  process.exit(2);
}

const log = (msg: string) => process.stderr.write(`[gen ${cfg.scenario}] ${msg}\n`);
const result: GenResult = { scenario: cfg.scenario, setupMs: 0, phases: [], unexpectedFrames: 0, socketsClosed: 0, reconnects: 0, errorSamples: [], notes: [] };
const sampleError = (msg: string) => {
  if (result.errorSamples.length < 20) result.errorSamples.push(msg.slice(0, 300));
};

/** Per-socket cap on sends in flight: the server answers more than 64 with rate_limited; a client queues instead. */
const MAX_IN_FLIGHT_PER_SOCKET = 64;
const PROTOCOL_TIMEOUT_MS = 30_000;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

// ---------------------------------------------------------------- HTTP

const setupAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

interface HttpAnswer {
  status: number;
  body: string;
}

function request(base: string, method: string, path: string, body: unknown, token: string | null, agent: http.Agent = setupAgent): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string | number> = {};
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(PROTOCOL_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: no answer in ${PROTOCOL_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

// ---------------------------------------------------------------- users and sockets

interface Account {
  id: string;
  token: string | null;
  base: string;
}

async function createAccounts(n: number, prefix: string): Promise<Account[]> {
  const accounts: Account[] = new Array<Account>(n);
  if (cfg.target === 'relay') {
    for (let i = 0; i < n; i++) accounts[i] = { id: randomUUID(), token: null, base: cfg.urls[i % cfg.urls.length]! };
    return accounts;
  }
  const indices = Array.from({ length: n }, (_, i) => i);
  // Argon2id makes registration deliberately slow; a few at a time keep the server's thread pool busy.
  await pool(indices, 8, async (i) => {
    const base = cfg.urls[i % cfg.urls.length]!;
    const username = `${prefix}${cfg.runTag}_${i}`;
    const password = `Bench-${randomBytes(12).toString('hex')}`;
    const reg = await request(base, 'POST', '/auth/register', { username, password }, null);
    if (reg.status !== 201) throw new Error(`register ${username}: ${reg.status} ${reg.body.slice(0, 200)}`);
    // Log in as clients do after registering (and to exercise the login path once per user).
    const login = await request(base, 'POST', '/auth/login', { username, password }, null);
    if (login.status !== 200) throw new Error(`login ${username}: ${login.status} ${login.body.slice(0, 200)}`);
    const body = JSON.parse(login.body) as { user: { id: string }; accessToken: string };
    accounts[i] = { id: body.user.id, token: body.accessToken, base };
  });
  return accounts;
}

function wsUrl(a: Account, since: string | null): string {
  const u = new URL(a.base);
  u.protocol = 'ws:';
  if (cfg.target === 'relay') {
    u.pathname = '/';
    u.search = `?user=${a.id}`;
  } else {
    u.pathname = '/ws';
    if (since !== null) u.search = `?since=${since}`;
  }
  return u.toString();
}

interface SocketHooks {
  onFrame?: (data: Buffer) => void;
  /** The server closed a socket that was ready (not at the generator's own shutdown). */
  onClose?: (code: number, reason: string) => void;
  /** The `ready` frame's cursor (where a later resume starts if no event arrives before). */
  onReady?: (cursor: string | null) => void;
  since?: string | null;
  timeoutMs?: number;
}

/** Opens an authenticated socket and resolves once `ready` arrives (bounded). */
function openSocket(a: Account, hooks: SocketHooks = {}): Promise<WebSocket> {
  const timeoutMs = hooks.timeoutMs ?? PROTOCOL_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(a, hooks.since ?? null), {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      headers: a.token !== null ? { authorization: `Bearer ${a.token}` } : {},
    });
    let ready = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`socket for ${a.id}: no ready in ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`socket for ${a.id}: upgrade answered ${res.statusCode}`));
      ws.terminate();
    });
    ws.on('error', (err) => {
      if (!ready) {
        clearTimeout(timer);
        reject(err);
      }
    });
    ws.on('close', (code, reason) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`socket for ${a.id}: closed ${code} ${reason.toString()} before ready`));
      } else if (!closing) {
        socketsClosedByServer++;
        sampleError(`socket of ${a.id} closed by the server: ${code} ${reason.toString()}`);
        hooks.onClose?.(code, reason.toString());
      }
    });
    ws.on('message', (data: Buffer) => {
      if (!ready) {
        const text = data.toString('utf8');
        if (text.startsWith('{"type":"ready"')) {
          ready = true;
          clearTimeout(timer);
          hooks.onReady?.(extract(text, '"cursor":"'));
          resolve(ws);
        } else {
          sampleError(`before ready: ${text}`);
        }
        return;
      }
      hooks.onFrame?.(data);
    });
  });
}

let closing = false;
let socketsClosedByServer = 0;
let reconnects = 0;

// ---------------------------------------------------------------- message bookkeeping

const ACKED = 1;
/** Given up on: rejected for good, or out of retries. */
const FAILED = 2;
/** Counted once as no longer awaiting delivery (delivered, or failed). */
const SETTLED = 4;
/** Its fate was unknown once (socket lost while in flight): not order-checked. */
const NOORDER = 8;

/** Attempts per message: back-pressure answers (unavailable, rate_limited) and lost sockets are retried with the same clientMessageId. */
const MAX_ATTEMPTS = 20;

/** Per-sender message records, indexed by the sender's sequence number. */
class Records {
  n = 0;
  /** First transmission, this process's clock (ms). */
  sendT = new Float64Array(256);
  /** Scheduled send time (= sendT in closed loop); carried in clientMessageId. */
  schedT = new Float64Array(256);
  ackT = new Float64Array(256);
  recv = new Uint8Array(256);
  flags = new Uint8Array(256);
  attempts = new Uint8Array(256);
  receiver = new Int32Array(256);
  phase = new Uint8Array(256);
  /** Which pooled ciphertext / iv / mac, so a retry sends the same bytes. */
  payload = new Uint16Array(256 * 3);

  add(receiver: number, phase: number, schedT: number): number {
    if (this.n === this.sendT.length) this.grow();
    const seq = this.n++;
    this.schedT[seq] = schedT;
    this.receiver[seq] = receiver;
    this.phase[seq] = phase;
    this.payload[seq * 3] = (Math.random() * POOL) | 0;
    this.payload[seq * 3 + 1] = (Math.random() * POOL) | 0;
    this.payload[seq * 3 + 2] = (Math.random() * POOL) | 0;
    return seq;
  }

  private grow(): void {
    const g = <A extends Float64Array | Uint8Array | Uint16Array | Int32Array>(a: A, make: (n: number) => A): A => {
      const next = make(a.length * 2);
      next.set(a);
      return next;
    };
    this.sendT = g(this.sendT, (n) => new Float64Array(n));
    this.schedT = g(this.schedT, (n) => new Float64Array(n));
    this.ackT = g(this.ackT, (n) => new Float64Array(n));
    this.recv = g(this.recv, (n) => new Uint8Array(n));
    this.flags = g(this.flags, (n) => new Uint8Array(n));
    this.attempts = g(this.attempts, (n) => new Uint8Array(n));
    this.receiver = g(this.receiver, (n) => new Int32Array(n));
    this.phase = g(this.phase, (n) => new Uint8Array(n));
    this.payload = g(this.payload, (n) => new Uint16Array(n));
  }
}

interface User {
  idx: number;
  account: Account;
  ws: WebSocket | null;
  /** The socket is open and ready (false while reconnecting). */
  up: boolean;
  /** The last event cursor received: a reconnect resumes from it. */
  cursor: string | null;
  /** Sent over the socket, not yet acknowledged: their fate is unknown if the socket is lost. */
  unackedWs: Set<number>;
  /** Waiting for the socket to come back. */
  resend: number[];
  agent: http.Agent | null;
  contacts: number[];
  /** chat id by contact index */
  chats: Map<number, string>;
  inflight: number;
  /** Open loop: scheduled send times waiting for an in-flight slot. */
  queue: number[];
  lastRecvT: number;
  rec: Records;
}

interface PhaseStats {
  name: string;
  kind: 'closed' | 'open';
  rate: number | null;
  windowStart: number;
  windowEnd: number;
  sent: number;
  offered: number;
  delivered: number;
  errors: number;
  retries: number;
  duplicates: number;
  outOfOrder: number;
  misrouted: number;
  latency: Samples;
  slack: Samples;
  maxGapReceiver: number;
  maxGapGlobal: number;
  overloaded: boolean;
}

let users: User[] = [];
const phases: PhaseStats[] = [];
let current: PhaseStats | null = null;
/** Closed loop: replace each acknowledged message with a new one. */
let closedLoopSending = false;
let awaitingAck = 0;
let awaitingDelivery = 0;
let queued = 0;
let unexpectedFrames = 0;
let lastGlobalRecv = -1;
/** sender * N + receiver → sequence numbers on the wire and not yet delivered, in transmission order */
const pending = new Map<number, number[]>();

// Random payloads, drawn from pools so that making them costs the generator nothing per message.
const POOL = 4096;
const b64Pool = (bytes: number) => Array.from({ length: POOL }, () => randomBytes(bytes).toString('base64'));
const ciphertexts = b64Pool(cfg.ciphertextBytes);
const ivs = b64Pool(16);
const macs = b64Pool(32);

function cidOf(sender: number, seq: number, t: number): string {
  return `${cfg.runTag}.${sender}.${seq}.${Math.round(t * 1000)}`;
}

function unpend(sender: number, seq: number): void {
  const list = pending.get(sender * users.length + users[sender]!.rec.receiver[seq]!);
  const pos = list ? list.indexOf(seq) : -1;
  if (pos >= 0) list!.splice(pos, 1);
}

/** A new message from `u`, scheduled at `schedT`, to a random contact. */
function sendOne(u: User, schedT: number): void {
  const phase = current!;
  const peerIdx = u.contacts[(Math.random() * u.contacts.length) | 0]!;
  const seq = u.rec.add(peerIdx, phases.length - 1, schedT);
  u.inflight++;
  awaitingAck++;
  awaitingDelivery++;
  phase.sent++;
  if (phase.kind === 'open') phase.slack.push(performance.now() - schedT);
  transmit(u, seq);
}

/** Puts a message on the wire (first time, or again with the same clientMessageId). */
function transmit(u: User, seq: number): void {
  const r = u.rec;
  if (cfg.send === 'ws' && !u.up) {
    u.resend.push(seq);
    return;
  }
  const now = performance.now();
  if (r.attempts[seq]!++ === 0) r.sendT[seq] = now;
  const peerIdx = r.receiver[seq]!;
  const cid = cidOf(u.idx, seq, r.schedT[seq]!);
  const p = seq * 3;
  const data = `{"chatId":"${u.chats.get(peerIdx)!}","receiverId":"${users[peerIdx]!.account.id}","encryptedContent":"${ciphertexts[r.payload[p]!]!}","iv":"${ivs[r.payload[p + 1]!]!}","mac":"${macs[r.payload[p + 2]!]!}","type":"text","clientMessageId":"${cid}"}`;
  if (!(r.flags[seq]! & NOORDER)) {
    const key = u.idx * users.length + peerIdx;
    let list = pending.get(key);
    if (!list) pending.set(key, (list = []));
    list.push(seq);
  }
  if (cfg.send === 'ws') {
    u.unackedWs.add(seq);
    // A failed write means the socket is going away: its close handler resends what is unacknowledged.
    u.ws!.send(`{"type":"message.send","requestId":"${cid}","data":${data}}`, () => undefined);
    return;
  }
  const req = http.request(
    {
      host: restHost(u),
      port: restPort(u),
      path: '/messages',
      method: 'POST',
      agent: u.agent!,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), authorization: `Bearer ${u.account.token}` },
    },
    (res) => {
      const status = res.statusCode ?? 0;
      if (status === 201) {
        res.resume();
        res.on('end', () => onAck(u.idx, seq, performance.now()));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const why = `POST /messages ${status}: ${Buffer.concat(chunks).toString('utf8')}`;
        if (status === 429 || status === 503) onRetryable(u.idx, seq, why, Number(res.headers['retry-after'] ?? '0') * 1000);
        else onFailed(u.idx, seq, why);
      });
    },
  );
  req.setTimeout(PROTOCOL_TIMEOUT_MS, () => req.destroy(new Error('no answer')));
  // No answer: the message may or may not be stored; sending it again with its clientMessageId is safe.
  req.on('error', (err) => onUnknownFate(u, seq, `POST /messages failed: ${err.message}`));
  req.end(data);
}

const restUrls = new Map<string, URL>();
function restUrl(u: User): URL {
  let url = restUrls.get(u.account.base);
  if (!url) restUrls.set(u.account.base, (url = new URL(u.account.base)));
  return url;
}
const restHost = (u: User) => restUrl(u).hostname;
const restPort = (u: User) => restUrl(u).port;

function afterSettled(u: User): void {
  u.inflight--;
  if (u.queue.length > 0) {
    queued--;
    sendOne(u, u.queue.shift()!);
  } else if (closedLoopSending) {
    sendOne(u, performance.now());
  }
}

function onAck(sender: number, seq: number, now: number): void {
  const u = users[sender]!;
  const r = u.rec;
  if (seq >= r.n) {
    unexpectedFrames++;
    sampleError(`acknowledgement for a message never sent: ${sender}.${seq}`);
    return;
  }
  // A second acknowledgement (the first was in flight when its socket went away) changes nothing.
  if (r.flags[seq]! & (ACKED | FAILED)) return;
  r.flags[seq]! |= ACKED;
  r.ackT[seq] = now;
  u.unackedWs.delete(seq);
  awaitingAck--;
  afterSettled(u);
}

/** Back-pressure (unavailable, rate_limited): not stored; sent again after a pause. */
function onRetryable(sender: number, seq: number, why: string, delayMs: number): void {
  const u = users[sender]!;
  const r = u.rec;
  if (seq >= r.n || r.flags[seq]! & (ACKED | FAILED)) return;
  phases[r.phase[seq]!]!.retries++;
  sampleError(why);
  unpend(sender, seq);
  u.unackedWs.delete(seq);
  if (r.attempts[seq]! >= MAX_ATTEMPTS) return onFailed(sender, seq, `${why} (after ${MAX_ATTEMPTS} attempts)`);
  setTimeout(() => transmit(u, seq), Math.min(1000, Math.max(50, delayMs || 100)));
}

/** The socket (or connection) went away with the message in flight: resend it, without order checks. */
function onUnknownFate(u: User, seq: number, why: string): void {
  const r = u.rec;
  if (r.flags[seq]! & (ACKED | FAILED)) return;
  phases[r.phase[seq]!]!.retries++;
  sampleError(why);
  r.flags[seq]! |= NOORDER;
  unpend(u.idx, seq);
  u.unackedWs.delete(seq);
  if (r.attempts[seq]! >= MAX_ATTEMPTS) return onFailed(u.idx, seq, `${why} (after ${MAX_ATTEMPTS} attempts)`);
  if (cfg.send === 'ws') u.resend.push(seq);
  else setTimeout(() => transmit(u, seq), 100);
}

/** Refused for good (or out of attempts): the message will never exist. */
function onFailed(sender: number, seq: number, why: string): void {
  const u = users[sender]!;
  const r = u.rec;
  if (seq >= r.n || r.flags[seq]! & (ACKED | FAILED)) return;
  sampleError(why);
  r.flags[seq]! |= FAILED;
  phases[r.phase[seq]!]!.errors++;
  awaitingAck--;
  u.unackedWs.delete(seq);
  unpend(sender, seq);
  if (!(r.flags[seq]! & SETTLED)) {
    r.flags[seq]! |= SETTLED;
    awaitingDelivery--;
  }
  afterSettled(u);
}

function socketHooks(u: User, since: string | null): SocketHooks {
  return {
    onFrame: (d) => onFrame(u, d),
    onClose: () => onSocketLost(u),
    onReady: (cursor) => {
      if (cursor !== null) u.cursor = cursor;
    },
    since,
  };
}

/** The server closed a user's socket: resume from the last cursor, then resend what was unacknowledged. */
function onSocketLost(u: User): void {
  u.up = false;
  for (const seq of [...u.unackedWs]) onUnknownFate(u, seq, `socket lost with ${u.idx}.${seq} in flight`);
  void (async () => {
    for (let attempt = 1; attempt <= 20 && !closing; attempt++) {
      await sleep(Math.min(2000, 100 * attempt));
      try {
        u.ws = await openSocket(u.account, socketHooks(u, u.cursor));
        reconnects++;
        u.up = true;
        const todo = u.resend.splice(0);
        for (const seq of todo) transmit(u, seq);
        return;
      } catch (err) {
        sampleError(`reconnect of user ${u.idx} failed: ${String(err)}`);
      }
    }
    if (!closing) result.notes.push(`user ${u.idx} could not reconnect`);
  })();
}

function parseCid(cid: string): { sender: number; seq: number; t: number } | null {
  const parts = cid.split('.');
  if (parts.length !== 4 || parts[0] !== cfg.runTag) return null;
  return { sender: Number(parts[1]), seq: Number(parts[2]), t: Number(parts[3]) / 1000 };
}

function extract(text: string, marker: string): string | null {
  const i = text.indexOf(marker);
  if (i < 0) return null;
  const start = i + marker.length;
  const end = text.indexOf('"', start);
  return end < 0 ? null : text.slice(start, end);
}

// Frames are read as bytes: only the few fields the generator needs become strings.
const CURSOR_MARK = Buffer.from('"cursor":"');
const CID_MARK = Buffer.from('"clientMessageId":"');
const REQUEST_ID_MARK = Buffer.from('"requestId":"');
const QUOTE = 0x22;

function extractBuf(data: Buffer, mark: Buffer, fromEnd: boolean): string | null {
  const i = fromEnd ? data.lastIndexOf(mark) : data.indexOf(mark);
  if (i < 0) return null;
  const start = i + mark.length;
  const end = data.indexOf(QUOTE, start);
  return end < 0 ? null : data.toString('latin1', start, end);
}

function onDelivered(receiverIdx: number, data: Buffer, now: number): void {
  const receiver = users[receiverIdx]!;
  const cursor = extractBuf(data, CURSOR_MARK, false);
  if (cursor !== null) receiver.cursor = cursor;
  // The message's own fields come after the cursor; clientMessageId is the last or nearly so.
  const cid = extractBuf(data, CID_MARK, true);
  const id = cid === null ? null : parseCid(cid);
  if (!id || id.sender >= users.length || id.seq >= users[id.sender]!.rec.n) {
    unexpectedFrames++;
    sampleError(`unrecognised message.new: ${data.toString('utf8', 0, 200)}`);
    return;
  }
  const sender = users[id.sender]!;
  const r = sender.rec;
  const seq = id.seq;
  const ph = phases[r.phase[seq]!]!;
  if (r.receiver[seq] !== receiverIdx) {
    ph.misrouted++;
    sampleError(`message ${cid} for user ${r.receiver[seq]} delivered to user ${receiverIdx}`);
    return;
  }
  if (r.recv[seq]!++ > 0) {
    ph.duplicates++;
    sampleError(`duplicate delivery of ${cid}`);
    return;
  }
  const key = id.sender * users.length + receiverIdx;
  const list = pending.get(key) ?? [];
  const pos = list.indexOf(seq);
  if (pos > 0) {
    if (cfg.send === 'ws') {
      // FIFO: a frame sent earlier on this socket to this receiver, accepted, is still undelivered.
      ph.outOfOrder++;
      if (ph.outOfOrder <= 3) sampleError(`out of order: ${cid} delivered before ${id.sender}.${list[0]}`);
    } else {
      // Causal: a message acknowledged before this one was sent is still undelivered.
      const sentAt = r.sendT[seq]!;
      for (let j = 0; j < pos; j++) {
        const s = list[j]!;
        if (r.flags[s]! & ACKED && r.ackT[s]! <= sentAt) {
          ph.outOfOrder++;
          if (ph.outOfOrder <= 3) sampleError(`out of order: ${cid} delivered before ${id.sender}.${s}, acknowledged before it was sent`);
          break;
        }
      }
    }
  }
  if (pos >= 0) list.splice(pos, 1);
  if (!(r.flags[seq]! & SETTLED)) {
    r.flags[seq]! |= SETTLED;
    awaitingDelivery--;
  }
  const c = current;
  if (c && now >= c.windowStart && now < c.windowEnd) {
    c.delivered++;
    if (receiver.lastRecvT >= c.windowStart) c.maxGapReceiver = Math.max(c.maxGapReceiver, now - receiver.lastRecvT);
    if (lastGlobalRecv >= c.windowStart) c.maxGapGlobal = Math.max(c.maxGapGlobal, now - lastGlobalRecv);
  }
  receiver.lastRecvT = now;
  lastGlobalRecv = now;
  if (id.t >= ph.windowStart && id.t < ph.windowEnd) {
    ph.latency.push(now - id.t);
    if (late && now - id.t > LATE_MS) late.lines.push(`${epoch(now)} late ${(now - id.t).toFixed(1)} ${ph.name}`);
  }
}

/** Epoch milliseconds of a performance.now() reading: the servers' trace uses the same clock. */
const epoch = (t: number) => (performance.timeOrigin + t).toFixed(1);

/** `--trace`: late messages and the phases' windows, written in batches (see GenConfig.lateFile). */
const late = cfg.lateFile ? { fd: fs.openSync(cfg.lateFile, 'w'), lines: [] as string[] } : null;
function flushLate(): void {
  if (!late || late.lines.length === 0) return;
  fs.writeSync(late.fd, `${late.lines.join('\n')}\n`);
  late.lines.length = 0;
}
if (late) setInterval(flushLate, 500).unref();

const RETRYABLE = new Set(['unavailable', 'rate_limited']);

function onFrame(u: User, data: Buffer): void {
  const now = performance.now();
  const head = data.toString('latin1', 0, 22);
  if (head.startsWith('{"type":"message.new"')) {
    onDelivered(u.idx, data, now);
  } else if (head === '{"type":"message.sent"') {
    const id = parseCid(extractBuf(data, REQUEST_ID_MARK, false) ?? '');
    if (id && id.sender === u.idx) onAck(id.sender, id.seq, now);
    else {
      unexpectedFrames++;
      sampleError(`unrecognised message.sent: ${data.toString('utf8', 0, 200)}`);
    }
  } else {
    const text = data.toString('utf8');
    let f: { type?: string; requestId?: string; error?: { code: string; message: string; details?: { retryAfter?: number } } };
    try {
      f = JSON.parse(text);
    } catch {
      unexpectedFrames++;
      sampleError(`not JSON: ${text.slice(0, 200)}`);
      return;
    }
    const id = f.type === 'error' && f.requestId !== undefined ? parseCid(f.requestId) : null;
    if (id && f.error) {
      const why = `error frame: ${JSON.stringify(f.error)}`;
      if (RETRYABLE.has(f.error.code)) onRetryable(id.sender, id.seq, why, (f.error.details?.retryAfter ?? 0) * 1000);
      else onFailed(id.sender, id.seq, why);
    } else if (f.type !== 'pong') {
      unexpectedFrames++;
      sampleError(`unexpected frame: ${text.slice(0, 200)}`);
    }
  }
  openLoopTick?.(now);
}

// ---------------------------------------------------------------- measurement

interface Snapshot {
  t: number;
  server: Map<number, number>;
  gen: number;
  aux: Map<number, number>;
  stat: ReturnType<typeof procStat>;
  serverWait: number | null;
  genWait: number | null;
  psiCpu: number | null;
  psiIo: number | null;
}

function snapshot(auxPids: number[]): Snapshot {
  return {
    t: performance.now(),
    server: cpuSnapshot(cfg.serverPids, cfg.clkTck),
    gen: procCpuSeconds(process.pid, cfg.clkTck) ?? 0,
    aux: cpuSnapshot(auxPids, cfg.clkTck),
    stat: procStat(),
    serverWait: cfg.serverPids.reduce<number | null>((sum, pid) => {
      const w = procRunqWaitSeconds(pid);
      return w === null || sum === null ? null : sum + w;
    }, 0),
    genWait: procRunqWaitSeconds(process.pid),
    psiCpu: psiSomeSeconds('cpu'),
    psiIo: psiSomeSeconds('io'),
  };
}

/** The server's largest event-loop delay since the previous call (and resets it), in ms; null if not exposed. */
async function serverLoopMax(): Promise<number | null> {
  let max: number | null = null;
  for (const base of cfg.urls) {
    try {
      if (cfg.target === 'relay') {
        const a = await request(base, 'GET', '/loop', undefined, null);
        max = Math.max(max ?? 0, (JSON.parse(a.body) as { maxMs: number }).maxMs);
      } else {
        // prom-client's default metrics: monitorEventLoopDelay, reset at every scrape.
        const a = await request(base, 'GET', '/metrics', undefined, null);
        const m = /^\w*nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(a.body);
        if (m) max = Math.max(max ?? 0, Number(m[1]) * 1000);
      }
    } catch {
      // not exposed
    }
  }
  return max;
}

function rssKiB(field: 'VmRSS' | 'VmHWM'): number {
  return cfg.serverPids.reduce((s, pid) => s + procStatusKiB(pid, field), 0);
}

const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

function newPhase(name: string, kind: 'closed' | 'open', rate: number | null, windowStart: number, windowEnd: number): PhaseStats {
  const p: PhaseStats = {
    name,
    kind,
    rate,
    windowStart,
    windowEnd,
    sent: 0,
    offered: 0,
    delivered: 0,
    errors: 0,
    retries: 0,
    duplicates: 0,
    outOfOrder: 0,
    misrouted: 0,
    latency: new Samples(),
    slack: new Samples(),
    maxGapReceiver: 0,
    maxGapGlobal: 0,
    overloaded: false,
  };
  phases.push(p);
  current = p;
  late?.lines.push(`${epoch(windowStart)} window ${epoch(windowEnd)} ${kind} ${name}`);
  return p;
}

/** Waits until every sent message is acknowledged (or rejected) and delivered; bounded. */
async function drain(timeoutS: number): Promise<boolean> {
  const deadline = performance.now() + timeoutS * 1000;
  while (performance.now() < deadline) {
    if (awaitingAck === 0 && awaitingDelivery === 0 && queued === 0) return true;
    await sleep(20);
  }
  log(`drain timed out after ${timeoutS}s: ${awaitingAck} unacknowledged, ${awaitingDelivery} undelivered, ${queued} queued`);
  return false;
}

/** Measures the window [start, end] of the current phase: CPU, RSS, loop delays. */
async function measureWindow(p: PhaseStats): Promise<Omit<PhaseResult, 'lost' | 'unacked' | 'duplicates' | 'outOfOrder' | 'misrouted' | 'errors' | 'retries' | 'latencyMs' | 'sent'>> {
  const auxPids = pidsByName(cfg.auxProcNames);
  await sleep(Math.max(0, p.windowStart - performance.now()));
  await serverLoopMax();
  loopDelay.reset();
  const a = snapshot(auxPids);
  await sleep(Math.max(0, p.windowEnd - performance.now()));
  const b = snapshot(auxPids);
  const genLoopMaxMs = loopDelay.max / 1e6;
  const serverLoopMaxMs = await serverLoopMax();
  const windowS = (b.t - a.t) / 1000;
  const serverCpu = cpuDelta(a.server, b.server);
  const genCpu = b.gen - a.gen;
  const auxCpu = cpuDelta(a.aux, b.aux);
  const all = (x: Snapshot) => x.stat.get('cpu') ?? { busy: 0, total: 0, steal: 0 };
  const machineBusy = (all(b).busy - all(a).busy) / cfg.clkTck;
  const steal = (all(b).steal - all(a).steal) / cfg.clkTck;
  return {
    name: p.name,
    kind: p.kind,
    targetRate: p.rate,
    windowS: round(windowS, 3),
    windowEpochMs: [round(performance.timeOrigin + a.t), round(performance.timeOrigin + b.t)],
    deliveredInWindow: 0,
    deliveredPerSec: 0,
    offeredPerSec: 0,
    serverCpuPct: round((serverCpu / windowS) * 100),
    genCpuPct: round((genCpu / windowS) * 100),
    auxCpuPct: cfg.auxProcNames.length ? round((auxCpu / windowS) * 100) : null,
    otherCpuPct: round((Math.max(0, machineBusy - serverCpu - genCpu - auxCpu) / windowS) * 100),
    stealPct: round((steal / windowS) * 100),
    serverRunqWaitPct: pct(a.serverWait, b.serverWait, windowS),
    genRunqWaitPct: pct(a.genWait, b.genWait, windowS),
    cpuPressurePct: pct(a.psiCpu, b.psiCpu, windowS),
    ioPressurePct: pct(a.psiIo, b.psiIo, windowS),
    cpuUsPerMsg: serverCpu,
    serverRssKiB: rssKiB('VmRSS'),
    serverHwmKiB: rssKiB('VmHWM'),
    serverLoopMaxMs: serverLoopMaxMs === null ? null : round(serverLoopMaxMs),
    genLoopMaxMs: round(genLoopMaxMs),
    maxGapPerReceiverMs: 0,
    maxGapGlobalMs: 0,
    overloaded: false,
    skipped: false,
  };
}

function pct(a: number | null, b: number | null, windowS: number): number | null {
  return a === null || b === null ? null : round(((b - a) / windowS) * 100);
}

type Measured = Awaited<ReturnType<typeof measureWindow>>;
const measured: Measured[] = [];

function finishWindow(p: PhaseStats, m: Measured): void {
  const windowS = (p.windowEnd - p.windowStart) / 1000;
  m.deliveredInWindow = p.delivered;
  m.deliveredPerSec = round(p.delivered / windowS);
  m.offeredPerSec = round(p.offered / windowS);
  // cpuUsPerMsg held the server CPU seconds until the delivered count is known.
  m.cpuUsPerMsg = p.delivered > 0 ? round((m.cpuUsPerMsg! / p.delivered) * 1e6) : null;
  m.maxGapPerReceiverMs = round(p.maxGapReceiver);
  m.maxGapGlobalMs = round(p.maxGapGlobal);
  // Open loop: a server that delivers clearly less than it is offered is overloaded; its latency grows with the run.
  m.overloaded = p.overloaded || (p.kind === 'open' && p.delivered < 0.9 * p.offered);
  measured.push(m);
}

// ---------------------------------------------------------------- phases

async function closedLoop(): Promise<void> {
  const start = performance.now();
  const p = newPhase(`closed W=${cfg.window}`, 'closed', null, start + cfg.warmupS * 1000, start + (cfg.warmupS + cfg.durationS) * 1000);
  log(`closed loop: ${cfg.users} users × ${cfg.window} in flight, ${cfg.warmupS}s warm-up + ${cfg.durationS}s measured`);
  closedLoopSending = true;
  for (const u of users) for (let i = 0; i < cfg.window; i++) sendOne(u, performance.now());
  const m = await measureWindow(p);
  closedLoopSending = false;
  p.offered = p.sent;
  finishWindow(p, m);
  log(`closed loop: ${m.deliveredPerSec} msg/s delivered, server CPU ${m.serverCpuPct}%, generator CPU ${m.genCpuPct}%`);
  await drain(cfg.drainTimeoutS);
}

let openLoopTick: ((now: number) => void) | null = null;

async function openLoop(rate: number): Promise<void> {
  const leadS = Math.min(1, cfg.warmupS);
  const t0 = performance.now() + 50;
  const schedEnd = t0 + (leadS + cfg.durationS) * 1000;
  const p = newPhase(`open ${rate}/s`, 'open', rate, t0 + leadS * 1000, schedEnd);
  log(`open loop: ${rate} msg/s, ${leadS}s lead-in + ${cfg.durationS}s measured`);
  const interval = 1000 / rate;
  // Half a second of sends waiting for a slot means the server is not keeping up: stop, or the drain takes forever.
  const maxBacklog = Math.max(500, rate / 2);
  let k = 0;
  let done = false;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const tick = (now: number) => {
    if (done) return;
    for (;;) {
      const due = t0 + k * interval;
      if (due >= schedEnd) {
        done = true;
        openLoopTick = null;
        finish();
        return;
      }
      if (due > now) break;
      k++;
      if (due >= p.windowStart && due < p.windowEnd) p.offered++;
      const u = users[(Math.random() * users.length) | 0]!;
      if (u.inflight >= MAX_IN_FLIGHT_PER_SOCKET) {
        u.queue.push(due);
        if (++queued > maxBacklog) {
          p.overloaded = true;
          done = true;
          openLoopTick = null;
          // What was never sent is not measured: drop the backlog.
          for (const v of users) v.queue.length = 0;
          queued = 0;
          log(`open loop ${rate}/s: backlog over ${maxBacklog} messages — overloaded, scheduling stopped`);
          finish();
          return;
        }
      } else {
        sendOne(u, due);
      }
    }
  };
  openLoopTick = tick;
  const timer = setInterval(() => tick(performance.now()), 1);
  const m = await measureWindow(p);
  await finished;
  clearInterval(timer);
  finishWindow(p, m);
  await drain(cfg.drainTimeoutS);
  const lat = summarize(p.latency.values());
  log(`open loop ${rate}/s: p50 ${lat.p50} ms, p99 ${lat.p99} ms, p99.9 ${lat.p999} ms, server CPU ${m.serverCpuPct}%`);
}

/** A rate over twice the saturated throughput just measured cannot be served: recorded as overloaded, not run. */
function skipOpenLoop(rate: number, saturated: number): void {
  const now = performance.now();
  const p = newPhase(`open ${rate}/s`, 'open', rate, now, now);
  p.overloaded = true;
  measured.push({
    name: p.name,
    kind: 'open',
    targetRate: rate,
    windowS: 0,
    windowEpochMs: [round(performance.timeOrigin + now), round(performance.timeOrigin + now)],
    deliveredInWindow: 0,
    deliveredPerSec: 0,
    offeredPerSec: 0,
    serverCpuPct: 0,
    genCpuPct: 0,
    auxCpuPct: null,
    otherCpuPct: 0,
    stealPct: 0,
    serverRunqWaitPct: null,
    genRunqWaitPct: null,
    cpuPressurePct: null,
    ioPressurePct: null,
    cpuUsPerMsg: null,
    serverRssKiB: rssKiB('VmRSS'),
    serverHwmKiB: rssKiB('VmHWM'),
    serverLoopMaxMs: null,
    genLoopMaxMs: 0,
    maxGapPerReceiverMs: 0,
    maxGapGlobalMs: 0,
    overloaded: true,
    skipped: true,
  });
  result.notes.push(`open ${rate}/s not run: over twice the saturated throughput (${saturated} msg/s) — overloaded by construction`);
  log(`open loop ${rate}/s skipped: saturated throughput is ${saturated} msg/s`);
}

async function setupMessaging(): Promise<void> {
  const t0 = performance.now();
  const accounts = await createAccounts(cfg.users, 'b');
  log(`${cfg.users} accounts in ${round((performance.now() - t0) / 1000)}s`);
  users = accounts.map((account, idx) => ({
    idx,
    account,
    ws: null,
    up: false,
    cursor: null,
    unackedWs: new Set<number>(),
    resend: [],
    agent: cfg.send === 'rest' ? new http.Agent({ keepAlive: true, maxSockets: cfg.httpConns }) : null,
    contacts: [],
    chats: new Map(),
    inflight: 0,
    queue: [],
    lastRecvT: -1,
    rec: new Records(),
  }));
  // Contacts: each user picks `contacts` random peers; a pair is a contact of both.
  const pairs: [number, number][] = [];
  const k = Math.min(cfg.contacts, cfg.users - 1);
  for (const u of users) {
    while (u.contacts.length < k) {
      const j = (Math.random() * cfg.users) | 0;
      if (j === u.idx || u.chats.has(j)) continue;
      u.chats.set(j, '');
      users[j]!.chats.set(u.idx, '');
      u.contacts.push(j);
      users[j]!.contacts.push(u.idx);
      pairs.push([u.idx, j]);
    }
  }
  // One-to-one chats exist before the measurement: the window measures sending, not chat creation.
  await pool(pairs, 16, async ([a, b]) => {
    let chatId: string;
    if (cfg.target === 'relay') {
      chatId = randomUUID();
    } else {
      const ua = users[a]!.account;
      const res = await request(ua.base, 'POST', '/chats', { participantIds: [users[b]!.account.id] }, ua.token);
      if (res.status !== 201 && res.status !== 200) throw new Error(`POST /chats: ${res.status} ${res.body.slice(0, 200)}`);
      chatId = (JSON.parse(res.body) as { id: string }).id;
    }
    users[a]!.chats.set(b, chatId);
    users[b]!.chats.set(a, chatId);
  });
  await pool(users, 50, async (u) => {
    u.ws = await openSocket(u.account, socketHooks(u, null));
    u.up = true;
  });
  result.setupMs = Math.round(performance.now() - t0);
  log(`setup done in ${round(result.setupMs / 1000)}s: ${pairs.length} chats, ${users.length} sockets ready`);
}

function finalize(): void {
  // Lost / unacknowledged are decided at the very end, after the last drain.
  const lost = new Array<number>(phases.length).fill(0);
  const unacked = new Array<number>(phases.length).fill(0);
  for (const u of users) {
    const r = u.rec;
    for (let s = 0; s < r.n; s++) {
      const f = r.flags[s]!;
      if (f & FAILED) continue;
      if (!(f & ACKED)) unacked[r.phase[s]!]!++;
      else if (r.recv[s] === 0) lost[r.phase[s]!]!++;
    }
  }
  result.phases = phases.map((p, i) => {
    const m = measured[i]!;
    const slack = summarize(p.slack.values());
    if (p.kind === 'open' && slack.p99 !== null && slack.p99 > 2) {
      result.notes.push(`${p.name}: the generator sent 1% of messages more than ${slack.p99} ms after their scheduled time (counted in latency)`);
    }
    return {
      ...m,
      sent: p.sent,
      errors: p.errors,
      retries: p.retries,
      lost: lost[i]!,
      unacked: unacked[i]!,
      duplicates: p.duplicates,
      outOfOrder: p.outOfOrder,
      misrouted: p.misrouted,
      latencyMs: summarize(p.latency.values()),
    };
  });
}

// ---------------------------------------------------------------- idle

async function idle(): Promise<IdleResult> {
  const spec = cfg.idle!;
  const t0 = performance.now();
  const accounts = await createAccounts(spec.users, 'i');
  result.setupMs = Math.round(performance.now() - t0);
  log(`${spec.users} accounts in ${round(result.setupMs / 1000)}s; ${spec.sockets} sockets to open`);
  const sockets: WebSocket[] = [];
  const accountOf = (k: number) => accounts[k % accounts.length]!;
  // Warm the connection path (code, JIT, pools) so the baseline is not charged to the sockets.
  const warm = await Promise.all(Array.from({ length: 20 }, (_, k) => openSocket(accountOf(k))));
  closing = true;
  for (const ws of warm) ws.terminate();
  await sleep(spec.settleS * 1000);
  closing = false;
  const rssSample = async () => {
    const v: number[] = [];
    for (let i = 0; i < 3; i++) {
      v.push(rssKiB('VmRSS'));
      await sleep(300);
    }
    return v.sort((a, b) => a - b)[1]!;
  };
  const baseline = await rssSample();
  await serverLoopMax();
  // The burst: `burst` sockets connect at the same moment; how long until every one is ready?
  let burstFailed = 0;
  const b0 = performance.now();
  const burst = await Promise.allSettled(Array.from({ length: spec.burst }, (_, k) => openSocket(accountOf(k), { timeoutMs: 60_000 })));
  const burstReadyMs = performance.now() - b0;
  for (const r of burst) {
    if (r.status === 'fulfilled') sockets.push(r.value);
    else {
      burstFailed++;
      sampleError(`burst: ${String(r.reason)}`);
    }
  }
  log(`burst: ${spec.burst - burstFailed}/${spec.burst} sockets ready in ${round(burstReadyMs)} ms`);
  let failed = burstFailed;
  const openUpTo = async (target: number) => {
    const todo = Array.from({ length: Math.max(0, target - sockets.length - failed) }, (_, k) => sockets.length + failed + k);
    await pool(todo, 200, async (k) => {
      try {
        sockets.push(await openSocket(accountOf(k), { timeoutMs: 60_000 }));
      } catch (err) {
        failed++;
        sampleError(`idle: ${String(err)}`);
      }
    });
  };
  const half = Math.floor(spec.sockets / 2);
  await openUpTo(half);
  await sleep(spec.settleS * 1000);
  const halfRss = await rssSample();
  const halfOpen = sockets.length;
  await openUpTo(spec.sockets);
  await sleep(spec.settleS * 1000);
  const fullRss = await rssSample();
  const loopMax = await serverLoopMax();
  log(`${sockets.length} idle sockets: server RSS ${round(fullRss / 1024)} MiB (baseline ${round(baseline / 1024)} MiB)`);
  closing = true;
  for (const ws of sockets) ws.terminate();
  const open = sockets.length;
  return {
    sockets: open,
    users: spec.users,
    baselineRssKiB: baseline,
    rssKiB: fullRss,
    rssPerSocketKiB: open > 0 ? round((fullRss - baseline) / open, 2) : 0,
    marginalPerSocketKiB: open > halfOpen ? round((fullRss - halfRss) / (open - halfOpen), 2) : 0,
    burst: spec.burst,
    burstReadyMs: burstFailed === spec.burst ? null : round(burstReadyMs),
    burstFailed,
    failed,
    serverLoopMaxMs: loopMax === null ? null : round(loopMax),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (cfg.idle) {
    result.idle = await idle();
  } else {
    await setupMessaging();
    await closedLoop();
    const saturated = measured[0]?.deliveredPerSec ?? 0;
    for (const rate of cfg.rates) {
      if (rate > 2 * saturated) {
        skipOpenLoop(rate, saturated);
        continue;
      }
      await openLoop(rate);
    }
    // The last chance for stragglers before lost / unacknowledged are counted.
    await drain(cfg.drainTimeoutS);
    finalize();
    closing = true;
    for (const u of users) u.ws?.terminate();
    for (const u of users) u.agent?.destroy();
  }
  setupAgent.destroy();
  result.unexpectedFrames = unexpectedFrames;
  result.socketsClosed = socketsClosedByServer;
  result.reconnects = reconnects;
  flushLate();
  fs.writeFileSync(cfg.resultFile, JSON.stringify(result, null, 2));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`[gen ${cfg.scenario}] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
