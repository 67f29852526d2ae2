import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { MemoryLimiterStore, type LimiterStore } from './limiter.js';

// Token bucket in one atomic script, the same arithmetic as takeFromBucket(). An empty ARGV[4]
// takes the time from Redis (allowed in scripts since Redis 5 replicates their effects).
const TAKE = `
local b = redis.call('HMGET', KEYS[1], 't', 'a')
local cost, burst, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local needed = math.max(cost, 1)
local wait = 0
if cost < 0 then tokens = math.min(burst, tokens - cost)
elseif tokens >= needed then tokens = tokens - cost else wait = math.max(1, math.ceil((needed - tokens) / rate)) end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
`;

type RedisWithTake = Redis & { safechatTake(key: string, cost: number, burst: number, perSec: number, now: number | ''): Promise<number> };

/**
 * Buckets in Redis, shared by every instance. If Redis cannot answer, this instance falls back to
 * its own buckets: limits stay on (per instance) instead of failing open or refusing everyone.
 *
 * `time`: 'redis' refills by Redis's clock, one for all instances; with each caller's own clock,
 * instances whose clocks differ would each refill from the other's timestamps (decision 0021).
 * 'caller' uses the `now` passed in, for tests that move a fake clock.
 */
export class RedisLimiterStore implements LimiterStore {
  private readonly fallback = new MemoryLimiterStore();
  private readonly redis: RedisWithTake;
  private warned = false;

  constructor(
    redis: Redis,
    private readonly log: Logger,
    private readonly prefix = 'safechat:rl:',
    private readonly time: 'redis' | 'caller' = 'redis',
  ) {
    redis.defineCommand('safechatTake', { numberOfKeys: 1, lua: TAKE });
    this.redis = redis as RedisWithTake;
  }

  async take(key: string, cost: number, burst: number, perSec: number, now: number): Promise<number> {
    if (this.redis.status === 'ready') {
      try {
        const wait = await this.redis.safechatTake(this.prefix + key, cost, burst, perSec, this.time === 'redis' ? '' : now);
        this.warned = false;
        return Number(wait);
      } catch (err) {
        this.warn(err);
      }
    } else {
      this.warn(new Error(`redis ${this.redis.status}`));
    }
    return this.fallback.take(key, cost, burst, perSec, now);
  }

  private warn(err: unknown): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn({ error: (err as Error).message }, 'rate limits falling back to this instance while Redis is away');
  }

  close(): Promise<void> {
    return this.fallback.close();
  }
}
