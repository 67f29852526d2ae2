/**
 * `--trace`: what the late messages of a run coincide with on the servers. Reads the generator's
 * list of messages later than LATE_MS (GenConfig.lateFile) and each server's event list
 * (bench/trace.mjs: SQLite commit groups, WAL-restart pauses, GC pauses), all on one epoch clock,
 * and for each phase prints how the server spent it and the worst 100 ms of arrivals with what
 * happened on the server just before. Reread a run's files with
 *
 *   node --import tsx bench/tail.ts bench/results/traces/ws-send.late.log bench/results/traces/ws-send-0.events.log
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LATE_MS } from './lib.js';

interface Window {
  name: string;
  kind: 'closed' | 'open';
  start: number;
  end: number;
}
interface Late {
  at: number;
  ms: number;
  phase: string;
}
/** The checkpoint thread's catch-up pass: on a CPU, waiting for one, and the rest (the disk's fsyncs). */
interface PassTimes {
  /** From the writer's request to the start of the pass. */
  afterMs: number;
  cpuMs: number;
  runqMs: number;
  diskMs: number;
}
type ServerEvent =
  | { at: number; kind: 'group'; units: number; runMs: number; commitMs: number; syncMs: number }
  | { at: number; kind: 'restart'; pauseMs: number; waiting: number; frames: number; pass: PassTimes | null }
  | { at: number; kind: 'gc'; gcKind: number; ms: number };

/** How far back from a bucket of late arrivals its causes are looked for. */
const LOOKBACK_MS = 250;
const BUCKET_MS = 100;
/** A commit group whose fsync took this long is listed as slow. */
const SLOW_SYNC_MS = 5;
const GC_NAMES: Record<number, string> = { 1: 'scavenge', 2: 'minor-ms', 4: 'mark-compact', 8: 'incremental', 16: 'weak-callbacks' };

function lines(file: string): string[][] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' '));
}

export function readLate(file: string): { windows: Window[]; late: Late[] } {
  const windows: Window[] = [];
  const late: Late[] = [];
  for (const f of lines(file)) {
    if (f[1] === 'window') windows.push({ start: Number(f[0]), end: Number(f[2]), kind: f[3] as Window['kind'], name: f.slice(4).join(' ') });
    else if (f[1] === 'late') late.push({ at: Number(f[0]), ms: Number(f[2]), phase: f.slice(3).join(' ') });
  }
  return { windows, late };
}

export function readEvents(file: string): ServerEvent[] {
  const out: ServerEvent[] = [];
  for (const f of lines(file)) {
    const at = Number(f[0]);
    if (f[1] === 'group') out.push({ at, kind: 'group', units: Number(f[2]), runMs: Number(f[3]), commitMs: Number(f[4]), syncMs: Number(f[5]) });
    else if (f[1] === 'restart') {
      const [afterMs, passMs, cpuMs, runqMs] = [f[5], f[6], f[7], f[8]].map((v) => (v === undefined || v === '-' ? NaN : Number(v))) as [number, number, number, number];
      const pass = Number.isNaN(afterMs + passMs + cpuMs + runqMs) ? null : { afterMs, cpuMs, runqMs, diskMs: Math.max(0, passMs - cpuMs - runqMs) };
      out.push({ at, kind: 'restart', pauseMs: Number(f[2]), waiting: Number(f[3]), frames: Number(f[4]), pass });
    }
    else if (f[1] === 'gc') out.push({ at, kind: 'gc', gcKind: Number(f[2]), ms: Number(f[3]) });
  }
  return out.sort((a, b) => a.at - b.at);
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const max = (xs: number[]) => xs.reduce((a, b) => Math.max(a, b), 0);
const f1 = (x: number) => x.toFixed(1);
const messages = (n: number) => `${n} message${n === 1 ? '' : 's'}`;

function describe(e: ServerEvent): string {
  if (e.kind === 'restart') {
    const pass = e.pass
      ? `; the thread began after ${f1(e.pass.afterMs)}, then ${f1(e.pass.cpuMs)} on a CPU, ${f1(e.pass.runqMs)} waiting for one, ${f1(e.pass.diskMs)} on the disk`
      : '';
    return `WAL-restart pause ${f1(e.pauseMs)} ms (${e.frames} frames copied${pass}; ${e.waiting} units waiting)`;
  }
  if (e.kind === 'gc') return `${GC_NAMES[e.gcKind] ?? `gc ${e.gcKind}`} ${f1(e.ms)} ms`;
  return `group of ${e.units}: statements ${f1(e.runMs)} + commit ${f1(e.commitMs)} + fsync ${f1(e.syncMs)} ms`;
}

/** What a server event costs the messages waiting behind it, to pick the notable ones. */
function weight(e: ServerEvent): number {
  if (e.kind === 'restart') return e.pauseMs;
  if (e.kind === 'gc') return e.ms;
  return e.runMs + e.commitMs + e.syncMs;
}

/**
 * What the late messages waited through: each is counted once, under the first of these whose
 * interval overlaps its own wait (from its send to its arrival) — a WAL-restart pause, a commit
 * group's slow fsync, a GC pause of 2 ms or more. The rest waited through none of them, only queues
 * (often the backlog one of them left).
 */
function attribute(late: Late[], events: ServerEvent[]): string {
  const spans = (pick: (e: ServerEvent) => number | null) =>
    events.flatMap((e) => {
      const ms = pick(e);
      return ms === null ? [] : [[e.at - ms, e.at] as const];
    });
  const classes = [
    { name: 'a WAL-restart pause', spans: spans((e) => (e.kind === 'restart' ? e.pauseMs : null)) },
    { name: `a slow fsync (≥ ${SLOW_SYNC_MS} ms)`, spans: spans((e) => (e.kind === 'group' && e.syncMs >= SLOW_SYNC_MS ? e.syncMs : null)) },
    { name: 'a GC pause ≥ 2 ms', spans: spans((e) => (e.kind === 'gc' && e.ms >= 2 ? e.ms : null)) },
  ];
  const counts = classes.map(() => 0);
  for (const l of late) {
    const sent = l.at - l.ms;
    const i = classes.findIndex((c) => c.spans.some(([from, to]) => from < l.at && to > sent));
    if (i >= 0) counts[i]!++;
  }
  const pct = (n: number) => `${Math.round((100 * n) / late.length)} %`;
  const none = late.length - sum(counts);
  return `waited through ${classes.map((c, i) => `${c.name} ${pct(counts[i]!)}`).join(', ')}; none of these ${pct(none)}`;
}

/** The report for one scenario: per phase, the server's time and the worst buckets of late messages. */
export function explainTail(lateFile: string, eventFiles: string[], opts: { worst?: number; phases?: (w: Window) => boolean } = {}): string {
  const { windows, late } = readLate(lateFile);
  const events = eventFiles.flatMap(readEvents).sort((a, b) => a.at - b.at);
  const out: string[] = [];
  for (const w of windows.filter(opts.phases ?? (() => true))) {
    const seconds = (w.end - w.start) / 1000;
    const inWindow = events.filter((e) => e.at >= w.start && e.at < w.end);
    const groups = inWindow.filter((e) => e.kind === 'group');
    const restarts = inWindow.filter((e) => e.kind === 'restart');
    const gcs = inWindow.filter((e) => e.kind === 'gc');
    const units = sum(groups.map((g) => g.units));
    const mine = late.filter((l) => l.phase === w.name);
    out.push(`${w.name}: ${messages(mine.length)} later than ${LATE_MS} ms (${mine.filter((l) => l.ms > 50).length} later than 50 ms)`);
    if (groups.length > 0) {
      out.push(
        `  per second: ${f1(groups.length / seconds)} commit groups (${f1(units / Math.max(1, groups.length))} units each), ` +
          `statements ${f1(sum(groups.map((g) => g.runMs)) / seconds)} ms, commits ${f1(sum(groups.map((g) => g.commitMs)) / seconds)} ms, ` +
          `fsync waits ${f1(sum(groups.map((g) => g.syncMs)) / seconds)} ms (${groups.filter((g) => g.syncMs >= SLOW_SYNC_MS).length} fsyncs ≥ ${SLOW_SYNC_MS} ms, longest ${f1(max(groups.map((g) => g.syncMs)))})`,
      );
    }
    const sqlite = groups.length > 0;
    out.push(
      `  ${sqlite ? '' : 'no SQLite commit groups reported; '}` +
        (sqlite ? `WAL-restart pauses: ${restarts.length} (${f1(restarts.length / seconds)}/s), ${f1(sum(restarts.map((r) => r.pauseMs)))} ms in all, longest ${f1(max(restarts.map((r) => r.pauseMs)))}; ` +
        `${restarts.some((r) => r.pass) ? `of which the checkpoint thread was ${f1(sum(restarts.map((r) => r.pass?.diskMs ?? 0)))} ms on the disk; ` : ''}` : '') +
        `GC pauses ≥ 1 ms: ${gcs.length}, ${f1(sum(gcs.map((g) => g.ms)))} ms in all, longest ${f1(max(gcs.map((g) => g.ms)))}`,
    );
    for (const over of [LATE_MS, 50]) {
      const these = over === LATE_MS ? mine : mine.filter((l) => l.ms > over);
      if (these.length > 0) out.push(`  the ${these.length} later than ${over} ms ${attribute(these, events)}`);
    }
    // The worst buckets of arrivals, with the notable server events shortly before each.
    const buckets = new Map<number, Late[]>();
    for (const l of mine) {
      const k = Math.floor(l.at / BUCKET_MS);
      const b = buckets.get(k);
      if (b) b.push(l);
      else buckets.set(k, [l]);
    }
    const worst = [...buckets.entries()].sort((a, b) => max(b[1].map((l) => l.ms)) - max(a[1].map((l) => l.ms))).slice(0, opts.worst ?? 5);
    for (const [k, ls] of worst.sort((a, b) => a[0] - b[0])) {
      const from = k * BUCKET_MS - LOOKBACK_MS;
      const near = events
        .filter((e) => e.at >= from && e.at < (k + 1) * BUCKET_MS)
        .filter((e) => e.kind !== 'group' || e.syncMs >= SLOW_SYNC_MS || weight(e) >= 20)
        .filter((e) => e.kind !== 'gc' || e.ms >= 2);
      const when = f1(Math.max(0, k * BUCKET_MS - w.start) / 1000);
      out.push(`  at +${when} s: ${ls.length} late, up to ${f1(max(ls.map((l) => l.ms)))} ms; in the ${LOOKBACK_MS} ms before: ${near.length ? near.map(describe).join(', ') : 'nothing the server reported'}`);
    }
  }
  return out.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [lateFile, ...eventFiles] = process.argv.slice(2);
  if (!lateFile || eventFiles.length === 0) {
    console.error('usage: tail.ts <scenario>.late.log <scenario>-<instance>.events.log…');
    process.exit(2);
  }
  console.log(explainTail(lateFile, eventFiles));
}
