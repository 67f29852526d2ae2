// WAL checkpoints for the SQLite writer, on their own thread and connection (see checkpointer.ts).
// Plain JavaScript so it loads the same way under tsx, Vitest and plain Node.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const WORK = 0; // set to 1 by the writer after a commit
const STOP = 1; // set to 1 when closing
const flags = new Int32Array(workerData.signal);
const db = new Database(workerData.path);
// RESTART waits for the writer's current group to commit; the writer's next BEGIN waits for it.
db.pragma('busy_timeout = 2000');

for (;;) {
  Atomics.wait(flags, WORK, 0);
  if (Atomics.load(flags, STOP) === 1) break;
  Atomics.store(flags, WORK, 0);
  try {
    // PASSIVE: copies what it can and syncs the database file without waiting for the writer or
    // readers, never blocking them. But with commits every few milliseconds the WAL is never fully
    // copied at the moment a write begins, so SQLite never starts it over and it only grows.
    const [{ log }] = db.pragma('wal_checkpoint(PASSIVE)');
    // RESTART then copies the little that is left while holding the write lock (the writer's
    // BEGIN waits, asynchronously, for a few milliseconds), so the next write starts the WAL over.
    if (log >= workerData.restartFrames) db.pragma('wal_checkpoint(RESTART)');
  } catch (err) {
    parentPort.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
  // Batch: at most one checkpoint per interval, however many commits arrive.
  Atomics.wait(flags, STOP, 0, workerData.intervalMs);
  if (Atomics.load(flags, STOP) === 1) break;
}
db.close();
