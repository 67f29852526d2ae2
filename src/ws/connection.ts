import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { CLOSE, type ClientFrame, type SendMessageBody } from '@safechat/protocol';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { Mailbox, StoredEvent } from '../domain/mailbox.js';
import type { MessageService } from '../domain/messages.js';
import { messageJson } from '../domain/wire.js';
import type { AccessClaims, TokenService } from '../domain/tokens.js';
import { AppError } from '../errors.js';
import { LIMITS } from '../limits/catalog.js';
import { takeFromBucket, type Bucket } from '../limits/limiter.js';
import { isConnectionError } from '../storage/dialect.js';
import type { Telemetry } from '../telemetry.js';
import type { Clock } from '../util/clock.js';
import type { Pacer } from '../util/pacer.js';
import { errorFrame, frame, parseClientFrame, salvageRequestId } from './frames.js';

/** Limits of one socket; docs/websocket.md (§9 Limits) documents each for client developers. */
export const SOCKET_LIMITS = {
  authTimeoutMs: 10_000,
  /** A token may be used this long past its `exp` before the socket must re-authenticate. */
  expiryGraceMs: 30_000,
  /**
   * Above this many buffered outbound bytes nothing more is written (live events and replay
   * alike); what follows is read back from the log once the buffer is below the low-water mark.
   */
  highWaterBytes: 1024 * 1024,
  lowWaterBytes: 256 * 1024,
  /** With more to send and the buffer over the high-water mark, a consumer that does not drain below the low-water mark within this long is closed with 1013. */
  slowConsumerMs: 5_000,
  replayPageSize: 200,
  maxConcurrentSends: 64,
  maxBadFrames: 10,
  maxThrottledFrames: 100,
  /** Frames a client may send behind its `auth` frame (or upgrade) before `ready`; they are answered after it. */
  maxFramesBeforeReady: 16,
} as const;

/**
 * Inbound frames handled per turn of the event loop, across all sockets. In a saturated run every
 * client's next frames arrive together and one turn read ~700 of them (~50-70 ms); past this
 * budget a socket stops reading and its frames wait, in order, for the next turns (decision 0016).
 */
export const INBOUND_FRAMES_PER_TURN = 128;

/** True when every validation issue in `details` is at the top-level field `field`. */
function onlyAt(details: unknown, field: string): boolean {
  return Array.isArray(details) && details.length > 0 && details.every((d: { path?: unknown[] }) => d.path?.[0] === field);
}

export interface ConnectionDeps {
  tokens: TokenService;
  messages: MessageService;
  mailbox: Mailbox;
  telemetry: Telemetry;
  clock: Clock;
  log: Logger;
  rateLimits: boolean;
  /** How long past its token's `exp` a socket stays open without a fresh `auth` frame (SOCKET_LIMITS.expiryGraceMs). */
  expiryGraceMs: number;
  /** Every this many heartbeats a live socket checks that its login was not revoked meanwhile (decision 0021). */
  loginCheckBeats: number;
  /** Admits INBOUND_FRAMES_PER_TURN frames a turn, across every socket of the process. */
  frames: Pacer;
  /** Every socket is registered while open (shutdown closes them all). */
  opened(conn: Connection): void;
  ended(conn: Connection): void;
  /** Registers a live connection under its user; false when the user already has too many. */
  attach(conn: Connection): boolean;
}

type State = 'authenticating' | 'live' | 'closed';

/**
 * One client socket: authenticate (header or first frame), then deliver the user's event log
 * from the cursor onwards — atproto's outbox, simplified: live events go straight out when they
 * are next in line, anything else (a gap, a resume, a slow reader) is read back from the log.
 */
export class Connection {
  readonly id = randomUUID();
  userId: string | null = null;
  familyId: string | null = null;
  alive = true;
  private state: State = 'authenticating';
  private cursor = 0;
  private pumping = false;
  private dirty = false;
  private timers: NodeJS.Timeout[] = [];
  private expiryTimer: NodeJS.Timeout | null = null;
  private bucket: Bucket | undefined;
  private badFrames = 0;
  private throttled = 0;
  private sends = 0;
  private beats = 0;
  private corked = false;
  private readonly lanes = new Map<string, Promise<void>>();
  /** The URL's `?since=` of a socket that authenticates by frame: used when the auth frame has none; a different one is refused. */
  private urlSince: string | undefined;
  /** Frames that arrived after authentication began and before `ready`, in order; null once ready. */
  private held: { data: Buffer; isBinary: boolean }[] | null = null;
  /** Frames read past the turn's budget, in order, while the socket is paused; null when none wait. */
  private backlog: { data: Buffer; isBinary: boolean }[] | null = null;

  constructor(
    private readonly socket: WebSocket,
    private readonly deps: ConnectionDeps,
    readonly ip: string,
  ) {
    deps.opened(this);
    // @NOTE listeners are attached synchronously, before any await, or early frames are lost.
    socket.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    socket.on('pong', () => (this.alive = true));
    socket.on('close', () => this.cleanup());
    socket.on('error', (err) => deps.log.debug({ error: err.message, connId: this.id }, 'socket error'));
  }

  /** Authenticated by the upgrade request's header. */
  begin(claims: AccessClaims, since: number | undefined): void {
    if (this.state === 'closed') return;
    void this.start(claims, since);
  }

  /** Waits for the first-frame `auth`; `since` from the URL applies unless the auth frame names its own. */
  awaitAuth(since?: string): void {
    if (this.state === 'closed') return;
    this.urlSince = since;
    this.timers.push(setTimeout(() => this.close(CLOSE.unauthorized, 'authentication timeout'), SOCKET_LIMITS.authTimeoutMs));
  }

  get isLive(): boolean {
    return this.state === 'live';
  }

  /** Bytes written to this socket that the peer has not yet taken (the ws queue plus Node's). */
  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  // ---- inbound ----

  /** Every frame passes the process's per-turn budget, in arrival order per socket. */
  private onFrame(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (this.backlog) {
      // The rest of a chunk read before the pause (the pause stops further reads).
      this.backlog.push({ data, isBinary });
      return;
    }
    const wait = this.deps.frames.admit();
    if (!wait) return this.handleFrame(data, isBinary);
    this.backlog = [{ data, isBinary }];
    this.socket.pause();
    void wait.then(() => this.releaseBacklog());
  }

  /** Handles one waiting frame (this call was admitted) and queues for the next, round robin with other sockets. */
  private releaseBacklog(): void {
    const backlog = this.backlog;
    if (!backlog) return;
    const f = backlog.shift()!;
    if (backlog.length === 0) {
      this.backlog = null;
      if (this.state !== 'closed') this.socket.resume();
    } else {
      const wait = this.deps.frames.admit();
      if (wait) void wait.then(() => this.releaseBacklog());
      else queueMicrotask(() => this.releaseBacklog());
    }
    this.handleFrame(f.data, f.isBinary);
  }

  private handleFrame(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (this.held) {
      // @NOTE A client may pipeline frames behind `auth` (or send them as soon as the upgrade
      // completes); they wait for `ready` instead of being mistaken for a non-auth first frame.
      if (this.held.length >= SOCKET_LIMITS.maxFramesBeforeReady) return this.close(CLOSE.policyViolation, 'too many frames before ready');
      this.held.push({ data, isBinary });
      return;
    }
    if (isBinary) return this.close(CLOSE.unsupportedData, 'text frames only');
    if (this.deps.rateLimits) {
      const { burst, perSec } = LIMITS.wsFramesPerSocket;
      const [next, wait] = takeFromBucket(this.bucket, 1, burst, perSec, this.deps.clock.now());
      this.bucket = next;
      if (wait > 0) {
        this.deps.telemetry.rateLimited.inc({ limit: 'wsFramesPerSocket' });
        if (++this.throttled > SOCKET_LIMITS.maxThrottledFrames) return this.close(CLOSE.policyViolation, 'too many frames');
        // The dropped frame may be a message.send: echo its requestId so the client can retry it.
        const requestId = salvageRequestId(data.subarray(0, 4096).toString('utf8'));
        return this.send(errorFrame('rate_limited', 'too many frames, slow down', requestId, { retryAfter: wait }));
      }
    }
    const text = data.toString('utf8');
    let f: ClientFrame;
    try {
      f = parseClientFrame(text);
    } catch (err) {
      const e = err as AppError;
      if (this.state === 'authenticating') {
        // An auth frame whose only fault is its `since` is a bad cursor, not a bad credential (as ?since= answers 400).
        if (onlyAt(e.details, 'since')) return this.close(CLOSE.badRequest, 'since is not a cursor from this server');
        return this.close(CLOSE.unauthorized, 'the first frame must be {"type":"auth"}');
      }
      this.send(errorFrame(e.code, e.message, salvageRequestId(text), e.details));
      if (++this.badFrames > SOCKET_LIMITS.maxBadFrames) this.close(CLOSE.policyViolation, 'too many invalid frames');
      return;
    }
    this.deps.telemetry.wsFramesIn.inc({ type: f.type });
    if (this.state === 'authenticating' && f.type !== 'auth') return this.close(CLOSE.unauthorized, 'the first frame must be {"type":"auth"}');
    switch (f.type) {
      case 'auth':
        if (this.state === 'authenticating') this.held = [];
        void this.onAuthFrame(f.token, f.since);
        return;
      case 'ping':
        return this.send(frame({ type: 'pong' }));
      case 'message.send':
        this.onSend(f.requestId, f.data);
        return;
    }
  }

  private async onAuthFrame(token: string, since: string | undefined): Promise<void> {
    let claims: AccessClaims;
    try {
      claims = await this.deps.tokens.verifyAccess(token);
    } catch (err) {
      if (this.state === 'authenticating' || err instanceof AppError) return this.close(CLOSE.unauthorized, 'invalid or expired token');
      return this.fail(err);
    }
    if (this.state === 'authenticating') {
      for (const t of this.timers) clearTimeout(t);
      this.timers = [];
      if (since !== undefined && this.urlSince !== undefined && since !== this.urlSince) {
        return this.close(CLOSE.badRequest, 'since in the URL and in the auth frame differ');
      }
      const from = since ?? this.urlSince;
      return this.start(claims, from === undefined ? undefined : Number(from));
    }
    // A fresh token on a live socket extends it (same user only).
    if (claims.userId !== this.userId) return this.close(CLOSE.unauthorized, 'token is for another user');
    this.familyId = claims.familyId;
    this.armExpiry(claims.exp);
    // A revocation of the new login that committed while its token was being checked closed
    // nothing here (the socket was still on its old login); from now on one would.
    await this.closeIfRevoked(claims.familyId);
  }

  /** Closes the socket if its login `familyId` has ended (and it is still on that login). */
  private async closeIfRevoked(familyId: string): Promise<void> {
    // A failed check (database away) keeps the socket; the next one decides.
    const live = await this.deps.tokens.isLive(familyId).catch(() => true);
    if (!live && this.familyId === familyId) this.close(CLOSE.unauthorized, 'session revoked');
  }

  /**
   * Sends on one socket to one conversation are stored in the order they arrive (one lane per
   * chatId / receiverId): on PostgreSQL concurrent transactions would otherwise commit, and take
   * their `seq`, in any order. Different conversations still proceed in parallel.
   */
  private onSend(requestId: string, body: SendMessageBody): void {
    if (this.sends >= SOCKET_LIMITS.maxConcurrentSends) {
      return this.send(errorFrame('rate_limited', 'too many sends in flight', requestId, { retryAfter: 1 }));
    }
    this.sends++;
    const lane = body.chatId ?? `to:${body.receiverId}`;
    const run = (this.lanes.get(lane) ?? Promise.resolve()).then(() => this.sendOne(requestId, body));
    this.lanes.set(lane, run);
    void run.finally(() => {
      if (this.lanes.get(lane) === run) this.lanes.delete(lane);
      this.sends--;
    });
  }

  private async sendOne(requestId: string, body: SendMessageBody): Promise<void> {
    try {
      const { message } = await this.deps.messages.send(this.userId!, body);
      this.send(`{"type":"message.sent","requestId":${JSON.stringify(requestId)},"data":${messageJson(message)}}`);
    } catch (err) {
      const e = err instanceof AppError ? err : isConnectionError(err) ? new AppError('unavailable', 'service temporarily unavailable, retry later') : null;
      if (!e) this.deps.log.error({ err, connId: this.id }, 'message.send failed');
      this.send(e ? errorFrame(e.code, e.message, requestId, e.details) : errorFrame('internal_error', 'internal error', requestId));
    }
  }


  // ---- outbound ----

  private async start(claims: AccessClaims, since: number | undefined): Promise<void> {
    this.held ??= [];
    this.userId = claims.userId;
    this.familyId = claims.familyId;
    if (!this.deps.attach(this)) return this.close(CLOSE.rateLimited, 'too many connections for this user');
    this.state = 'live';
    this.armExpiry(claims.exp);
    // Events that arrive before the cursor is known only mark the log dirty.
    this.pumping = true;
    try {
      // @NOTE The login was checked before the upgrade (or on the auth frame); a logout that
      // committed since then found no socket to close. Attached now, a later one will close it,
      // and this read sees an earlier one.
      const [head, live] = await Promise.all([this.deps.mailbox.head(claims.userId), this.deps.tokens.isLive(claims.familyId)]);
      if (this.state !== 'live') return;
      if (!live) return this.close(CLOSE.unauthorized, 'session revoked');
      if (!head) return this.close(CLOSE.unauthorized, 'account not found');
      if (since === undefined) {
        this.cursor = head.lastSeq;
        this.send(frame({ type: 'ready', data: { userId: claims.userId, cursor: String(this.cursor) } }));
      } else if (since < head.prunedThrough || since > head.lastSeq) {
        // Older than retention, or not a cursor of this server: the client must refetch over REST.
        this.cursor = head.lastSeq;
        this.send(frame({ type: 'ready', data: { userId: claims.userId, cursor: String(this.cursor) } }));
        const reason = since > head.lastSeq ? 'cursor_unknown' : 'cursor_expired';
        this.send(frame({ type: 'resync', cursor: String(this.cursor), data: { reason } }));
      } else {
        this.cursor = since;
        this.dirty = since < head.lastSeq;
        this.send(frame({ type: 'ready', data: { userId: claims.userId, cursor: String(this.cursor) } }));
      }
      this.deps.telemetry.wsOpened.inc();
    } catch (err) {
      return this.fail(err);
    } finally {
      this.pumping = false;
    }
    this.releaseHeld();
    if (this.dirty) void this.pump();
  }

  /** Answers, in order, the frames that arrived before `ready` (they passed the budget already). */
  private releaseHeld(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const f of held) this.handleFrame(f.data, f.isBinary);
  }

  /** Live events from this instance, in commit order. */
  deliver(events: StoredEvent[]): void {
    if (this.state !== 'live') return;
    if (this.pumping) {
      this.dirty = true;
      return;
    }
    for (const e of events) {
      if (e.seq <= this.cursor) continue;
      if (e.seq !== this.cursor + 1 || this.socket.bufferedAmount > SOCKET_LIMITS.highWaterBytes) {
        void this.pump();
        return;
      }
      this.emit(e);
    }
  }

  /** Another instance committed events for this user up to `seq`: read them from the log. */
  wake(seq: number): void {
    if (this.state === 'live' && seq > this.cursor) void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) {
      this.dirty = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.dirty = false;
        let limit: number = SOCKET_LIMITS.replayPageSize;
        for (;;) {
          if (!(await this.drained())) return;
          const batch = await this.deps.mailbox.readAfter(this.userId!, this.cursor, limit);
          if (this.state !== 'live') return;
          let sent = 0;
          let full = false;
          for (const e of batch) {
            if (e.seq <= this.cursor) continue;
            // @NOTE The buffer is checked before every frame, not once per page: a page of large
            // messages is megabytes. The rest of the page is dropped and read again once the
            // reader has caught up, so a stalled reader holds at most the high-water mark plus
            // one frame here, and drained() closes it.
            if (this.socket.bufferedAmount > SOCKET_LIMITS.highWaterBytes) {
              full = true;
              break;
            }
            this.emit(e);
            sent++;
          }
          if (full) {
            // Read about as much as the reader took last time, not a whole page of large frames.
            limit = Math.min(SOCKET_LIMITS.replayPageSize, Math.max(4, sent + 1));
            continue;
          }
          if (batch.length < limit) break;
          limit = SOCKET_LIMITS.replayPageSize;
        }
      } while (this.dirty);
    } catch (err) {
      this.fail(err);
    } finally {
      this.pumping = false;
    }
  }

  /** Waits until the outbound buffer is below the low-water mark; closes a reader that stays stuck. */
  private async drained(): Promise<boolean> {
    if (this.socket.bufferedAmount <= SOCKET_LIMITS.highWaterBytes) return this.state === 'live';
    const deadline = this.deps.clock.now() + SOCKET_LIMITS.slowConsumerMs;
    while (this.state === 'live' && this.socket.bufferedAmount > SOCKET_LIMITS.lowWaterBytes) {
      if (this.deps.clock.now() > deadline) {
        this.close(CLOSE.tryAgainLater, 'consumer too slow; reconnect with your last cursor');
        return false;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    return this.state === 'live';
  }

  private emit(e: StoredEvent): void {
    this.cursor = e.seq;
    this.send(e.frame);
    this.deps.telemetry.wsEventsOut.inc();
  }

  private send(text: string): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.cork();
    this.socket.send(text);
  }

  /**
   * Frames written in one turn of the event loop (a commit group's events, a replay page) leave
   * in one write: the TCP socket is corked until the pending callbacks have run. `ws` corks and
   * uncorks around each frame; Node counts corks, so ours holds them all.
   */
  private cork(): void {
    if (this.corked) return;
    const tcp = (this.socket as unknown as { _socket?: Socket })._socket;
    if (!tcp) return;
    this.corked = true;
    tcp.cork();
    process.nextTick(() => {
      this.corked = false;
      tcp.uncork();
    });
  }

  // ---- lifecycle ----

  private armExpiry(expSec: number): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const ms = Math.max(0, expSec * 1000 + this.deps.expiryGraceMs - this.deps.clock.now());
    this.expiryTimer = setTimeout(() => this.close(CLOSE.unauthorized, 'access token expired; send a fresh auth frame in time'), Math.min(ms, 2 ** 31 - 1));
  }

  private fail(err: unknown): void {
    if (isConnectionError(err)) {
      this.deps.log.warn({ connId: this.id, error: (err as Error).message }, 'database unavailable; closing socket');
      return this.close(CLOSE.tryAgainLater, 'service temporarily unavailable');
    }
    this.deps.log.error({ err, connId: this.id }, 'socket failed');
    this.close(CLOSE.internalError, 'internal error');
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.cleanup();
    this.deps.telemetry.wsClosed.inc({ code: String(code) });
    this.socket.close(code, reason);
    // A peer that does not answer the close handshake is cut off.
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  private cleanup(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.held = null;
    this.backlog = null;
    for (const t of this.timers) clearTimeout(t);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.deps.ended(this);
  }

  /**
   * Protocol-level heartbeat: a socket that missed the previous ping is dropped. Every few beats
   * the login is checked too: a revocation's signal from another instance can be lost.
   */
  heartbeat(): void {
    if (!this.alive) {
      this.cleanup();
      this.socket.terminate();
      return;
    }
    this.alive = false;
    this.socket.ping();
    if (++this.beats % this.deps.loginCheckBeats === 0 && this.familyId !== null) void this.closeIfRevoked(this.familyId);
  }
}
