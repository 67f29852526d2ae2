/** Shared by the runner and the generator: configuration and result shapes, /proc readers, percentiles. */
import fs from 'node:fs';

export type ScenarioName = 'relay' | 'ws-send' | 'rest-send' | 'idle' | 'idle-relay' | 'ws-send-pg' | 'ws-send-redis';

export interface GenConfig {
  scenario: ScenarioName;
  /** 'relay' connects with ?user=<id> and sends no tokens; 'server' registers, logs in and uses header auth. */
  target: 'relay' | 'server';
  /** http://host:port of each instance; user i uses instance i % urls.length (socket and REST). */
  urls: string[];
  /** How messages are sent ('ws': message.send; 'rest': POST /messages). Always received as message.new on the socket. */
  send: 'ws' | 'rest';
  users: number;
  /** Contacts per user (chats created in setup); each message goes to a random contact. */
  contacts: number;
  /** Closed loop: messages each user keeps in flight. */
  window: number;
  /** Keep-alive HTTP connections per user (rest-send). */
  httpConns: number;
  warmupS: number;
  durationS: number;
  /** Open-loop rates (msg/s), each run for durationS after a short lead-in. */
  rates: number[];
  drainTimeoutS: number;
  serverPids: number[];
  /** Names (comm) of other processes whose CPU counts towards the scenario (postgres, redis-server). */
  auxProcNames: string[];
  clkTck: number;
  idle?: { sockets: number; users: number; burst: number; settleS: number };
  resultFile: string;
  runTag: string;
  ciphertextBytes: number;
  /**
   * `--trace`: every message later than LATE_MS is written here (epoch ms of its arrival, its
   * latency, its phase), with each phase's measured window, for bench/tail.ts to line up with the
   * servers' own events.
   */
  lateFile?: string;
}

/** A message later than this is listed by `--trace` (the 5 k msg/s p99 target of issue 7). */
export const LATE_MS = 10;

export interface LatencySummary {
  count: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

export interface PhaseResult {
  name: string;
  kind: 'closed' | 'open';
  targetRate: number | null;
  windowS: number;
  /** The measured window on the epoch-ms clock (lines it up with the servers' profiles and traces). */
  windowEpochMs: [number, number];
  /** Messages handed to the transport during the phase (all, not only those sent inside the window). */
  sent: number;
  deliveredInWindow: number;
  deliveredPerSec: number;
  /** Sends whose scheduled time lies inside the window, per second (open loop: the rate actually offered). */
  offeredPerSec: number;
  /** Messages given up on: refused for good, or still refused after 20 attempts. */
  errors: number;
  /** Back-pressure answers (unavailable / rate_limited, 503 / 429) and sends lost with their socket, each sent again with the same clientMessageId. */
  retries: number;
  lost: number;
  unacked: number;
  duplicates: number;
  outOfOrder: number;
  misrouted: number;
  latencyMs: LatencySummary;
  serverCpuPct: number;
  genCpuPct: number;
  auxCpuPct: number | null;
  /**
   * Noise: CPU time the whole machine spent (/proc/stat, both cores) minus the server's, the
   * generator's and aux processes' — other sessions' work, plus kernel threads (ksoftirqd).
   * 100% = one core. A large value means this window's figures are contaminated.
   */
  otherCpuPct: number;
  /** Time the hypervisor gave the vCPUs to someone else, % of one core. */
  stealPct: number;
  /** Time the server's main thread (each instance's, summed) was runnable but waiting for a CPU, % of the window. */
  serverRunqWaitPct: number | null;
  genRunqWaitPct: number | null;
  /** Pressure stall information, machine-wide: % of the window during which some task waited for CPU / for I/O. */
  cpuPressurePct: number | null;
  ioPressurePct: number | null;
  cpuUsPerMsg: number | null;
  serverRssKiB: number;
  serverHwmKiB: number;
  /** Server-side max event-loop delay over the window (monitorEventLoopDelay; /metrics or the relay's /loop). */
  serverLoopMaxMs: number | null;
  genLoopMaxMs: number;
  /** Stall proxy: longest gap between two consecutive message.new frames on any one receiver, in the window. */
  maxGapPerReceiverMs: number;
  /** Stall proxy: longest gap between two consecutive message.new frames on all the generator's sockets together. */
  maxGapGlobalMs: number;
  /**
   * Open loop only: delivered < 90% of offered in the window, or the client-side backlog grew past
   * 2 s of sends and scheduling stopped early. Latency then grows with the length of the run.
   */
  overloaded: boolean;
  /** Open loop not run: the rate is over twice the saturated throughput measured just before. */
  skipped: boolean;
}

export interface IdleResult {
  sockets: number;
  users: number;
  baselineRssKiB: number;
  rssKiB: number;
  rssPerSocketKiB: number;
  /** Growth per socket between half and all sockets open (less sensitive to one-off allocations). */
  marginalPerSocketKiB: number;
  burst: number;
  burstReadyMs: number | null;
  burstFailed: number;
  failed: number;
  serverLoopMaxMs: number | null;
}

export interface GenResult {
  scenario: ScenarioName;
  setupMs: number;
  phases: PhaseResult[];
  idle?: IdleResult;
  /** Frames or acknowledgements the generator could not attribute to a message it sent. */
  unexpectedFrames: number;
  /** Sockets the server closed while the generator still used them (each is reopened with ?since=). */
  socketsClosed: number;
  reconnects: number;
  errorSamples: string[];
  notes: string[];
}

// ---- /proc ----

/** utime + stime of a process, in seconds (all its threads), or null if it is gone. */
export function procCpuSeconds(pid: number, clkTck: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(rest[11]) + Number(rest[12])) / clkTck;
  } catch {
    return null;
  }
}

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or 0 if the process is gone. */
export function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Pids whose comm is one of `names`. */
export function pidsByName(names: string[]): number[] {
  if (names.length === 0) return [];
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (names.includes(comm)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/** CPU seconds per pid, for a set of pids (summed later over the pids present at both ends). */
export function cpuSnapshot(pids: number[], clkTck: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    const s = procCpuSeconds(pid, clkTck);
    if (s !== null) m.set(pid, s);
  }
  return m;
}

export function cpuDelta(a: Map<number, number>, b: Map<number, number>): number {
  let sum = 0;
  for (const [pid, end] of b) {
    const start = a.get(pid);
    sum += start === undefined ? 0 : end - start;
  }
  return sum;
}

/** Busy (not idle, iowait or steal) and total jiffies per CPU line of /proc/stat ('cpu' = all, 'cpu0', …); steal separately. */
export function procStat(): Map<string, { busy: number; total: number; steal: number }> {
  const out = new Map<string, { busy: number; total: number; steal: number }>();
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const [name, ...f] = line.trim().split(/\s+/);
    // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
    const v = f.slice(0, 8).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = v[3]! + v[4]!;
    out.set(name!, { busy: total - idle - v[7]!, total, steal: v[7]! });
  }
  return out;
}

/** Seconds a process's main thread spent waiting on a run queue (runnable, not running): /proc/<pid>/schedstat. */
export function procRunqWaitSeconds(pid: number): number | null {
  try {
    const f = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    return Number(f[1]) / 1e9;
  } catch {
    return null;
  }
}

/** Pressure stall information: seconds during which some task waited for `resource` (total since boot), or null. */
export function psiSomeSeconds(resource: 'cpu' | 'io'): number | null {
  try {
    const m = /^some .*total=(\d+)/m.exec(fs.readFileSync(`/proc/pressure/${resource}`, 'utf8'));
    return m ? Number(m[1]) / 1e6 : null;
  } catch {
    return null;
  }
}

/**
 * A process's bytes passed to write calls and its read calls so far (/proc/<pid>/io: wchar,
 * syscr), or null where there is none. Unlike times, they hardly depend on what else the machine
 * is doing.
 */
export function procIo(pid: number | 'self'): { wchar: number; syscr: number } | null {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(io)?.[1]);
    return { wchar: field('wchar'), syscr: field('syscr') };
  } catch {
    return null;
  }
}

// ---- statistics ----

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: Float64Array): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    p999: round(percentile(sorted, 99.9)),
    max: round(sorted.length ? sorted[sorted.length - 1]! : null),
  };
}

/** A growable Float64 sample buffer. */
export class Samples {
  private buf = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  values(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
