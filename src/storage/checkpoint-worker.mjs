// WAL checkpoints for the SQLite writer, on their own thread and connection (see checkpointer.ts).
// Plain JavaScript so it loads the same way under tsx, Vitest and plain Node.
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const WORK = 0; // 1: the writer committed (or asks for a catch-up)
const STOP = 1; // 1: closing
const WANTS_QUIET = 2; // 1: the WAL is long; the writer should pause for a catch-up pass
const CATCH_UP = 3; // 1: the writer has paused and waits for this pass

const LAST_COPIED = 4; // frames the last pass copied (for tests)
/** Passes in a row, at most, while converging before a pause (the writer may outrun them). */
const MAX_BACK_TO_BACK = 8;

const flags = new Int32Array(workerData.signal);
const db = new Database(workerData.path);
let lastCheckpointed = 0;
let backToBack = 0;

for (;;) {
  Atomics.wait(flags, WORK, 0);
  if (Atomics.load(flags, STOP) === 1) break;
  Atomics.store(flags, WORK, 0);
  const catchUp = Atomics.exchange(flags, CATCH_UP, 0) === 1;
  // For a catch-up pass, the writer is told where its time went (the pause's length).
  const before = catchUp ? threadTimes() : null;
  const startedAt = performance.now();
  try {
    // PASSIVE: copies what it can and syncs the database file without waiting for the writer or
    // readers, never blocking them.
    const [{ log, checkpointed }] = db.pragma('wal_checkpoint(PASSIVE)');
    // What this pass copied (fewer than before: the WAL started over, and all of it is this pass's).
    const copied = checkpointed >= lastCheckpointed ? checkpointed - lastCheckpointed : checkpointed;
    lastCheckpointed = checkpointed;
    Atomics.store(flags, LAST_COPIED, copied);
    // With commits every few milliseconds the WAL is never wholly copied at the moment a write
    // begins, so SQLite never starts it over: past the threshold, ask the writer for a pause. The
    // pause lasts one pass over what is left, mostly the database fsync of the pages it copies, so
    // passes first run back to back until one has copied little (what the writer added meanwhile).
    const long = !catchUp && log >= workerData.restartFrames;
    if (long && copied > workerData.quietFrames && backToBack < MAX_BACK_TO_BACK) {
      backToBack++;
      Atomics.store(flags, WORK, 1);
      continue;
    }
    backToBack = 0;
    Atomics.store(flags, WANTS_QUIET, long ? 1 : 0);
  } catch (err) {
    parentPort.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
  if (catchUp) {
    // Everything is copied and no write ran meanwhile: the writer's next write starts the WAL over.
    const after = threadTimes();
    // Epoch milliseconds: the writer's clock is another thread's performance.now().
    const pass = { startedAt: performance.timeOrigin + startedAt, ms: performance.now() - startedAt, cpuMs: null, runqMs: null };
    if (before && after) {
      pass.cpuMs = after.cpuMs - before.cpuMs;
      pass.runqMs = after.runqMs - before.runqMs;
    }
    parentPort.postMessage({ caughtUp: true, pass });
    continue;
  }
  // Batch: at most one pass per interval, however many commits arrive (a catch-up wakes it early).
  Atomics.wait(flags, STOP, 0, workerData.intervalMs);
  if (Atomics.load(flags, STOP) === 1) break;
}
db.close();

/**
 * This thread's time on a CPU and waiting for one, in ms (Linux: /proc/thread-self/schedstat);
 * null elsewhere. The rest of a pass is spent blocked: on the disk, for the two fsyncs.
 */
function threadTimes() {
  try {
    const [onCpu, waiting] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return { cpuMs: onCpu / 1e6, runqMs: waiting / 1e6 };
  } catch {
    return null;
  }
}
