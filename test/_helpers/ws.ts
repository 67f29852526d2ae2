import type { Chat } from '@safechat/protocol';
import WebSocket from 'ws';
import { Api, type Session } from './api.js';
import { testServer, type TestServer, type TestServerOptions } from './server.js';
import type { Argon2Params } from '../../src/domain/password-hasher.js';
import type { Clock } from '../../src/util/clock.js';

export interface Frame {
  type: string;
  cursor?: string;
  requestId?: string;
   
  data?: any;
  error?: { code: string; message: string; details?: unknown };
}

/** A test WebSocket client that records every frame and the close, with waits bounded in time. */
export class TestSocket {
  readonly frames: Frame[] = [];
  closeCode: number | null = null;
  closeReason = '';
  upgradeStatus: number | null = null;
  /** Headers of a refused upgrade (the HTTP answer instead of 101). */
  upgradeHeaders: Record<string, string | string[] | undefined> = {};
  private upgradeBodyDone = false;
  readonly ws: WebSocket;
  private waiters: (() => void)[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  /** `autoPong: false`: a client that stops answering protocol pings (it still reads everything). */
  constructor(url: string, opts: { token?: string; headers?: Record<string, string>; origin?: string; autoPong?: boolean } = {}) {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    this.ws = new WebSocket(url, { headers, ...(opts.origin ? { origin: opts.origin } : {}), ...(opts.autoPong === false ? { autoPong: false } : {}) });
    openSockets.add(this);
    this.ws.on('message', (data) => {
      this.frames.push(JSON.parse((data as Buffer).toString('utf8')) as Frame);
      this.notify();
    });
    this.ws.on('unexpected-response', (_req, res) => {
      this.upgradeStatus = res.statusCode ?? null;
      this.upgradeHeaders = res.headers;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        this.closeReason = body;
        this.upgradeBodyDone = true;
        this.notify();
      });
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.notify();
        resolve(code);
      });
      this.ws.on('error', () => {
        if (this.upgradeStatus !== null) setTimeout(() => resolve(-this.upgradeStatus!), 50);
      });
    });
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends all `frames` in one TCP write, so the server reads them together (bursts, races). */
  sendBatch(frames: unknown[]): void {
    const tcp = (this.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
    tcp.cork();
    for (const f of frames) this.send(f);
    tcp.uncork();
  }

  /** Waits for the first recorded frame (from index `from`) matching `pred`. */
  async next(pred: (f: Frame) => boolean, timeoutMs = 5000, from = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.slice(from).find(pred);
      if (found) return found;
      if (this.closeCode !== null) throw new Error(`socket closed (${this.closeCode} ${this.closeReason}) while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a frame; got ${JSON.stringify(this.frames.map((f) => f.type))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  ofType(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  /** Waits until `n` frames of `type` have arrived. */
  async count(type: string, n: number, timeoutMs = 5000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.ofType(type).length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} ${type} frames, got ${this.ofType(type).length}`);
      await this.next(() => true, deadline - Date.now(), this.frames.length).catch(() => undefined);
    }
    return this.ofType(type);
  }

  /** Waits for the close, bounded. */
  async waitClose(timeoutMs = 5000): Promise<number> {
    return Promise.race([
      this.closed,
      new Promise<number>((_, reject) => setTimeout(() => reject(new Error('socket did not close in time')), timeoutMs)),
    ]);
  }

  close(): void {
    this.ws.terminate();
    openSockets.delete(this);
  }

  /** Waits until the server refused the upgrade with a plain HTTP answer; returns it (no 101 happened). */
  async refused(timeoutMs = 5000): Promise<{ status: number; body: unknown; headers: Record<string, string | string[] | undefined> }> {
    await waitUntil(() => this.upgradeBodyDone || this.closeCode !== null, timeoutMs, 'the upgrade to be refused');
    if (!this.upgradeBodyDone) throw new Error(`expected a refused upgrade, but the socket opened and closed (${this.closeCode})`);
    let body: unknown = this.closeReason;
    try {
      body = JSON.parse(this.closeReason);
    } catch {
      // not JSON: returned as text
    }
    return { status: this.upgradeStatus!, body, headers: this.upgradeHeaders };
  }

  /** Waits until the upgrade either succeeded ('open') or was refused (its HTTP status). */
  async outcome(timeoutMs = 5000): Promise<'open' | number> {
    await waitUntil(() => this.ws.readyState === WebSocket.OPEN || this.upgradeBodyDone || this.closeCode !== null, timeoutMs, 'the upgrade to settle');
    if (this.ws.readyState === WebSocket.OPEN) return 'open';
    if (this.upgradeBodyDone) return this.upgradeStatus!;
    throw new Error(`the socket closed during the upgrade (${this.closeCode})`);
  }

  /** Frames that carry a cursor (stored events, and resync), in arrival order. */
  events(): Frame[] {
    return this.frames.filter((f) => f.cursor !== undefined && f.type !== 'resync');
  }

  /** The cursor of the last event received, or of `ready` when none arrived. */
  lastCursor(): string {
    const events = this.events();
    if (events.length > 0) return events[events.length - 1]!.cursor!;
    const ready = this.frames.find((f) => f.type === 'ready');
    if (!ready) throw new Error('no ready frame yet');
    return ready.data.cursor as string;
  }

  /**
   * A barrier: sends `ping` and waits for its `pong`. Every frame the server wrote before the
   * pong has then arrived, so a test can assert that something was *not* sent.
   */
  async sync(timeoutMs = 5000): Promise<void> {
    const from = this.frames.length;
    this.send({ type: 'ping' });
    await this.next((f) => f.type === 'pong', timeoutMs, from);
  }

  /** Sends `message.send` and waits for the `message.sent` or `error` frame with its requestId. */
  async request(requestId: string, data: unknown, timeoutMs = 5000): Promise<Frame> {
    const from = this.frames.length;
    this.send({ type: 'message.send', requestId, data });
    return this.next((f) => f.requestId === requestId && (f.type === 'message.sent' || f.type === 'error'), timeoutMs, from);
  }
}

const openSockets = new Set<TestSocket>();

/** Terminates every socket a test opened and did not close itself (for afterEach). */
export function closeAllSockets(): void {
  for (const s of [...openSockets]) s.close();
}

/** Polls `cond` until it holds, bounded in time. */
export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits `ms` of real time (only where a test must show that nothing happens). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Argon2id at minimal cost: registration in tests should not spend 20 MiB and 50 ms each. */
export const FAST_ARGON2: Argon2Params = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

/** A clock the test can move: real time plus an offset. */
export function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance: (ms) => {
      offset += ms;
    },
  };
}

/** Opens a socket authenticated by header and waits for `ready`. */
export async function connect(wsUrl: string, token: string, since?: string): Promise<TestSocket> {
  const s = new TestSocket(since === undefined ? wsUrl : `${wsUrl}?since=${since}`, { token });
  await s.next((f) => f.type === 'ready');
  return s;
}

/** Opens a socket without a header, authenticates with the first-frame `auth`, and waits for `ready`. */
export async function connectByFrame(wsUrl: string, token: string, since?: string): Promise<TestSocket> {
  const s = new TestSocket(wsUrl);
  await s.opened;
  s.send({ type: 'auth', token, ...(since !== undefined ? { since } : {}) });
  await s.next((f) => f.type === 'ready');
  return s;
}

let ipCounter = 0;
/**
 * A test server on a real port plus an API client. Users are registered from distinct client
 * addresses, so a suite's registrations do not trip the per-IP registration limit the suite is
 * not testing; every other limit stays at its production value.
 */
export async function wsServer(opts: TestServerOptions): Promise<WsServer> {
  const server = await testServer({ listen: true, ...opts, overrides: { argon2: FAST_ARGON2, ...opts.overrides } });
  const api = new Api(server.app);
  const user = () => new Api(server.app, `10.77.${(++ipCounter >> 8) & 255}.${ipCounter & 255}`).register();
  return {
    ...server,
    api,
    user,
    async pair() {
      const [a, b] = await Promise.all([user(), user()]);
      return { a, b, chat: await api.chat(a, b) };
    },
  };
}

export interface WsServer extends TestServer {
  api: Api;
  /** Registers a fresh user (a first session). */
  user(): Promise<Session>;
  /** Two fresh users and their one-to-one chat. */
  pair(): Promise<{ a: Session; b: Session; chat: Chat }>;
}
