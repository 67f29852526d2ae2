// Preloaded into a server process by `npm run bench -- --trace` (node --import). Two files.
//
// BENCH_TRACE_EVENTS_FILE: one line per event, on the epoch-millisecond clock the generator's list
// of late messages uses (bench/tail.ts lines the two up): `<ms> group <units> <run> <commit> <sync>`
// for each SQLite commit group once durable, `<ms> restart <pause> <waiting> <frames copied> <pass began after> <pass> <pass on a CPU>
// <pass waiting for a CPU>` for each pause the writer took so that the WAL could start over (- where unknown) (src/storage/db.ts publishes both on
// node:diagnostics_channel), and `<ms> gc <kind> <duration>` for each GC pause of 1 ms or more.
//
// BENCH_TRACE_FILE: one line
// for every turn of the event loop longer than BENCH_TRACE_MS (40 by default) to BENCH_TRACE_FILE,
// with what the turn held: GC time, the process's CPU time (all threads), HTTP requests,
// WebSocket upgrades and WebSocket frames that arrived. A turn with CPU ≈ its length and no
// requests, upgrades or GC is the server's own work (a commit group, its answers); CPU well below
// it means the main thread waited for a core. Plain JavaScript: Node built-ins and the repo's `ws`
// (the same module the server and the relay load, so its frames are counted), no TypeScript loader.
import { subscribe } from 'node:diagnostics_channel';
import fs from 'node:fs';
import http from 'node:http';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';
import { WebSocket } from 'ws';

const file = process.env.BENCH_TRACE_FILE;
const minMs = Number(process.env.BENCH_TRACE_MS ?? 40);
// Not in tsx's loader thread, which runs the preloads too.
if (file && isMainThread) {
  const out = fs.openSync(file, 'w');
  const start = performance.now();
  fs.writeSync(out, 'at_ms turn_ms gc_ms cpu_ms requests upgrades frames\n');
  const seen = { request: 0, upgrade: 0, frames: 0 };
  const wsEmit = WebSocket.prototype.emit;
  WebSocket.prototype.emit = function (event, ...args) {
    if (event === 'message') seen.frames++;
    return wsEmit.call(this, event, ...args);
  };
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (event, ...args) {
    if (event === 'request' || event === 'upgrade') seen[event]++;
    return emit.call(this, event, ...args);
  };
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  }).observe({ entryTypes: ['gc'] });
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  let last = performance.now();
  let lastCpu = cpu();
  setInterval(() => {
    const now = performance.now();
    const c = cpu();
    if (now - last > minMs) {
      const row = [now - start, now - last, gcMs, c - lastCpu].map((v) => v.toFixed(1));
      fs.writeSync(out, `${row.join(' ')} ${seen.request} ${seen.upgrade} ${seen.frames}\n`);
    }
    last = now;
    lastCpu = c;
    gcMs = 0;
    seen.request = 0;
    seen.upgrade = 0;
    seen.frames = 0;
  }, 2).unref();
}

const eventsFile = process.env.BENCH_TRACE_EVENTS_FILE;
if (eventsFile && isMainThread) {
  const out = fs.openSync(eventsFile, 'w');
  let lines = [];
  const at = () => (performance.timeOrigin + performance.now()).toFixed(1);
  const flush = () => {
    if (lines.length > 0) fs.writeSync(out, `${lines.join('\n')}\n`);
    lines = [];
  };
  // The channel names of SQLITE_DIAGNOSTICS in src/storage/db.ts.
  subscribe('safechat:sqlite:commit-group', (e) => lines.push(`${at()} group ${e.units} ${e.runMs.toFixed(2)} ${e.commitMs.toFixed(2)} ${e.syncMs.toFixed(2)}`));
  const ms = (v) => (v === null ? '-' : v.toFixed(2));
  subscribe('safechat:sqlite:wal-restart', (e) => lines.push(`${at()} restart ${ms(e.pauseMs)} ${e.waiting} ${e.frames} ${ms(e.pass?.startedAfterMs ?? null)} ${ms(e.pass?.ms ?? null)} ${ms(e.pass?.cpuMs ?? null)} ${ms(e.pass?.runqMs ?? null)}`));
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.duration >= 1) lines.push(`${(performance.timeOrigin + e.startTime + e.duration).toFixed(1)} gc ${e.detail?.kind ?? 0} ${e.duration.toFixed(2)}`);
  }).observe({ entryTypes: ['gc'] });
  setInterval(flush, 500).unref();
  process.on('exit', flush);
}
