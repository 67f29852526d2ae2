import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { SIGNALS_LOST_CHANNEL, type PubSub } from './pubsub.js';

/**
 * Redis pub/sub on two connections (a subscribed connection cannot publish). ioredis reconnects
 * and re-subscribes by itself; while Redis is away, publishes are dropped (clients catch up from
 * the database by cursor) instead of queueing without bound. Whoever missed signals checks again:
 * this instance when its subscription is back, every other one when its publisher is.
 */
export class RedisPubSub implements PubSub {
  private readonly id = randomUUID();
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  private readonly lostHandlers = new Set<() => void>();
  /** A publish was dropped and the other instances have not been told yet. */
  private dropped = false;

  private constructor(
    /** The command connection; also used by other Redis users (the shared rate limiter). */
    readonly pub: Redis,
    private readonly sub: Redis,
    private readonly log: Logger,
  ) {
    sub.on('message', (channel: string, message: string) => {
      if (channel === SIGNALS_LOST_CHANNEL) {
        if (message !== this.id) this.signalsLost();
        return;
      }
      for (const h of this.handlers.get(channel) ?? []) h(message);
    });
    sub.subscribe(SIGNALS_LOST_CHANNEL).catch((err: Error) => this.log.warn({ error: err.message }, 'subscribe failed'));
    // 'ready' comes after ioredis has subscribed again; the first one is the start, not a return.
    let readyBefore = sub.status === 'ready';
    sub.on('ready', () => {
      // The PING answers after the SUBSCRIBEs sent on reconnect: from then on nothing is missed.
      if (readyBefore) void sub.ping().catch(() => undefined).then(() => this.signalsLost());
      readyBefore = true;
    });
    pub.on('ready', () => {
      if (this.dropped) this.announceDropped();
    });
  }

  onSignalsLost(handler: () => void): void {
    this.lostHandlers.add(handler);
  }

  private signalsLost(): void {
    for (const h of this.lostHandlers) h();
  }

  /** Tells the other instances that signals they needed (a wake-up, a revocation) were dropped. */
  private announceDropped(): void {
    this.dropped = false;
    this.pub.publish(SIGNALS_LOST_CHANNEL, this.id).catch(() => (this.dropped = true));
  }

  static async connect(url: string, log: Logger): Promise<RedisPubSub> {
    const options = {
      lazyConnect: true,
      // Fail commands at once while disconnected: a publish is only a doorbell.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
    };
    const pub = new Redis(url, { ...options, connectionName: 'safechat-pub' });
    const sub = new Redis(url, { ...options, enableOfflineQueue: true, autoResubscribe: true, connectionName: 'safechat-sub' });
    for (const [name, client] of [['publisher', pub], ['subscriber', sub]] as const) {
      client.on('error', (err: Error) => log.warn({ error: err.message, client: name }, 'redis error'));
      client.on('ready', () => log.info({ client: name }, 'redis ready'));
    }
    // A Redis that is down at start is not fatal: ioredis keeps retrying, sends still work, and
    // live delivery across instances returns when Redis does.
    await Promise.all([pub.connect(), sub.connect()]).catch((err: Error) => log.warn({ error: err.message }, 'redis not reachable at start; retrying'));
    return new RedisPubSub(pub, sub, log);
  }

  publish(channel: string, message: string): void {
    if (this.pub.status !== 'ready') {
      this.dropped = true;
      return;
    }
    this.pub.publish(channel, message).catch((err: Error) => {
      this.log.debug({ error: err.message }, 'publish dropped');
      // Usually the connection just went; 'ready' announces it. If it is still up, now.
      if (this.pub.status === 'ready') this.announceDropped();
      else this.dropped = true;
    });
  }

  subscribe(channel: string, handler: (message: string) => void): () => void {
    let set = this.handlers.get(channel);
    if (!set) {
      this.handlers.set(channel, (set = new Set()));
      this.sub.subscribe(channel).catch((err: Error) => this.log.warn({ error: err.message }, 'subscribe failed'));
    }
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0 && this.handlers.get(channel) === set) {
        this.handlers.delete(channel);
        this.sub.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  async ping(): Promise<void> {
    await this.pub.ping();
  }

  async close(): Promise<void> {
    this.handlers.clear();
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
