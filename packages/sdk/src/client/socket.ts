/**
 * The WebSocket client: authenticates with the first frame (works in browsers), resumes from the
 * last processed cursor, hands events to the application one at a time in cursor order,
 * reconnects with exponential backoff and jitter, re-authenticates before the access token
 * expires, and sends messages (`message.send` → the stored message).
 */
import type { EventFrame, Message, ResyncFrame, SendMessageBody } from '@safechat/protocol';
import { Emitter } from './emitter.js';
import { ApiError, SignedOutError, statusOfCode, type ApiErrorCode } from './errors.js';
import type { TokenSource } from './http.js';
import { randomFraction, randomId } from './random.js';
import { MemoryCursorStore, type CursorStore } from './stores.js';

/** What the client needs of a WebSocket: the browser's global class and `ws`'s class both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type SocketState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Close codes the client acts on (see `CLOSE` in `@safechat/protocol` and docs/websocket.md §8). */
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_BAD_REQUEST = 4400;
const CLOSE_TOO_MANY_SOCKETS = 4429;
const CLOSE_SERVICE_RESTART = 1012;
/** Closes for a client bug or abuse (1003, 1007, 1008, 1009): reconnect, but never in a tight loop. */
const CLOSE_CLIENT_FAULT = new Set([1003, 1007, 1008, 1009]);
/** Our own code when we drop a socket that stopped answering (browsers allow 1000 and 3000–4999). */
const CLOSE_CLIENT_TIMEOUT = 4000;

const OPEN = 1;
/** The server's largest inbound frame (docs/websocket.md §9); a bigger one would cost the connection (1009). */
const MAX_FRAME_CHARS = 128 * 1024;
const SEEN_IDS_KEPT = 5_000;

export interface SocketOptions {
  /** The WebSocket URL, e.g. `wss://chat.example.com/ws`. */
  url: string;
  /** Default: the global `WebSocket` (browsers, Node ≥ 22); pass `ws`'s class on Node 20. */
  WebSocket?: WebSocketConstructor;
  /** Where access tokens come from (the {@link HttpClient}). */
  auth: TokenSource;
  /** Keeps the last processed cursor (default: in memory). */
  cursors?: CursorStore;
  /** Reconnect delays: `initialMs · 2^attempt`, capped at `maxMs`, with jitter (defaults 500 ms, 30 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Application-level `ping` interval while open (default 25 s), and how long to wait for the answer (10 s). */
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  /** How long `sendMessage` waits for `message.sent` (default 15 s), and a connection for `ready` (15 s). */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  now?: () => number;
}

export interface SocketEvents {
  state: { state: SocketState };
  /** Authenticated; `resumed` is true when a `since` cursor was sent. */
  ready: { userId: string; cursor: string; resumed: boolean };
  /** A stored event (`message.new`, `message.status`, `key.changed`, `prekeys.low`), one at a time, in cursor order. The cursor is saved after the handlers finish. */
  event: EventFrame;
  /** The server cannot replay from our cursor: refetch state over REST. The new cursor is saved after the handlers finish. */
  resync: { reason: ResyncFrame['data']['reason']; cursor: string };
  /** The socket closed (it reconnects unless `close()` was called or the session ended). */
  disconnected: { code: number; reason: string; willReconnect: boolean; delayMs: number };
  /** The session ended (refresh refused after a 4401): the socket stopped. */
  signedOut: Record<string, never>;
  /** A non-fatal problem: an unparsable frame, an event handler that threw, a server error frame. */
  error: { error: unknown };
}

interface Pending {
  resolve(m: Message): void;
  reject(e: ApiError): void;
  timer: ReturnType<typeof setTimeout>;
}

export class SafeChatSocket {
  readonly events = new Emitter<SocketEvents>();
  readonly #url: string;
  readonly #WS: WebSocketConstructor;
  readonly #auth: TokenSource;
  readonly #cursors: CursorStore;
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #pingMs: number;
  readonly #pongMs: number;
  readonly #requestMs: number;
  readonly #connectMs: number;
  readonly #now: () => number;

  #state: SocketState = 'idle';
  #wanted = false;
  #ws: WebSocketLike | null = null;
  /** Frames of a socket we gave up on are ignored. */
  #generation = 0;
  #attempt = 0;
  /** Consecutive 4401 closes without a `ready` in between. */
  #unauthorizedRuns = 0;
  #token: string | null = null;
  #sentSince = false;
  /** After a 4400 (our `since` was refused): connect once without it and report a resync. */
  #dropSince = false;
  #queue: Promise<void> = Promise.resolve();
  readonly #pending = new Map<string, Pending>();
  readonly #seen = new Set<string>();
  #timers: { reconnect?: ReturnType<typeof setTimeout>; connect?: ReturnType<typeof setTimeout>; ping?: ReturnType<typeof setInterval>; pong?: ReturnType<typeof setTimeout>; reauth?: ReturnType<typeof setTimeout> } = {};
  #waiters: { resolve(): void; reject(e: unknown): void }[] = [];

  constructor(opts: SocketOptions) {
    this.#url = opts.url;
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('no WebSocket: pass the WebSocket option (on Node 20: the class of the "ws" package)');
    this.#WS = WS;
    this.#auth = opts.auth;
    this.#cursors = opts.cursors ?? new MemoryCursorStore();
    this.#initialMs = opts.backoff?.initialMs ?? 500;
    this.#maxMs = opts.backoff?.maxMs ?? 30_000;
    this.#pingMs = opts.pingIntervalMs ?? 25_000;
    this.#pongMs = opts.pongTimeoutMs ?? 10_000;
    this.#requestMs = opts.requestTimeoutMs ?? 15_000;
    this.#connectMs = opts.connectTimeoutMs ?? 15_000;
    this.#now = opts.now ?? Date.now;
  }

  get state(): SocketState {
    return this.#state;
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /**
   * Starts connecting (and keeps reconnecting until `close()`); resolves at the next `ready`.
   * Rejects only when the socket stops for good (`close()`, or the session ended).
   */
  connect(): Promise<void> {
    if (this.#state === 'open') return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#wanted) {
      this.#wanted = true;
      this.#attempt = 0;
      void this.#open();
    }
    return p;
  }

  /** Closes the socket and stops reconnecting; messages in flight fail with `network_error`. */
  close(): void {
    this.#wanted = false;
    this.#teardown();
    const ws = this.#ws;
    this.#ws = null;
    this.#generation++;
    if (ws && ws.readyState <= OPEN) ws.close(1000, 'client closed');
    this.#failPending('network_error', 'socket closed');
    this.#settleWaiters(new ApiError(0, 'not_connected', 'socket closed'));
    this.#setState('closed');
  }

  /** Resolves once every event received so far has been handled (and its cursor saved). */
  idle(): Promise<void> {
    return this.#queue;
  }

  /**
   * `message.send`: resolves with the stored message, or rejects with an ApiError — the server's
   * (`validation_error`, `rate_limited`, …) or, when the answer cannot come, `not_connected`,
   * `network_error` or `timeout` (status 0: retry over REST with the same `clientMessageId`).
   */
  sendMessage(data: SendMessageBody): Promise<Message> {
    const ws = this.#ws;
    if (this.#state !== 'open' || !ws) return Promise.reject(new ApiError(0, 'not_connected', 'the socket is not connected'));
    const requestId = randomId();
    const text = JSON.stringify({ type: 'message.send', requestId, data });
    if (text.length > MAX_FRAME_CHARS) {
      return Promise.reject(new ApiError(413, 'payload_too_large', 'the message is larger than the server accepts in one frame (128 KiB)'));
    }
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(new ApiError(0, 'timeout', 'no answer to message.send in time'));
      }, this.#requestMs);
      this.#pending.set(requestId, { resolve, reject, timer });
      try {
        ws.send(text);
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(requestId);
        reject(new ApiError(0, 'network_error', err instanceof Error ? err.message : 'send failed'));
      }
    });
  }

  // ---- connection ----

  async #open(): Promise<void> {
    if (!this.#wanted) return;
    // A close() (or another open) while this one awaits makes it stale.
    const gen = ++this.#generation;
    const current = () => gen === this.#generation;
    if (this.#state !== 'reconnecting') this.#setState('connecting');
    // Events of the previous socket are handled (and their cursor saved) before we ask for more.
    await this.#queue;
    let token: string;
    let since: string | undefined;
    try {
      token = await this.#auth.accessToken();
      since = this.#dropSince ? undefined : await this.#cursors.load();
    } catch (err) {
      if (!current()) return;
      if (err instanceof SignedOutError) return this.#stopSignedOut();
      return this.#scheduleReconnect(null, 'token unavailable');
    }
    if (!current() || !this.#wanted) return;
    let ws: WebSocketLike;
    try {
      ws = new this.#WS(this.#url);
    } catch (err) {
      this.events.emit('error', { error: err });
      return this.#scheduleReconnect(null, 'cannot open');
    }
    this.#ws = ws;
    this.#token = token;
    this.#sentSince = since !== undefined;
    ws.addEventListener('open', () => {
      if (!current()) return;
      ws.send(JSON.stringify({ type: 'auth', token, ...(since !== undefined ? { since } : {}) }));
    });
    ws.addEventListener('message', (ev) => {
      if (current()) this.#onFrame(ev.data);
    });
    ws.addEventListener('close', (ev) => {
      if (current()) this.#onClose(ev.code, ev.reason);
    });
    ws.addEventListener('error', () => undefined); // a close event follows
    this.#timers.connect = setTimeout(() => {
      if (current() && this.#state !== 'open') this.#drop('no ready in time');
    }, this.#connectMs);
  }

  #onFrame(data: unknown): void {
    let f: { type?: unknown; cursor?: unknown; requestId?: unknown; data?: unknown; error?: { code: ApiErrorCode; message: string; details?: unknown } };
    try {
      const text = typeof data === 'string' ? data : new TextDecoder().decode(data as ArrayBuffer | Uint8Array);
      f = JSON.parse(text) as typeof f;
    } catch (error) {
      this.events.emit('error', { error });
      return;
    }
    this.#alive();
    switch (f.type) {
      case 'ready':
        return this.#onReady(f.data as { userId: string; cursor: string });
      case 'pong':
        return;
      case 'message.sent':
        return this.#settle(f.requestId, f.data as Message, null);
      case 'error': {
        const e = f.error ?? { code: 'internal_error' as const, message: 'error' };
        const retry = (e.details as { retryAfter?: unknown } | undefined)?.retryAfter;
        const err = new ApiError(statusOfCode(e.code), e.code, e.message, e.details, typeof retry === 'number' ? retry : undefined);
        if (typeof f.requestId === 'string' && this.#pending.has(f.requestId)) return this.#settle(f.requestId, null, err);
        this.events.emit('error', { error: err });
        return;
      }
      case 'resync': {
        const frame = f as unknown as ResyncFrame;
        this.#enqueue(async () => {
          await this.#deliver('resync', { reason: frame.data.reason, cursor: frame.cursor });
          await this.#cursors.save(frame.cursor);
        });
        return;
      }
      default:
        if (typeof f.cursor === 'string' && typeof f.type === 'string') this.#onEvent(f as unknown as EventFrame);
      // Anything else is a frame type this client does not know yet: ignored.
    }
  }

  #onReady(data: { userId: string; cursor: string }): void {
    if (this.#timers.connect) clearTimeout(this.#timers.connect);
    this.#attempt = 0;
    this.#unauthorizedRuns = 0;
    const resumed = this.#sentSince;
    // A first connection starts at the server's head: that is where a later resume starts from.
    if (!resumed) this.#enqueue(() => this.#cursors.save(data.cursor));
    if (this.#dropSince) {
      // The stored cursor was refused (4400): whatever it covered must be refetched over REST.
      this.#dropSince = false;
      this.#enqueue(() => this.#deliver('resync', { reason: 'cursor_unknown', cursor: data.cursor }));
    }
    this.#setState('open');
    this.#startPing();
    void this.#scheduleReauth();
    this.events.emit('ready', { userId: data.userId, cursor: data.cursor, resumed }, (error) => this.events.emit('error', { error }));
    this.#settleWaiters(null);
  }

  #onEvent(frame: EventFrame): void {
    this.#enqueue(async () => {
      const id = frame.type === 'message.new' ? frame.data.id : null;
      if (id === null || !this.#seen.has(id)) {
        await this.#deliver('event', frame);
        if (id !== null) this.#remember(id);
      }
      await this.#cursors.save(frame.cursor);
    });
  }

  async #deliver<K extends 'event' | 'resync'>(type: K, payload: SocketEvents[K]): Promise<void> {
    const errors = await this.events.emitSerial(type, payload);
    for (const error of errors) this.events.emit('error', { error });
  }

  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((error: unknown) => this.events.emit('error', { error }));
  }

  #remember(id: string): void {
    this.#seen.add(id);
    if (this.#seen.size > SEEN_IDS_KEPT) this.#seen.delete(this.#seen.values().next().value!);
  }

  #onClose(code: number, reason: string): void {
    this.#teardown();
    this.#ws = null;
    this.#generation++;
    this.#failPending('network_error', `socket closed (${code})`);
    if (!this.#wanted) {
      this.#setState('closed');
      return;
    }
    if (code === CLOSE_UNAUTHORIZED) {
      void this.#afterUnauthorized(code, reason);
      return;
    }
    if (code === CLOSE_BAD_REQUEST) this.#dropSince = true;
    let delay: number | null = null;
    if (code === CLOSE_SERVICE_RESTART || code === CLOSE_BAD_REQUEST) delay = 0;
    else if (code === CLOSE_TOO_MANY_SOCKETS) delay = Math.max(10_000, this.#backoff());
    else if (CLOSE_CLIENT_FAULT.has(code)) delay = Math.max(5_000, this.#backoff());
    this.#scheduleReconnect(delay, reason, code);
  }

  /** 4401: the token expired or was revoked. Refresh (unless done already), then reconnect; a refused refresh ends it. */
  async #afterUnauthorized(code: number, reason: string): Promise<void> {
    const rejected = this.#token;
    this.#unauthorizedRuns++;
    try {
      if (rejected !== null) await this.#auth.renew(rejected);
    } catch (err) {
      if (err instanceof SignedOutError) return this.#stopSignedOut();
      return this.#scheduleReconnect(null, reason, code);
    }
    // The first time straight away; a server that keeps refusing fresh tokens gets the backoff.
    this.#scheduleReconnect(this.#unauthorizedRuns === 1 ? 0 : null, reason, code);
  }

  /** `delayMs` null: the next backoff step. */
  #scheduleReconnect(delayMs: number | null, reason: string, code = 0): void {
    if (!this.#wanted) return;
    const delay = delayMs ?? this.#backoff();
    this.#setState('reconnecting');
    this.events.emit('disconnected', { code, reason, willReconnect: true, delayMs: delay });
    if (this.#timers.reconnect) clearTimeout(this.#timers.reconnect);
    this.#timers.reconnect = setTimeout(() => void this.#open(), delay);
  }

  /** Exponential backoff with "equal jitter": half the step plus a random part of the other half. */
  #backoff(): number {
    const step = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#attempt, 20));
    this.#attempt++;
    return Math.round(step / 2 + randomFraction() * (step / 2));
  }

  /** Gives up on the current socket (no ready, no pong) and reconnects without waiting for its close. */
  #drop(reason: string): void {
    const ws = this.#ws;
    if (ws) {
      try {
        ws.close(CLOSE_CLIENT_TIMEOUT, reason);
      } catch {
        // already closing
      }
    }
    this.#onClose(CLOSE_CLIENT_TIMEOUT, reason);
  }

  #stopSignedOut(): void {
    this.#wanted = false;
    this.#teardown();
    const ws = this.#ws;
    this.#ws = null;
    this.#generation++;
    if (ws && ws.readyState <= OPEN) ws.close(1000, 'signed out');
    this.#failPending('network_error', 'signed out');
    this.#settleWaiters(new SignedOutError());
    this.#setState('closed');
    this.events.emit('signedOut', {});
    this.events.emit('disconnected', { code: CLOSE_UNAUTHORIZED, reason: 'signed out', willReconnect: false, delayMs: 0 });
  }

  // ---- liveness and re-authentication ----

  #startPing(): void {
    if (this.#timers.ping) clearInterval(this.#timers.ping);
    this.#timers.ping = setInterval(() => {
      const ws = this.#ws;
      if (!ws || this.#state !== 'open') return;
      try {
        ws.send('{"type":"ping"}');
      } catch {
        return;
      }
      this.#timers.pong ??= setTimeout(() => this.#drop('no pong in time'), this.#pongMs);
    }, this.#pingMs);
  }

  /** Any frame shows the connection is alive. */
  #alive(): void {
    if (this.#timers.pong) clearTimeout(this.#timers.pong);
    delete this.#timers.pong;
  }

  /**
   * Sends a fresh `auth` frame before the access token expires: at two thirds of its remaining
   * life (at most 60 s, at least 1 s before the end), refreshing the token when it is that close.
   */
  async #scheduleReauth(): Promise<void> {
    if (this.#timers.reauth) clearTimeout(this.#timers.reauth);
    const exp = await this.#auth.accessTokenExpiresAt();
    if (exp === undefined || this.#state !== 'open') return;
    const left = exp - this.#now();
    const margin = Math.min(60_000, Math.max(1_000, left / 3));
    const gen = this.#generation;
    this.#timers.reauth = setTimeout(() => void this.#reauth(gen, margin), Math.max(0, left - margin));
  }

  async #reauth(gen: number, margin: number): Promise<void> {
    if (gen !== this.#generation || this.#state !== 'open') return;
    let token: string;
    try {
      token = await this.#auth.accessToken(margin + 1_000);
    } catch (err) {
      if (err instanceof SignedOutError) return this.#stopSignedOut();
      // The refresh failed for now (network, rate limit): try again shortly; past the server's grace it closes with 4401.
      this.#timers.reauth = setTimeout(() => void this.#reauth(gen, margin), 2_000);
      return;
    }
    const ws = this.#ws;
    if (gen !== this.#generation || !ws || this.#state !== 'open') return;
    try {
      ws.send(JSON.stringify({ type: 'auth', token }));
      this.#token = token;
    } catch {
      return;
    }
    void this.#scheduleReauth();
  }

  // ---- helpers ----

  #settle(requestId: unknown, message: Message | null, error: ApiError | null): void {
    if (typeof requestId !== 'string') return;
    const p = this.#pending.get(requestId);
    if (!p) return;
    this.#pending.delete(requestId);
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(message!);
  }

  #failPending(code: ApiErrorCode, message: string): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new ApiError(0, code, message));
    }
  }

  #settleWaiters(error: unknown): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const x of w) {
      if (error === null) x.resolve();
      else x.reject(error);
    }
  }

  #teardown(): void {
    const t = this.#timers;
    if (t.reconnect) clearTimeout(t.reconnect);
    if (t.connect) clearTimeout(t.connect);
    if (t.ping) clearInterval(t.ping);
    if (t.pong) clearTimeout(t.pong);
    if (t.reauth) clearTimeout(t.reauth);
    this.#timers = {};
  }

  #setState(state: SocketState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.events.emit('state', { state });
  }
}
