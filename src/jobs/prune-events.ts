import type { Logger } from 'pino';
import type { Database } from '../storage/db.js';
import { expiredLogHeads, pruneLog } from '../storage/repositories/events.js';
import type { Clock } from '../util/clock.js';

const DAY_MS = 86_400_000;
const USERS_PER_BATCH = 200;

/**
 * Takes log entries older than the retention period (≥ 30 days) out of replay (events are
 * deleted; messages stay as history) and records, per user, the last seq removed; a client
 * resuming from before it gets a `resync` instead of silent loss. Runs hourly on every instance
 * (it is idempotent) and once at start.
 */
export class PruneEventsJob {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly deps: { db: Database; clock: Clock; log: Logger; retentionDays: number; intervalMs?: number },
  ) {}

  start(): void {
    const run = () => void this.runOnce().catch((err: unknown) => this.deps.log.warn({ err }, 'event pruning failed'));
    this.timer = setInterval(run, this.deps.intervalMs ?? 3_600_000);
    this.timer.unref();
    setImmediate(run);
  }

  /** One pass; returns how many log entries left the log. */
  runOnce(): Promise<number> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<number> {
    const { db, clock, log, retentionDays } = this.deps;
    const cutoff = clock.now() - retentionDays * DAY_MS;
    let deleted = 0;
    for (;;) {
      const heads = await expiredLogHeads(db.db, cutoff, USERS_PER_BATCH);
      if (heads.length === 0) break;
      deleted += await db.transaction(async (tx) => {
        let n = 0;
        for (const h of heads) n += await pruneLog(tx.db, h.user_id, h.max_seq);
        return n;
      });
      if (heads.length < USERS_PER_BATCH) break;
    }
    if (deleted > 0) log.info({ deleted, retentionDays }, 'old events pruned');
    return deleted;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
