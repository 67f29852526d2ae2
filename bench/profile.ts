/**
 * Top self-time functions of a V8 .cpuprofile (as written by `node --cpu-prof`).
 *
 *   node --import tsx bench/profile.ts bench/results/profiles/ws-send-0/CPU.….cpuprofile [top]
 *
 * Self time of a sample is the time until the next sample (as Chrome DevTools counts it);
 * functions are grouped by name and source location. Percentages are of the busy time, i.e.
 * everything but `(idle)`; `(program)` is native code outside JavaScript (the event loop,
 * syscalls, addons such as better-sqlite3), `(garbage collector)` is GC.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileLine {
  selfMs: number;
  pct: number;
  fn: string;
  where: string;
}

export interface ProfileSummary {
  file: string;
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

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, { us: number; fn: string; where: string }>();
  let idleUs = 0;
  let busyUs = 0;
  for (let i = 0; i < prof.samples.length; i++) {
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
  return { file, busyMs: Math.round(busyUs / 1000), idleMs: Math.round(idleUs / 1000), top: lines };
}

export function formatProfile(s: ProfileSummary): string {
  const out = [`${path.relative(process.cwd(), s.file)} — busy ${s.busyMs} ms, idle ${s.idleMs} ms; top self time:`];
  for (const l of s.top) out.push(`  ${String(l.pct.toFixed(1)).padStart(5)}%  ${String(l.selfMs.toFixed(1)).padStart(9)} ms  ${l.fn}  ${l.where}`);
  return out.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node --import tsx bench/profile.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  if (!Number.isInteger(top) || top < 1) {
    console.error(`top must be a positive integer, not ${process.argv[3]} (one profile at a time)`);
    process.exit(2);
  }
  console.log(formatProfile(summarizeProfile(file, top)));
}
