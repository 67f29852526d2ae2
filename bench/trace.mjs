// Preloaded into a server process by `npm run bench -- --trace` (node --import): writes one line
// for every turn of the event loop longer than BENCH_TRACE_MS (40 by default) to BENCH_TRACE_FILE,
// with what the turn held: GC time, the process's CPU time (all threads), HTTP requests,
// WebSocket upgrades and WebSocket frames that arrived. A turn with CPU ≈ its length and no
// requests, upgrades or GC is the server's own work (a commit group, its answers); CPU well below
// it means the main thread waited for a core. Plain JavaScript: Node built-ins and the repo's `ws`
// (the same module the server and the relay load, so its frames are counted), no TypeScript loader.
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
