// WAL checkpoints for the SQLite writer, on their own thread and connection (see checkpointer.ts).
// Plain JavaScript so it loads the same way under tsx, Vitest and plain Node.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const WORK = 0; // 1: the writer committed (or asks for a catch-up)
const STOP = 1; // 1: closing
const WANTS_QUIET = 2; // 1: the WAL is long; the writer should pause for a catch-up pass
const CATCH_UP = 3; // 1: the writer has paused and waits for this pass

const flags = new Int32Array(workerData.signal);
const db = new Database(workerData.path);

for (;;) {
  Atomics.wait(flags, WORK, 0);
  if (Atomics.load(flags, STOP) === 1) break;
  Atomics.store(flags, WORK, 0);
  const catchUp = Atomics.exchange(flags, CATCH_UP, 0) === 1;
  try {
    // PASSIVE: copies what it can and syncs the database file without waiting for the writer or
    // readers, never blocking them.
    const [{ log }] = db.pragma('wal_checkpoint(PASSIVE)');
    // With commits every few milliseconds the WAL is never wholly copied at the moment a write
    // begins, so SQLite never starts it over: past the threshold, ask the writer for a pause.
    Atomics.store(flags, WANTS_QUIET, !catchUp && log >= workerData.restartFrames ? 1 : 0);
  } catch (err) {
    parentPort.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
  if (catchUp) {
    // Everything is copied and no write ran meanwhile: the writer's next write starts the WAL over.
    parentPort.postMessage({ caughtUp: true });
    continue;
  }
  // Batch: at most one pass per interval, however many commits arrive (a catch-up wakes it early).
  Atomics.wait(flags, STOP, 0, workerData.intervalMs);
  if (Atomics.load(flags, STOP) === 1) break;
}
db.close();
