import { CLOSE } from '@safechat/protocol';
import type { Logger } from 'pino';
import type { EventSink, StoredEvent } from '../domain/mailbox.js';
import type { SessionSink } from '../domain/notifier.js';
import { userChannel, type PubSub } from '../pubsub/pubsub.js';
import type { Telemetry } from '../telemetry.js';
import { addressKey } from '../limits/address.js';
import type { Connection } from './connection.js';

export const TOO_MANY_FROM_IP = 'too many connections from this address';

interface Signal {
  /** Origin instance, so an instance ignores its own signals. */
  o: string;
  t: 'wake' | 'revoke';
  /** wake: the newest event seq. */
  s?: number;
  /** revoke: the token family, or absent for every session of the user. */
  f?: string;
}

/**
 * This instance's live sockets by user. Committed events are handed to local sockets directly
 * and announced to other instances as a wake-up on the user's channel (Redis carries "look",
 * never the event).
 */
export class Hub implements EventSink, SessionSink {
  private readonly users = new Map<string, Set<Connection>>();
  /** Every open socket, authenticated or not, so shutdown can close them all. */
  private readonly open = new Set<Connection>();
  /** Open sockets per client address (the `open` ones). */
  private readonly perIp = new Map<string, number>();
  private readonly unsubscribe = new Map<string, () => void>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private closing: { code: number; reason: string } | null = null;

  constructor(
    private readonly deps: {
      pubsub: PubSub | null;
      instanceId: string;
      telemetry: Telemetry;
      log: Logger;
      maxSocketsPerUser: number;
      maxSocketsPerIp: number;
    },
  ) {}

  opened(conn: Connection): void {
    // An upgrade whose checks were still running when shutdown began: it would keep the
    // server from closing, so it is turned away the same way.
    if (this.closing) return conn.close(this.closing.code, this.closing.reason);
    // The gateway answers 429 before the upgrade; upgrades checked concurrently can still pass
    // it together, and this count is the exact one.
    const address = addressKey(conn.ip);
    const n = this.perIp.get(address) ?? 0;
    if (n >= this.deps.maxSocketsPerIp) return conn.close(CLOSE.rateLimited, TOO_MANY_FROM_IP);
    this.perIp.set(address, n + 1);
    this.open.add(conn);
  }

  ended(conn: Connection): void {
    if (this.open.delete(conn)) {
      const address = addressKey(conn.ip);
      const n = this.perIp.get(address)! - 1;
      if (n === 0) this.perIp.delete(address);
      else this.perIp.set(address, n);
    }
    this.detach(conn);
  }

  /** Open sockets from this client address on this instance. */
  socketsFrom(ip: string): number {
    return this.perIp.get(addressKey(ip)) ?? 0;
  }

  attach(conn: Connection): boolean {
    const userId = conn.userId!;
    let set = this.users.get(userId);
    if (set && set.size >= this.deps.maxSocketsPerUser) return false;
    if (!set) {
      this.users.set(userId, (set = new Set()));
      const { pubsub } = this.deps;
      if (pubsub) this.unsubscribe.set(userId, pubsub.subscribe(userChannel(userId), (m) => this.onSignal(userId, m)));
    }
    set.add(conn);
    this.deps.telemetry.wsConnections.inc();
    return true;
  }

  detach(conn: Connection): void {
    const userId = conn.userId;
    if (userId === null) return;
    const set = this.users.get(userId);
    if (!set?.delete(conn)) return;
    this.deps.telemetry.wsConnections.dec();
    if (set.size === 0) {
      this.users.delete(userId);
      this.unsubscribe.get(userId)?.();
      this.unsubscribe.delete(userId);
    }
  }

  connectionCount(userId?: string): number {
    if (userId !== undefined) return this.users.get(userId)?.size ?? 0;
    let n = 0;
    for (const set of this.users.values()) n += set.size;
    return n;
  }

  /** Outbound bytes this instance holds for the user's sockets, not yet taken by the kernel. */
  bufferedBytes(userId: string): number {
    let n = 0;
    for (const conn of this.users.get(userId) ?? []) n += conn.bufferedAmount;
    return n;
  }

  eventsCommitted(userId: string, events: StoredEvent[]): void {
    const set = this.users.get(userId);
    if (set) for (const conn of set) conn.deliver(events);
    this.signal(userId, { o: this.deps.instanceId, t: 'wake', s: events[events.length - 1]!.seq });
  }

  sessionsRevoked(userId: string, familyId: string | null): void {
    this.closeSessions(userId, familyId);
    this.signal(userId, { o: this.deps.instanceId, t: 'revoke', ...(familyId !== null ? { f: familyId } : {}) });
  }

  private closeSessions(userId: string, familyId: string | null): void {
    const set = this.users.get(userId);
    if (!set) return;
    for (const conn of [...set]) {
      if (familyId === null || conn.familyId === familyId) conn.close(CLOSE.unauthorized, 'session revoked');
    }
  }

  private signal(userId: string, s: Signal): void {
    this.deps.pubsub?.publish(userChannel(userId), JSON.stringify(s));
  }

  private onSignal(userId: string, message: string): void {
    let s: Signal;
    try {
      s = JSON.parse(message) as Signal;
    } catch {
      return;
    }
    if (s.o === this.deps.instanceId) return;
    if (s.t === 'wake' && typeof s.s === 'number') {
      for (const conn of this.users.get(userId) ?? []) conn.wake(s.s);
    } else if (s.t === 'revoke') {
      this.closeSessions(userId, s.f ?? null);
    }
  }

  /**
   * Redis is back after an outage: the wake-ups and revocations other instances published
   * meanwhile were lost. Every live socket reads its log from its cursor, and sockets whose login
   * ended meanwhile (logout, password change, account deletion elsewhere) are closed.
   */
  async resync(liveFamilies: (familyIds: string[]) => Promise<Set<string>>): Promise<void> {
    const conns = [...this.users.values()].flatMap((set) => [...set]);
    this.deps.log.info({ sockets: conns.length }, 'pub/sub back: checking live sockets');
    const families = [...new Set(conns.map((c) => c.familyId).filter((f): f is string => f !== null))];
    const live = await liveFamilies(families);
    for (let i = 0; i < conns.length; i++) {
      const conn = conns[i]!;
      if (conn.familyId !== null && !live.has(conn.familyId)) conn.close(CLOSE.unauthorized, 'session revoked');
      else conn.wake(Number.MAX_SAFE_INTEGER);
      // Each wake-up is a read of the log: a few hundred a turn, not ten thousand at once.
      if (i % 200 === 199) await new Promise((r) => setImmediate(r));
    }
  }

  /** Pings every socket each interval and drops those that did not answer the previous ping. */
  startHeartbeat(intervalMs: number): void {
    this.heartbeatTimer = setInterval(() => {
      for (const set of this.users.values()) for (const conn of [...set]) conn.heartbeat();
    }, intervalMs);
    this.heartbeatTimer.unref();
  }

  /** Closes every open socket; clients reconnect and resume (also used to simulate a lost network). */
  closeAll(code: number, reason: string): void {
    for (const conn of [...this.open]) conn.close(code, reason);
  }

  /**
   * Shutdown: closes every socket and turns away any that opens from now on (1012 tells clients
   * to reconnect, elsewhere or later).
   */
  shutdown(code: number, reason: string): void {
    this.closing ??= { code, reason };
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.closeAll(this.closing.code, this.closing.reason);
  }
}
