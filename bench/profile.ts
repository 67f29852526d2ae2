/**
 * Top self-time functions of a V8 .cpuprofile (as written by `node --cpu-prof`).
 *
 *   node --import tsx bench/profile.ts bench/results/profiles/ws-send-0/CPU.….cpuprofile [top]
 *   … --timeline            busy % of each second since the profile's start
 *   … --seconds 30:42       only the samples of those seconds (the runner itself counts the
 *                           saturated phase's window)
 *
 * Self time of a sample is the time until the next sample (as Chrome DevTools counts it);
 * functions are grouped by name and source location. Percentages are of the busy time, i.e.
 * everything but `(idle)`; `(program)` is native code outside JavaScript (the event loop,
 * syscalls, addons such as better-sqlite3), `(garbage collector)` is GC.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  /** µs on the monotonic clock (CLOCK_MONOTONIC, as `process.hrtime`): comparable across processes. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Samples counted: those taken in [fromUs, toUs) of the monotonic clock. */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
  /** What the window is, for the heading (e.g. the generator's phase). */
  label: string;
}

export interface ProfileLine {
  selfMs: number;
  pct: number;
  fn: string;
  where: string;
}

export interface ProfileSummary {
  file: string;
  /** The window counted; the whole profile when absent. */
  window?: string;
  busyMs: number;
  idleMs: number;
  top: ProfileLine[];
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function shortUrl(url: string): string {
  if (url === '') return '';
  let p = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (p.startsWith(repoRoot + path.sep)) p = p.slice(repoRoot.length + 1);
  return p;
}

function readProfile(file: string): CpuProfile {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
}

/**
 * A whole-run profile also holds the server's start (module loading) and the generator's setup
 * (logins, sockets): with `window`, only the samples of that window count (the runner passes the
 * saturated phase's).
 */
export function summarizeProfile(file: string, top = 25, window?: ProfileWindow): ProfileSummary {
  const prof = readProfile(file);
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, { us: number; fn: string; where: string }>();
  let idleUs = 0;
  let busyUs = 0;
  let at = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    at += prof.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at >= window.toUs)) continue;
    const us = prof.timeDeltas[i + 1] ?? 0;
    const node = byId.get(prof.samples[i]!);
    if (!node) continue;
    const fn = node.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    // Under tsx, TypeScript files run as transpiled code: their line numbers are not the source's.
    const url = shortUrl(node.callFrame.url);
    const where = url === '' ? '' : /\.[mc]?tsx?$/.test(url) ? url : `${url}:${node.callFrame.lineNumber + 1}`;
    const key = `${fn}\u0000${where}`;
    const e = selfUs.get(key) ?? { us: 0, fn, where };
    e.us += us;
    selfUs.set(key, e);
  }
  const lines = [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ selfMs: Math.round(e.us / 100) / 10, pct: busyUs > 0 ? Math.round((e.us / busyUs) * 1000) / 10 : 0, fn: e.fn, where: e.where }));
  return { file, ...(window ? { window: window.label } : {}), busyMs: Math.round(busyUs / 1000), idleMs: Math.round(idleUs / 1000), top: lines };
}

/** Busy per cent of each second of the profile, to find a window by eye. */
export function profileTimeline(file: string): string {
  const prof = readProfile(file);
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const busy: number[] = [];
  let at = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    at += prof.timeDeltas[i] ?? 0;
    const second = Math.floor(at / 1e6);
    busy[second] ??= 0;
    if (byId.get(prof.samples[i]!)?.callFrame.functionName !== '(idle)') busy[second] += prof.timeDeltas[i + 1] ?? 0;
  }
  return `busy % per second since the profile's start: ${Array.from(busy, (us, s) => `${s}:${Math.round((us ?? 0) / 1e4)}`).join(' ')}`;
}

export function formatProfile(s: ProfileSummary): string {
  const what = s.window ? ` (${s.window})` : '';
  const out = [`${path.relative(process.cwd(), s.file)}${what} — busy ${s.busyMs} ms, idle ${s.idleMs} ms; top self time:`];
  for (const l of s.top) out.push(`  ${String(l.pct.toFixed(1)).padStart(5)}%  ${String(l.selfMs.toFixed(1)).padStart(9)} ms  ${l.fn}  ${l.where}`);
  return out.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const usage = 'usage: node --import tsx bench/profile.ts <file.cpuprofile> [top] [--seconds FROM:TO | --timeline]';
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { seconds: { type: 'string' }, timeline: { type: 'boolean' } } });
  const { seconds, timeline } = values;
  const [file, topArg] = positionals;
  if (!file) {
    console.error(usage);
    process.exit(2);
  }
  const top = Number(topArg ?? 25);
  if (!Number.isInteger(top) || top < 1) {
    console.error(`top must be a positive integer, not ${topArg} (one profile at a time)\n${usage}`);
    process.exit(2);
  }
  let window: ProfileWindow | undefined;
  if (seconds !== undefined) {
    const [from, to] = seconds.split(':').map(Number);
    if (!(from! >= 0 && to! > from!)) {
      console.error(`--seconds takes FROM:TO, seconds since the profile's start (see --timeline), not ${seconds}\n${usage}`);
      process.exit(2);
    }
    const start = readProfile(file).startTime;
    window = { fromUs: start + from! * 1e6, toUs: start + to! * 1e6, label: `seconds ${from}–${to}` };
  }
  console.log(timeline ? profileTimeline(file) : formatProfile(summarizeProfile(file, top, window)));
}
