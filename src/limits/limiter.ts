import { RateLimitedError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { addressKey } from './address.js';
import { LIMITS, type LimitName, type Limits } from './catalog.js';

export interface Bucket {
  tokens: number;
  at: number;
}

/** Where buckets live: this process's memory, or Redis so every instance shares them. */
export interface LimiterStore {
  /**
   * Refills the bucket to `now`, then takes `cost` tokens if there are that many (cost 0 only
   * looks). Returns the seconds to wait when there are not (0 when allowed).
   */
  take(key: string, cost: number, burst: number, perSec: number, now: number): Promise<number>;
  close(): Promise<void>;
}

/** One bucket's share of a `consumeAll`. */
export interface Take {
  name: LimitName;
  key: string;
  cost?: number;
  /** The 429's message when the default says too little. */
  message?: string;
}

export class RateLimiter {
  constructor(
    private readonly store: LimiterStore,
    private readonly clock: Clock,
    readonly enabled: boolean,
    private readonly onLimited: (name: LimitName) => void = () => undefined,
    private readonly limits: Limits = LIMITS,
  ) {}

  /** Takes `cost` tokens or throws 429 with Retry-After (and `message`, when the default says too little). */
  async consume(name: LimitName, key: string, cost = 1, message?: string): Promise<void> {
    const wait = await this.take(name, key, cost);
    if (wait > 0) throw this.limited(name, wait, message);
  }

  /**
   * Takes from several buckets, all or nothing: if one is over its limit, what the earlier ones
   * gave is given back before the 429 is thrown.
   */
  async consumeAll(takes: readonly Take[]): Promise<void> {
    // Every send passes here: with limits off, no promise per take (round 16 of docs/performance.md).
    if (!this.enabled) return;
    for (let i = 0; i < takes.length; i++) {
      const t = takes[i]!;
      let wait: number;
      try {
        wait = await this.take(t.name, t.key, t.cost);
      } catch (err) {
        await this.refundFirst(takes, i);
        throw err;
      }
      if (wait > 0) {
        await this.refundFirst(takes, i);
        throw this.limited(t.name, wait, t.message);
      }
    }
  }

  /** Gives back what `consumeAll` took. */
  async refundAll(takes: readonly Take[]): Promise<void> {
    if (this.enabled) await this.refundFirst(takes, takes.length);
  }

  /** Counts the refusal and makes its 429. */
  private limited(name: LimitName, wait: number, message: string | undefined): RateLimitedError {
    this.onLimited(name);
    return new RateLimitedError(wait, message, name);
  }

  private async refundFirst(takes: readonly Take[], count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.refund(takes[i]!.name, takes[i]!.key, takes[i]!.cost);
  }

  /** Throws 429 if the bucket is empty, without taking anything. */
  async check(name: LimitName, key: string): Promise<void> {
    await this.consume(name, key, 0);
  }

  /** Gives back `count` tokens taken by `consume` (up to the burst), e.g. a reservation that was not needed. */
  async refund(name: LimitName, key: string, count = 1): Promise<void> {
    await this.take(name, key, -count);
  }

  /** Takes tokens, returning seconds to wait (0 = allowed), for callers that do not throw. */
  async take(name: LimitName, key: string, cost = 1): Promise<number> {
    if (!this.enabled) return 0;
    const { burst, perSec } = this.limits[name];
    // Per-address limits count an IPv6 /64 as one client (see addressKey).
    const k = name.endsWith('PerIp') ? addressKey(key) : key;
    return this.store.take(`${name}:${k}`, cost, burst, perSec, this.clock.now());
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** Token-bucket arithmetic shared by the stores. Returns [bucket after, seconds to wait]. */
export function takeFromBucket(b: Bucket | undefined, cost: number, burst: number, perSec: number, now: number): [Bucket, number] {
  const tokens = b ? Math.min(burst, b.tokens + (Math.max(0, now - b.at) / 1000) * perSec) : burst;
  // A negative cost gives tokens back (a refund), never past the burst.
  if (cost < 0) return [{ tokens: Math.min(burst, tokens - cost), at: now }, 0];
  const needed = Math.max(cost, 1);
  if (tokens >= needed) return [{ tokens: tokens - cost, at: now }, 0];
  return [{ tokens, at: now }, Math.max(1, Math.ceil((needed - tokens) / perSec))];
}

/** Buckets in this process. Bounded: beyond `maxKeys`, the least recently touched are dropped. */
export class MemoryLimiterStore implements LimiterStore {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxKeys = 100_000) {}

  take(key: string, cost: number, burst: number, perSec: number, now: number): Promise<number> {
    const [next, wait] = takeFromBucket(this.buckets.get(key), cost, burst, perSec, now);
    this.buckets.delete(key);
    if (next.tokens < burst) {
      this.buckets.set(key, next);
      if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    return Promise.resolve(wait);
  }

  close(): Promise<void> {
    this.buckets.clear();
    return Promise.resolve();
  }
}
