import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

const WORK = 0;
const STOP = 1;

/**
 * Copies the SQLite WAL back into the database file on a worker thread. SQLite's own automatic
 * checkpoint runs inside the commit that crosses the threshold, on the event loop, and costs that
 * commit tens of milliseconds of page copies and a database fsync; here the writer only raises a
 * flag. The writer keeps a much higher `wal_autocheckpoint` as a backstop should this thread die.
 */
export class Checkpointer {
  private readonly flags = new Int32Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(file: string, log: Logger, opts: { intervalMs: number; restartFrames: number }) {
    this.worker = new Worker(new URL('./checkpoint-worker.mjs', import.meta.url), {
      workerData: { path: file, signal: this.flags.buffer, ...opts },
    });
    this.worker.unref();
    this.worker.on('message', (m: { error?: string }) => log.warn({ error: m.error }, 'WAL checkpoint failed'));
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', () => resolve());
      this.worker.once('error', (err) => {
        log.error({ err }, 'WAL checkpoint thread failed; SQLite checkpoints in the writer instead');
        resolve();
      });
    });
  }

  /** After a commit: wakes the thread (a no-op while a request is pending). */
  poke(): void {
    if (Atomics.compareExchange(this.flags, WORK, 0, 1) === 0) Atomics.notify(this.flags, WORK);
  }

  async close(): Promise<void> {
    Atomics.store(this.flags, STOP, 1);
    Atomics.store(this.flags, WORK, 1);
    Atomics.notify(this.flags, WORK);
    Atomics.notify(this.flags, STOP);
    await this.exited;
  }
}
