import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { CheckpointPacing } from '../config/config.js';

const WORK = 0;
const STOP = 1;
const WANTS_QUIET = 2;
const CATCH_UP = 3;
const LAST_COPIED = 4;
/** A catch-up pass that takes longer than this is not waited for (writes resume; the WAL just grows). */
const CATCH_UP_WAIT_MS = 250;

/**
 * A catch-up pass: how long after the request it began (a pass under way is finished first), its
 * length, and of that the thread's time on a CPU and waiting for one (Linux only, else null). The
 * rest is the disk: the syncs a checkpoint needs before the WAL may be overwritten.
 */
export interface CatchUpPass {
  /** From the writer's request to the pass's start (the thread may have been in a pass already). */
  startedAfterMs: number;
  ms: number;
  cpuMs: number | null;
  runqMs: number | null;
}

/**
 * Copies the SQLite WAL back into the database file on a worker thread. SQLite's own automatic
 * checkpoint runs inside the commit that crosses the threshold, on the event loop, and costs that
 * commit tens of milliseconds of page copies and a database fsync; here the writer only raises a
 * flag. The writer keeps a much higher `wal_autocheckpoint` as a backstop should this thread die.
 *
 * The WAL starts over only when a write begins while all of it has been copied. Under steady
 * writes that moment never comes, so once the WAL is long the writer pauses between two commit
 * groups (`wantsQuiet` → `catchUp`, a few milliseconds, the event loop stays free) while the
 * thread copies the rest. Checkpoint modes that take the write lock themselves (RESTART) were
 * worse: they held it for 15–170 ms, waiting in SQLite's coarse busy-handler sleeps.
 */
export class Checkpointer {
  private readonly flags = new Int32Array(new SharedArrayBuffer(20));
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private caughtUp: (() => void) | null = null;
  /** How the thread spent its latest catch-up pass (null before one, or if it timed out). */
  lastCatchUp: CatchUpPass | null = null;
  /** Epoch ms of the pending catch-up request. */
  private requestedAt: number | null = null;

  /**
   * `intervalMs`: at most one pass per interval; a longer one copies a page rewritten many times
   * once. `restartFrames`: past this WAL length the writer is asked for a pause. `quietFrames`:
   * before that, passes run back to back until one copied at most this many frames.
   */
  constructor(file: string, log: Logger, opts: CheckpointPacing) {
    this.worker = new Worker(new URL('./checkpoint-worker.mjs', import.meta.url), {
      workerData: { path: file, signal: this.flags.buffer, ...opts },
    });
    this.worker.unref();
    this.worker.on('message', (m: { error?: string; caughtUp?: boolean; pass?: Omit<CatchUpPass, 'startedAfterMs'> & { startedAt: number } }) => {
      if (m.caughtUp) {
        if (m.pass && this.requestedAt !== null) {
          const { startedAt, ...pass } = m.pass;
          this.lastCatchUp = { startedAfterMs: Math.max(0, startedAt - this.requestedAt), ...pass };
        }
        this.release();
      }
      else log.warn({ error: m.error }, 'WAL checkpoint failed');
    });
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', () => {
        this.release();
        resolve();
      });
      this.worker.once('error', (err) => {
        log.error({ err }, 'WAL checkpoint thread failed; SQLite checkpoints in the writer instead');
        this.release();
        resolve();
      });
    });
  }

  /** After a commit: wakes the thread (a no-op while a request is pending). */
  poke(): void {
    if (Atomics.compareExchange(this.flags, WORK, 0, 1) === 0) Atomics.notify(this.flags, WORK);
  }

  /** The WAL is long: the writer should call `catchUp` before its next transaction. */
  get wantsQuiet(): boolean {
    return Atomics.load(this.flags, WANTS_QUIET) === 1;
  }

  /** Frames the thread's last pass copied into the database file. */
  get lastCopied(): number {
    return Atomics.load(this.flags, LAST_COPIED);
  }

  /** Resolves when the thread has copied the whole WAL (the caller writes nothing meanwhile). */
  catchUp(): Promise<void> {
    this.lastCatchUp = null;
    this.requestedAt = performance.timeOrigin + performance.now();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.release(), CATCH_UP_WAIT_MS);
      this.caughtUp = () => {
        clearTimeout(timer);
        resolve();
      };
      Atomics.store(this.flags, WANTS_QUIET, 0);
      Atomics.store(this.flags, CATCH_UP, 1);
      Atomics.store(this.flags, WORK, 1);
      Atomics.notify(this.flags, WORK);
      // It may be sleeping out its interval.
      Atomics.notify(this.flags, STOP);
    });
  }

  private release(): void {
    const done = this.caughtUp;
    this.caughtUp = null;
    done?.();
  }

  async close(): Promise<void> {
    // Unref'd while it runs; held now so a process with nothing else to do waits for its exit.
    this.worker.ref();
    Atomics.store(this.flags, STOP, 1);
    Atomics.store(this.flags, WORK, 1);
    Atomics.notify(this.flags, WORK);
    Atomics.notify(this.flags, STOP);
    await this.exited;
  }
}
