/**
 * Shared machinery of the fault suite: real server processes (spawned `node --import tsx src/main.ts`
 * children on 127.0.0.1, each with its own port, DATA_DIR and database), real HTTP and `ws` clients,
 * private PostgreSQL clusters and Redis servers, and the exactly-once accounting harness of
 * SECURITY.md §4d. Every wait is bounded; every child is killed at the end of a test, even on failure
 * (and, as a last resort, when the worker process exits).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach } from 'vitest';
import WebSocket from 'ws';

/** Response bodies and frames are whatever the server sent; the checks assert their shape. */
 
export type Json = any;

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL;
export const JWT_SECRET = 'fault-suite-only-secret-' + randomBytes(16).toString('hex');
export const PASSWORD = 'violet-Harbor-42-lantern';

// ---------------------------------------------------------------------------------------------
// time
// ---------------------------------------------------------------------------------------------

/**
 * LOAD_TEST_SCALE (default 1, at most 1): the load tests' client counts and durations are
 * multiplied by it, for short, light runs while developing. CI runs them at full size.
 */
export const LOAD_TEST_SCALE = (() => {
  const text = process.env.LOAD_TEST_SCALE;
  if (text === undefined || text === '') return 1;
  const n = Number(text);
  if (!(n > 0 && n <= 1)) throw new Error(`LOAD_TEST_SCALE must be a number in (0, 1], got "${text}"`);
  return n;
})();

export const now = (): number => performance.timeOrigin + performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` (sync or async) until it is truthy, bounded. */
export async function waitFor<T>(cond: () => T | Promise<T>, timeoutMs: number, what: string, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** The largest value (0 for none); unlike Math.max(...values) it takes arrays of any length. */
export function maxOf(values: readonly number[]): number {
  let max = 0;
  for (const v of values) if (v > max) max = v;
  return max;
}

// ---------------------------------------------------------------------------------------------
// cleanup: every child and every private service dies with the test
// ---------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
const cleanups: { name: string; fn: () => Promise<void>; sync: () => void }[] = [];
const servers = new Set<ServerProcess>();
/** The servers of the current test, kept past cleanup so a failure can still print their logs. */
let testServers: ServerProcess[] = [];

function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Registers an extra cleanup (private clusters, temp dirs); `sync` is the last-resort variant for process exit. */
export function onCleanup(name: string, fn: () => Promise<void>, sync: () => void = () => undefined): void {
  cleanups.push({ name, fn, sync });
}

/** Kills every child, runs every registered cleanup; safe to call more than once. */
export async function cleanupAll(): Promise<void> {
  for (const s of testServers) s.keepLog();
  for (const s of servers) s.dispose();
  servers.clear();
  const waits = [...children].map((c) => {
    const exited = new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
    return withTimeout(exited, 5000, 'child exit').catch(() => undefined);
  });
  await Promise.all(waits);
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    try {
      await withTimeout(c.fn(), 30_000, `cleanup ${c.name}`);
    } catch (err) {
      console.warn(`[faults] cleanup ${c.name} failed: ${(err as Error).message}`);
    }
  }
}

process.once('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c.sync();
    } catch {
      // best effort
    }
  }
});

/**
 * Per-test hooks for a fault test file: on failure, the tail of every server's log is printed;
 * after each test, everything is killed and removed.
 */
export function useFaultHooks(): void {
  beforeEach((ctx) => {
    testServers = [];
    ctx.onTestFailed(() => {
      for (const s of testServers) console.log(`---- ${s.name} log (tail) ----\n${s.logTail(60)}`);
    });
  });
  afterEach(async () => {
    await cleanupAll();
  });
}

export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `safechat-fault-${prefix}-`));
  onCleanup(`rm ${dir}`, async () => fs.rmSync(dir, { recursive: true, force: true }), () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP client (node:http, keep-alive; never throws, every request bounded)
// ---------------------------------------------------------------------------------------------

export interface HttpResult<T = Json> {
  status: number | null;
  headers: http.IncomingHttpHeaders;
  body: T;
  text: string;
  /** Network-level failure (no HTTP response): ECONNRESET, ECONNREFUSED, timeout … */
  error: string | null;
  tStart: number;
  /** When the whole request had been handed to the kernel. */
  tWritten: number | null;
  tEnd: number;
  /** The request went out on a kept-alive connection (not a new one). */
  reusedSocket: boolean;
}

export async function httpRequest<T = Json>(
  agent: http.Agent,
  method: string,
  url: string,
  opts: { token?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<HttpResult<T>> {
  const tStart = now();
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  return new Promise((resolve) => {
    let tWritten: number | null = null;
    let settled = false;
    const done = (r: Omit<HttpResult<T>, 'tStart' | 'tWritten' | 'tEnd' | 'reusedSocket'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, tStart, tWritten, tEnd: now(), reusedSocket: req.reusedSocket });
    };
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => done({ status: null, headers: {}, body: undefined as T, text: '', error: errorCode(err) }));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: Json;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          body = text;
        }
        done({ status: res.statusCode ?? null, headers: res.headers, body, text, error: null });
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error('client timeout'));
      done({ status: null, headers: {}, body: undefined as T, text: '', error: 'TIMEOUT' });
    }, opts.timeoutMs ?? 15_000);
    req.on('error', (err) => done({ status: null, headers: {}, body: undefined as T, text: '', error: errorCode(err) }));
    req.on('finish', () => (tWritten = now()));
    req.end(payload);
  });
}

function errorCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
}

// ---------------------------------------------------------------------------------------------
// server processes
// ---------------------------------------------------------------------------------------------

export interface ServerOptions {
  name?: string;
  /** Default: a fresh SQLite file in the server's own DATA_DIR. */
  databaseUrl?: string;
  redisUrl?: string;
  env?: Record<string, string>;
  /** Share one DATA_DIR (and so the default SQLite file) between instances. */
  dataDir?: string;
  /** How long `start` waits for `/health` 200 (default 20 s). */
  readyTimeoutMs?: number;
  /** A port chosen by the caller (default: a free one), e.g. to reach the server before `start` resolves. */
  port?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/**
 * One server instance: a child process on a fixed random port that survives restarts (clients
 * reconnect to the same URL), its own DATA_DIR and log file. `restart()` starts a new child on the
 * same data.
 */
/**
 * The server is started as `npm start` starts it: node's arguments read from package.json's start
 * script (V8 flags included), with a preloaded FAULT_SERVER_IMPORT going in before the entry point.
 */
const START_ARGV: string[] = (() => {
  const start = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const [node, ...argv] = start.trim().split(/\s+/);
  if (node !== 'node') throw new Error(`npm start must run node directly (it is "${start}")`);
  return argv;
})();
const START_FLAGS = START_ARGV.slice(0, -1);
const START_ARGS = START_ARGV.slice(-1);

export class ServerProcess {
  readonly url: string;
  readonly wsUrl: string;
  readonly logFile: string;
  readonly env: Record<string, string>;
  agent: http.Agent;
  child: ChildProcess | null = null;
  exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null, at: 0 });
  lastExit: ExitInfo | null = null;
  starts = 0;

  private constructor(
    readonly name: string,
    readonly port: number,
    readonly dataDir: string,
    env: Record<string, string>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}/ws`;
    this.logFile = path.join(dataDir, `${name}.log`);
    this.env = env;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    servers.add(this);
    testServers.push(this);
  }

  static async start(opts: ServerOptions = {}): Promise<ServerProcess> {
    const name = opts.name ?? 'server';
    const dataDir = opts.dataDir ?? tempDir(name);
    const port = opts.port ?? (await freePort());
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? os.tmpdir(),
      TMPDIR: os.tmpdir(),
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      DATABASE_URL: opts.databaseUrl ?? `sqlite:${path.join(dataDir, 'safechat.db')}`,
      LOG_LEVEL: 'warn',
      RATE_LIMITS: 'off',
      JWT_SECRET,
      ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}),
      ...opts.env,
    };
    const s = new ServerProcess(name, port, dataDir, env);
    await s.launch(opts.readyTimeoutMs);
    return s;
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error(`${this.name} is not running`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the child and waits for `/health` 200 (bounded); returns how long that took. */
  async launch(readyTimeoutMs = 20_000): Promise<number> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const t0 = now();
    this.starts++;
    fs.appendFileSync(this.logFile, `\n==== ${this.name} start #${this.starts} at ${new Date().toISOString()} ====\n`);
    const out = fs.openSync(this.logFile, 'a');
    // FAULT_SERVER_IMPORT: an extra module preloaded into the server (local diagnosis only, e.g. to try a fix).
    const extra = process.env.FAULT_SERVER_IMPORT ? ['--import', process.env.FAULT_SERVER_IMPORT] : [];
    const child = spawn(process.execPath, [...START_FLAGS, ...extra, ...START_ARGS], { cwd: REPO_ROOT, env: this.env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    track(child);
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.lastExit = { code, signal, at: now() };
        resolve(this.lastExit);
      }),
    );
    this.agent.destroy();
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    await waitFor(
      async () => {
        if (!this.running) throw new Error(`${this.name} exited during start (${JSON.stringify(this.lastExit)}):\n${this.logTail(30)}`);
        const r = await httpRequest(this.agent, 'GET', `${this.url}/health`, { timeoutMs: 2000 });
        return r.status === 200;
      },
      readyTimeoutMs,
      `${this.name} to answer /health 200`,
      50,
    );
    return now() - t0;
  }

  /** Throws (with the log's last lines) if the process has died: a crash must fail a test at once, clearly. */
  assertAlive(): void {
    if (!this.running) throw new Error(`${this.name} (pid ${this.child?.pid}) DIED: ${JSON.stringify(this.lastExit)}\n${this.logProblems().slice(-40).join('\n')}`);
  }

  /** `kill -9`: no handler runs, nothing is flushed. */
  async kill9(): Promise<ExitInfo> {
    const child = this.child!;
    child.kill('SIGKILL');
    return withTimeout(this.exited, 5000, `${this.name} to die`);
  }

  /** Sends SIGTERM and waits for the exit (bounded). */
  async sigterm(timeoutMs: number): Promise<ExitInfo & { ms: number }> {
    const t0 = now();
    this.child!.kill('SIGTERM');
    const e = await withTimeout(this.exited, timeoutMs, `${this.name} to exit after SIGTERM`);
    return { ...e, ms: e.at - t0 };
  }

  async restart(): Promise<number> {
    if (this.running) await this.kill9();
    return this.launch();
  }

  /** Resident set size of the server process, from /proc/<pid>/status (KiB). */
  rssKiB(): number {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : 0;
  }

  private savedLog: string | null = null;

  /** Keeps the log in memory before the temp dir goes (a failed test prints it afterwards). */
  keepLog(): void {
    this.savedLog = this.logText();
  }

  logText(): string {
    if (this.savedLog !== null) return this.savedLog;
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(lines: number): string {
    return this.logText().split('\n').slice(-lines).join('\n');
  }

  /** Log lines at pino level ≥ 50 (error, fatal) and anything that is not JSON (crashes, stack traces). */
  logProblems(): string[] {
    return this.logText()
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('===='))
      .filter((l) => {
        try {
          return (JSON.parse(l) as { level?: number }).level! >= 50;
        } catch {
          return true;
        }
      });
  }

  async get<T = Json>(p: string, token?: string, timeoutMs = 10_000): Promise<HttpResult<T>> {
    return httpRequest<T>(this.agent, 'GET', this.url + p, { ...(token ? { token } : {}), timeoutMs });
  }

  async post<T = Json>(p: string, body: unknown, token?: string, timeoutMs = 15_000): Promise<HttpResult<T>> {
    return httpRequest<T>(this.agent, 'POST', this.url + p, { body, ...(token ? { token } : {}), timeoutMs });
  }

  /** A Prometheus counter or gauge value (sum over series matching `labels`). */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return (await this.scrape()).sum(name, (ls) => Object.entries(labels).every(([k, v]) => ls[k] === v));
  }

  /** One read of `/metrics`, every series parsed. */
  async scrape(): Promise<Metrics> {
    const r = await httpRequest(this.agent, 'GET', `${this.url}/metrics`, { timeoutMs: 5000 });
    if (r.status !== 200) throw new Error(`/metrics ${r.status ?? r.error}`);
    return new Metrics(r.text);
  }

  /** CPU time (user + system, all threads) the process has used so far, in seconds, from /proc/<pid>/stat. */
  cpuSeconds(): number {
    const stat = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): utime and stime are the 12th and 13th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  }

  dispose(): void {
    this.agent.destroy();
    if (this.running) this.child!.kill('SIGKILL');
  }
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** Prometheus text, parsed: every series with its labels. */
export class Metrics {
  readonly series: { name: string; labels: Record<string, string>; value: number }[] = [];

  constructor(text: string) {
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
      this.series.push({ name: m[1]!, labels, value: Number(m[4]) });
    }
  }

  /** The sum over the series of `name` whose labels pass `filter`. */
  sum(name: string, filter: (labels: Record<string, string>) => boolean = () => true): number {
    let sum = 0;
    for (const s of this.series) if (s.name === name && filter(s.labels)) sum += s.value;
    return sum;
  }
}

/** Samples a server's RSS every `everyMs` (VmRSS from /proc), across restarts. */
export class RssSampler {
  readonly samples: { at: number; kib: number }[] = [];
  private timer: NodeJS.Timeout;

  constructor(
    private readonly server: ServerProcess,
    everyMs = 1000,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    try {
      if (this.server.running) this.samples.push({ at: now(), kib: this.server.rssKiB() });
    } catch {
      // between processes
    }
  }

  /** The average RSS (MiB) of the samples taken in [from, to), or NaN when there are none. */
  averageMiB(from: number, to: number): number {
    const kib = this.samples.filter((s) => s.at >= from && s.at < to).map((s) => s.kib);
    return kib.length === 0 ? NaN : round(kib.reduce((a, b) => a + b, 0) / kib.length / 1024);
  }

  stop(): { baselineMiB: number; maxMiB: number; lastMiB: number; growthMiB: number; samples: number } {
    clearInterval(this.timer);
    this.sample();
    const kib = this.samples.map((s) => s.kib);
    const baseline = kib[0] ?? 0;
    const max = maxOf(kib);
    return {
      baselineMiB: round(baseline / 1024),
      maxMiB: round(max / 1024),
      lastMiB: round((kib[kib.length - 1] ?? 0) / 1024),
      growthMiB: round((max - baseline) / 1024),
      samples: kib.length,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// users, chats, history
// ---------------------------------------------------------------------------------------------

export interface Session {
  id: string;
  username: string;
  token: string;
  refreshToken: string;
}

let nameCounter = 0;
export function uniqueName(prefix = 'f'): string {
  return `${prefix}${process.pid.toString(36)}_${(++nameCounter).toString(36)}_${randomBytes(3).toString('hex')}`.slice(0, 32);
}

export async function register(srv: ServerProcess, username = uniqueName()): Promise<Session> {
  const r = await srv.post('/auth/register', { username, password: PASSWORD }, undefined, 30_000);
  if (r.status !== 201) throw new Error(`register ${username}: ${r.status ?? r.error} ${r.text}`);
  return { id: r.body.user.id, username, token: r.body.accessToken, refreshToken: r.body.refreshToken };
}

/** Registers `n` users, `parallel` at a time (Argon2id is deliberately slow). */
export async function registerMany(srv: ServerProcess, n: number, parallel = 8): Promise<Session[]> {
  const out: Session[] = new Array<Session>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await register(srv);
      }
    }),
  );
  return out;
}

export async function createChat(srv: ServerProcess, a: Session, b: Session): Promise<string> {
  const r = await srv.post('/chats', { participantIds: [b.id] }, a.token);
  if (r.status !== 201 && r.status !== 200) throw new Error(`chat: ${r.status ?? r.error} ${r.text}`);
  return r.body.id as string;
}

/**
 * Opens `n` kept-alive connections in the server's agent (n parallel requests) before a burst.
 * @NOTE libuv accepts one connection per event-loop turn (libuv PR #3696), so under load a burst of
 * new connections waits in the kernel's accept queue, unseen by the server; warming the pool makes
 * every burst request travel on a connection the server has already accepted.
 */
export async function warmConnections(srv: ServerProcess, n: number): Promise<void> {
  const rs = await Promise.all(Array.from({ length: n }, () => srv.get('/health/live', undefined, 10_000)));
  const bad = rs.filter((r) => r.status !== 200);
  if (bad.length > 0) throw new Error(`warm-up: ${bad.length} of ${n} requests failed (${bad[0]!.status ?? bad[0]!.error})`);
}

export function b64(bytes: number): string {
  return randomBytes(bytes).toString('base64');
}

/** A valid envelope of random "ciphertext" (the server never decodes it). */
export interface Envelope {
  encryptedContent: string;
  iv: string;
  mac: string;
  type: 'text';
}

export function envelope(bytes = 64): Envelope {
  return { encryptedContent: b64(bytes), iv: b64(16), mac: b64(32), type: 'text' };
}

export interface WireMessage {
  id: string;
  chatId: string;
  seq: number;
  senderId: string;
  receiverId: string;
  clientMessageId?: string;
}

/** A chat's whole history as `session` sees it, oldest first (GET /messages pages of 100, walking back). */
export async function history(srv: ServerProcess, session: Session, chatId: string): Promise<WireMessage[]> {
  const pages: WireMessage[][] = [];
  let before: string | undefined;
  for (let i = 0; i < 10_000; i++) {
    const q = `limit=100${before ? `&before=${before}` : ''}`;
    const r = await srv.get<{ messages: WireMessage[]; hasMore: boolean }>(`/messages/${chatId}?${q}`, session.token, 15_000);
    if (r.status !== 200) throw new Error(`history ${chatId}: ${r.status ?? r.error} ${r.text}`);
    pages.unshift(r.body.messages);
    if (!r.body.hasMore || r.body.messages.length === 0) break;
    before = r.body.messages[0]!.id;
  }
  return pages.flat();
}

// ---------------------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------------------

export interface Frame {
  type: string;
  cursor?: string;
  requestId?: string;
  data?: Json;
  error?: { code: string; message: string; details?: unknown };
}

/** One socket lifetime: `ready` (bounded), events to a callback, `message.send` matched by requestId. */
export class LiveSocket {
  readonly ws: WebSocket;
  readonly ready: Promise<number>;
  isReady = false;
  closeCode: number | null = null;
  closeReason = '';
  closedAt: number | null = null;
  upgradeStatus: number | null = null;
  /** Bytes of every frame received on this socket. */
  bytesReceived = 0;
  private readonly pending = new Map<string, { resolve: (f: Frame | null) => void; timer: NodeJS.Timeout }>();

  constructor(
    url: string,
    token: string,
    since: number | undefined,
    handlers: { onEvent: (f: Frame, at: number) => void; onResync?: (f: Frame) => void; onClose?: (code: number, reason: string) => void },
    readyTimeoutMs = 10_000,
  ) {
    this.ws = new WebSocket(since === undefined ? url : `${url}?since=${since}`, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: readyTimeoutMs });
    this.ready = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('no ready frame in time'));
        this.ws.terminate();
      }, readyTimeoutMs);
      this.ws.on('message', (data: Buffer) => {
        const at = now();
        this.bytesReceived += data.length;
        const f = JSON.parse(data.toString('utf8')) as Frame;
        if (f.type === 'ready') {
          clearTimeout(timer);
          this.isReady = true;
          resolve(Number(f.data.cursor));
        } else if (f.type === 'resync') {
          handlers.onResync?.(f);
        } else if (f.cursor !== undefined) {
          handlers.onEvent(f, at);
        } else if ((f.type === 'message.sent' || f.type === 'error') && f.requestId !== undefined) {
          const p = this.pending.get(f.requestId);
          if (p) {
            this.pending.delete(f.requestId);
            clearTimeout(p.timer);
            p.resolve(f);
          }
        }
      });
      this.ws.on('unexpected-response', (_req, res) => {
        this.upgradeStatus = res.statusCode ?? null;
        res.resume();
        this.ws.terminate();
      });
      this.ws.on('error', () => undefined);
      this.ws.on('close', (code, reason) => {
        clearTimeout(timer);
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.closedAt = now();
        reject(new Error(`closed before ready (${code}${this.upgradeStatus ? `, upgrade ${this.upgradeStatus}` : ''})`));
        for (const [, p] of this.pending) {
          clearTimeout(p.timer);
          p.resolve(null);
        }
        this.pending.clear();
        handlers.onClose?.(code, this.closeReason);
      });
    });
    this.ready.catch(() => undefined);
  }

  get open(): boolean {
    return this.isReady && this.closeCode === null && this.ws.readyState === WebSocket.OPEN;
  }

  /** `message.send`; resolves with `message.sent`/`error`, or null when the socket closed or time ran out. */
  request(requestId: string, data: unknown, timeoutMs = 15_000): Promise<Frame | null> {
    return new Promise((resolve) => {
      if (!this.open) return resolve(null);
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        resolve(null);
      }, timeoutMs);
      this.pending.set(requestId, { resolve, timer });
      this.ws.send(JSON.stringify({ type: 'message.send', requestId, data }));
    });
  }

  /** Stops reading: the kernel buffers fill and the server's outbound queue grows. */
  pauseReading(): void {
    (this.ws as unknown as { _socket: net.Socket })._socket.pause();
  }

  resumeReading(): void {
    (this.ws as unknown as { _socket: net.Socket })._socket.resume();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// exactly-once accounting (SECURITY.md §4d)
// ---------------------------------------------------------------------------------------------

export type Via = 'rest' | 'ws';
export type Outcome = 'acked' | 'unavailable' | 'server_error' | 'rejected' | 'no_response' | 'not_sent';

export interface SendRecord {
  clientMessageId: string;
  senderId: string;
  receiverId: string;
  chatId: string;
  via: Via;
  firstTry: number;
  tries: number;
  /** The first acknowledgement: (id, seq) from a 201/200 or `message.sent`. */
  ack: { id: string; seq: number; chatId: string; status: number; at: number; try: number } | null;
  /** Every acknowledged id (a retry must return the original). */
  ackIds: Set<string>;
}

export interface Attempt {
  clientMessageId: string;
  via: Via;
  try: number;
  tStart: number;
  tWritten: number | null;
  tEnd: number;
  outcome: Outcome;
  status: number | null;
  code?: string;
  retryAfter?: string | undefined;
  error?: string | null;
  reusedSocket?: boolean;
}

export interface Receipt {
  id: string;
  seq: number;
  chatId: string;
  cursor: number;
  at: number;
}

export interface Stream {
  openedAt: number;
  since: number | undefined;
  events: Receipt[];
  closeCode: number | null;
}

export interface Accounting {
  attempted: number;
  acked: number;
  acked201: number;
  acked200: number;
  ackedWs: number;
  neverAcked: number;
  received: number;
  lost: number;
  dupWithinSocket: number;
  dupAcrossResume: number;
  outOfOrder: number;
  cursorRegressions: number;
  unexpected: number;
  ackMismatch: number;
  resyncs: number;
  sockets: number;
  latencyMs: { p50: number; p99: number; max: number; n: number };
  lostSample: string[];
}

export class Ledger {
  readonly sends = new Map<string, SendRecord>();
  readonly attempts: Attempt[] = [];
  readonly streams = new Map<string, Stream[]>();
  readonly lastCursor = new Map<string, number>();
  resyncs = 0;

  newSend(senderId: string, receiverId: string, chatId: string, via: Via): SendRecord {
    const rec: SendRecord = {
      clientMessageId: `c-${randomUUID()}`,
      senderId,
      receiverId,
      chatId,
      via,
      firstTry: 0,
      tries: 0,
      ack: null,
      ackIds: new Set(),
    };
    this.sends.set(rec.clientMessageId, rec);
    return rec;
  }

  recordAck(rec: SendRecord, m: WireMessage, status: number, at: number): void {
    rec.ackIds.add(m.id);
    rec.ack ??= { id: m.id, seq: m.seq, chatId: m.chatId, status, at, try: rec.tries };
  }

  /** A socket lifetime; it counts once `attachStream` is called (at `ready`). */
  newStream(since: number | undefined): Stream {
    return { openedAt: now(), since, events: [], closeCode: null };
  }

  attachStream(userId: string, s: Stream): void {
    let list = this.streams.get(userId);
    if (!list) this.streams.set(userId, (list = []));
    list.push(s);
  }

  /** Records an event as processed (message.new → a receipt) and advances the user's cursor. */
  recordEvent(userId: string, stream: Stream, f: Frame, at: number): void {
    const cursor = Number(f.cursor);
    if (f.type === 'message.new') stream.events.push({ id: f.data.id, seq: f.data.seq, chatId: f.data.chatId, cursor, at });
    else stream.events.push({ id: `event:${cursor}`, seq: -1, chatId: '', cursor, at });
    this.lastCursor.set(userId, cursor);
  }

  ackedRecords(): SendRecord[] {
    return [...this.sends.values()].filter((s) => s.ack !== null);
  }

  /** For each acknowledged message, has its receiver seen it (in any socket lifetime)? */
  missing(): SendRecord[] {
    const seen = this.seenIds();
    return this.ackedRecords().filter((s) => !seen.get(s.receiverId)?.has(s.ack!.id));
  }

  private seenIds(): Map<string, Map<string, number>> {
    const out = new Map<string, Map<string, number>>();
    for (const [userId, list] of this.streams) {
      const m = new Map<string, number>();
      for (const s of list) for (const e of s.events) if (!m.has(e.id)) m.set(e.id, e.at);
      out.set(userId, m);
    }
    return out;
  }

  check(): Accounting {
    const acked = this.ackedRecords();
    const seen = this.seenIds();
    const ackedIds = new Set(acked.map((s) => s.ack!.id));
    let dupWithin = 0;
    let dupAcross = 0;
    let outOfOrder = 0;
    let cursorRegressions = 0;
    let unexpected = 0;
    let received = 0;
    let sockets = 0;
    for (const [, list] of this.streams) {
      const everywhere = new Set<string>();
      const lastSeqByChat = new Map<string, number>();
      let lastCursor = -1;
      for (const s of list) {
        sockets++;
        const here = new Set<string>();
        for (const e of s.events) {
          if (e.cursor <= lastCursor) cursorRegressions++;
          lastCursor = Math.max(lastCursor, e.cursor);
          if (e.seq < 0) continue;
          if (here.has(e.id)) dupWithin++;
          else if (everywhere.has(e.id)) dupAcross++;
          here.add(e.id);
          if (!everywhere.has(e.id)) {
            everywhere.add(e.id);
            received++;
            if (!ackedIds.has(e.id)) unexpected++;
          }
          const prev = lastSeqByChat.get(e.chatId);
          if (prev !== undefined && e.seq <= prev) outOfOrder++;
          lastSeqByChat.set(e.chatId, Math.max(prev ?? 0, e.seq));
        }
      }
    }
    const lost = acked.filter((s) => !seen.get(s.receiverId)?.has(s.ack!.id));
    const latencies = acked.flatMap((s) => {
      const at = seen.get(s.receiverId)?.get(s.ack!.id);
      return at === undefined ? [] : [at - s.firstTry];
    });
    return {
      attempted: this.sends.size,
      acked: acked.length,
      acked201: acked.filter((s) => s.ack!.status === 201).length,
      acked200: acked.filter((s) => s.ack!.status === 200).length,
      ackedWs: acked.filter((s) => s.ack!.status === 0).length,
      neverAcked: this.sends.size - acked.length,
      received,
      lost: lost.length,
      dupWithinSocket: dupWithin,
      dupAcrossResume: dupAcross,
      outOfOrder,
      cursorRegressions,
      unexpected,
      ackMismatch: acked.filter((s) => s.ackIds.size > 1).length,
      resyncs: this.resyncs,
      sockets,
      latencyMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(maxOf(latencies)), n: latencies.length },
      lostSample: lost.slice(0, 5).map((s) => `${s.clientMessageId}→${s.ack!.id} seq ${s.ack!.seq}`),
    };
  }

  /** Outcome counts and response times of the attempts (optionally only those matching `filter`). */
  attemptStats(filter: (a: Attempt) => boolean = () => true) {
    const list = this.attempts.filter(filter);
    const by = (o: Outcome) => list.filter((a) => a.outcome === o).length;
    const answered = list.filter((a) => a.outcome !== 'not_sent' && a.outcome !== 'no_response');
    const rt = answered.map((a) => a.tEnd - a.tStart);
    return {
      attempts: list.length,
      acked: by('acked'),
      unavailable: by('unavailable'),
      serverError: by('server_error'),
      rejected: by('rejected'),
      noResponse: by('no_response'),
      notSent: by('not_sent'),
      unavailableWithoutRetryAfter: list.filter((a) => a.outcome === 'unavailable' && a.via === 'rest' && !a.retryAfter).length,
      responseMs: { p50: round(percentile(rt, 50)), p99: round(percentile(rt, 99)), max: round(maxOf(rt)) },
    };
  }
}

/** Everything that must be zero for "exactly once, in order, nothing lost". */
export function exactlyOnceViolations(a: Accounting): Record<string, number> {
  return {
    lost: a.lost,
    dupWithinSocket: a.dupWithinSocket,
    dupAcrossResume: a.dupAcrossResume,
    outOfOrder: a.outOfOrder,
    cursorRegressions: a.cursorRegressions,
    ackMismatch: a.ackMismatch,
    resyncs: a.resyncs,
  };
}

export interface HistoryCheck {
  chats: number;
  messages: number;
  ackedMissing: number;
  ackedWrongId: number;
  duplicateClientIds: number;
  seqNotIncreasing: number;
  unknown: number;
  /** Attempts never acknowledged whose message is nevertheless stored (committed, answer lost). */
  storedButUnacked: number;
}

/** Every acknowledged message is in GET /messages history exactly once, with its acknowledged id, in seq order. */
export async function checkHistory(srv: ServerProcess, ledger: Ledger, sessions: Map<string, Session>): Promise<HistoryCheck> {
  const byChat = new Map<string, SendRecord[]>();
  for (const s of ledger.sends.values()) {
    let l = byChat.get(s.chatId);
    if (!l) byChat.set(s.chatId, (l = []));
    l.push(s);
  }
  const out: HistoryCheck = { chats: byChat.size, messages: 0, ackedMissing: 0, ackedWrongId: 0, duplicateClientIds: 0, seqNotIncreasing: 0, unknown: 0, storedButUnacked: 0 };
  for (const [chatId, recs] of byChat) {
    const viewer = sessions.get(recs[0]!.senderId)!;
    const msgs = await history(srv, viewer, chatId);
    out.messages += msgs.length;
    const byCmid = new Map<string, WireMessage[]>();
    let prevSeq = 0;
    for (const m of msgs) {
      if (m.seq <= prevSeq) out.seqNotIncreasing++;
      prevSeq = m.seq;
      if (m.clientMessageId === undefined) {
        out.unknown++;
        continue;
      }
      let l = byCmid.get(m.clientMessageId);
      if (!l) byCmid.set(m.clientMessageId, (l = []));
      l.push(m);
    }
    for (const [cmid, l] of byCmid) {
      if (l.length > 1) out.duplicateClientIds++;
      const rec = ledger.sends.get(cmid);
      if (!rec) out.unknown++;
      else if (!rec.ack) out.storedButUnacked++;
    }
    for (const rec of recs) {
      if (!rec.ack) continue;
      const l = byCmid.get(rec.clientMessageId);
      if (!l || l.length === 0) out.ackedMissing++;
      else if (l[0]!.id !== rec.ack.id) out.ackedWrongId++;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// peers (a user with an auto-reconnecting socket) and the load generator
// ---------------------------------------------------------------------------------------------

/**
 * A user: one socket that resumes from its last processed cursor whenever it drops (back-off 200 ms
 * → 1 s), every event recorded in the ledger per socket lifetime.
 */
export class Peer {
  socket: LiveSocket | null = null;
  partner: Peer | null = null;
  chatId: string | null = null;
  disposed = false;
  reconnects = 0;
  private connecting: Promise<void> | null = null;
  private stream: Stream | null = null;
  /** Stop reconnecting by itself (the test drives the socket). */
  autoReconnect = true;

  constructor(
    readonly session: Session,
    public server: ServerProcess,
    readonly ledger: Ledger,
  ) {}

  get id(): string {
    return this.session.id;
  }

  get cursor(): number | undefined {
    return this.ledger.lastCursor.get(this.id);
  }

  /** Opens a socket (resuming from the last processed cursor, if any) and waits for `ready`. */
  async connect(timeoutMs = 10_000): Promise<void> {
    const since = this.cursor;
    const stream = this.ledger.newStream(since);
    const sock: LiveSocket = new LiveSocket(
      this.server.wsUrl,
      this.session.token,
      since,
      {
        onEvent: (f, at) => this.ledger.recordEvent(this.id, stream, f, at),
        onResync: () => this.ledger.resyncs++,
        onClose: (code) => {
          stream.closeCode = code;
          if (this.socket === sock) this.socket = null;
          if (!this.disposed && this.autoReconnect) void this.reconnectLoop();
        },
      },
      timeoutMs,
    );
    this.socket = sock;
    this.stream = stream;
    const readyCursor = await sock.ready;
    this.ledger.attachStream(this.id, stream);
    if (since === undefined) this.ledger.lastCursor.set(this.id, readyCursor);
  }

  private async reconnectLoop(): Promise<void> {
    if (this.connecting) return;
    this.connecting = (async () => {
      let delay = 200;
      while (!this.disposed && this.autoReconnect && !this.socket?.open) {
        await sleep(delay);
        if (this.disposed || !this.autoReconnect) break;
        try {
          this.reconnects++;
          await this.connect(5000);
        } catch {
          this.socket?.terminate();
          this.socket = null;
          delay = Math.min(1000, delay * 1.5);
        }
      }
    })().finally(() => (this.connecting = null));
    await this.connecting;
  }

  /** Waits until the socket is open (after a restart, the reconnect loop gets there by itself). */
  async waitOpen(timeoutMs: number): Promise<void> {
    if (!this.socket?.open && !this.connecting && this.autoReconnect) void this.reconnectLoop();
    await waitFor(() => this.socket?.open === true, timeoutMs, `${this.session.username}'s socket to open`);
  }

  /** The current socket lifetime's stream. */
  get currentStream(): Stream | null {
    return this.stream;
  }

  dispose(): void {
    this.disposed = true;
    this.socket?.terminate();
  }
}

export interface LoadOptions {
  /** Each sender sends to its partner, in the partner's one-to-one chat. */
  senders: Peer[];
  via: (peer: Peer, n: number) => Via;
  /** Messages per second per sender; undefined = as fast as `concurrency` allows. */
  rate?: number;
  /** Requests in flight per sender. */
  concurrency?: number;
  bytes?: number;
  /** Retry every unacknowledged message with the same clientMessageId (Retry-After honoured, capped at `maxBackoffMs`). */
  retry?: boolean;
  maxBackoffMs?: number;
  requestTimeoutMs?: number;
  /** New messages per sender at most. */
  limit?: number;
}

/**
 * The load generator: senders run concurrently, each with a fresh clientMessageId per message, and
 * (with `retry`) resend anything not acknowledged with the same clientMessageId until it is.
 */
export class Load {
  mode: 'run' | 'drain' | 'stopped' = 'run';
  private loops: Promise<void>[] = [];
  private retryQueues = new Map<Peer, { rec: SendRecord; notBefore: number }[]>();
  private counts = new Map<Peer, number>();
  readonly startedAt = now();

  constructor(
    readonly ledger: Ledger,
    readonly opts: LoadOptions,
  ) {
    for (const p of opts.senders) {
      this.retryQueues.set(p, []);
      this.counts.set(p, 0);
      this.loops.push(this.loop(p));
    }
  }

  /** No new messages; retries continue until every message is acknowledged (or `stop`). */
  drain(): void {
    if (this.mode === 'run') this.mode = 'drain';
  }

  get pendingRetries(): number {
    let n = 0;
    for (const q of this.retryQueues.values()) n += q.length;
    return n;
  }

  /** Waits until nothing is left to retry (bounded). */
  async settle(timeoutMs: number): Promise<void> {
    this.drain();
    await waitFor(() => this.pendingRetries === 0 && this.inFlight === 0, timeoutMs, `the load to settle (${this.pendingRetries} retries, ${this.inFlight} in flight)`, 50);
  }

  inFlight = 0;

  async stop(): Promise<void> {
    this.mode = 'stopped';
    await withTimeout(Promise.all(this.loops), 30_000, 'load generator to stop');
  }

  private async loop(peer: Peer): Promise<void> {
    const concurrency = this.opts.concurrency ?? 1;
    const interval = this.opts.rate ? 1000 / this.opts.rate : 0;
    // Spread the senders' first messages over one interval.
    let nextNew = now() + (interval > 0 ? Math.random() * interval : 0);
    const inflight = new Set<Promise<void>>();
    while (this.mode !== 'stopped') {
      if (inflight.size >= concurrency) {
        await Promise.race([...inflight, sleep(100)]);
        continue;
      }
      const t = now();
      const queue = this.retryQueues.get(peer)!;
      const due = queue.findIndex((r) => r.notBefore <= t);
      const canNew = this.mode === 'run' && (this.opts.limit === undefined || this.counts.get(peer)! < this.opts.limit);
      let rec: SendRecord | undefined;
      if (due >= 0) rec = queue.splice(due, 1)[0]!.rec;
      else if (canNew && t >= nextNew) {
        const n = this.counts.get(peer)!;
        this.counts.set(peer, n + 1);
        rec = this.ledger.newSend(peer.id, peer.partner!.id, peer.chatId!, this.opts.via(peer, n));
        nextNew = interval > 0 ? Math.max(nextNew + interval, t - 1000) : t;
      }
      if (!rec) {
        const wake = Math.min(canNew ? nextNew : Infinity, ...queue.map((r) => r.notBefore));
        await Promise.race([sleep(Math.max(1, Math.min(100, wake - t))), ...inflight]);
        continue;
      }
      this.inFlight++;
      const p: Promise<void> = this.attempt(peer, rec).finally(() => {
        inflight.delete(p);
        this.inFlight--;
      });
      inflight.add(p);
      // Never starve the event loop (an attempt can settle without any I/O, e.g. a closed socket).
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(inflight);
  }

  private async attempt(peer: Peer, rec: SendRecord): Promise<void> {
    const a = await sendOnce(this.ledger, peer, rec, { bytes: this.opts.bytes ?? 64, timeoutMs: this.opts.requestTimeoutMs ?? 15_000 });
    if (a.outcome === 'acked' || !this.opts.retry || this.mode === 'stopped') return;
    const maxBackoff = this.opts.maxBackoffMs ?? 1000;
    const ra = a.retryAfter !== undefined ? Number(a.retryAfter) * 1000 : 250;
    const backoff = Math.min(maxBackoff, Number.isFinite(ra) ? ra : 250);
    this.retryQueues.get(peer)!.push({ rec, notBefore: now() + backoff });
  }
}

/**
 * One attempt to send `rec` (a fresh message or a retry with its clientMessageId) over REST or the
 * peer's socket; the attempt and any acknowledgement are recorded in the ledger.
 */
export async function sendOnce(
  ledger: Ledger,
  peer: Peer,
  rec: SendRecord,
  opts: { via?: Via; bytes?: number; timeoutMs?: number; envelope?: Envelope } = {},
): Promise<Attempt & { message?: WireMessage }> {
  rec.tries++;
  const via = opts.via ?? rec.via;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const tStart = now();
  if (rec.firstTry === 0) rec.firstTry = tStart;
  const data = { chatId: rec.chatId, ...(opts.envelope ?? envelope(opts.bytes ?? 64)), clientMessageId: rec.clientMessageId };
  const base = { clientMessageId: rec.clientMessageId, via, try: rec.tries, tStart };
  let a: Attempt & { message?: WireMessage };
  if (via === 'rest') {
    const r = await httpRequest<WireMessage & { error?: { code: string } }>(peer.server.agent, 'POST', `${peer.server.url}/messages`, {
      token: peer.session.token,
      body: data,
      timeoutMs,
    });
    const outcome: Outcome =
      r.status === null ? 'no_response' : r.status === 201 || r.status === 200 ? 'acked' : r.status === 503 ? 'unavailable' : r.status >= 500 ? 'server_error' : 'rejected';
    a = {
      ...base,
      tWritten: r.tWritten,
      tEnd: r.tEnd,
      outcome,
      status: r.status,
      retryAfter: r.headers['retry-after'],
      error: r.error,
      reusedSocket: r.reusedSocket,
      ...(r.body?.error ? { code: r.body.error.code } : {}),
    };
    if (outcome === 'acked') {
      if (r.body.clientMessageId !== rec.clientMessageId || r.body.senderId !== peer.id) throw new Error(`ack for another message: ${r.text}`);
      ledger.recordAck(rec, r.body, r.status!, r.tEnd);
      a.message = r.body;
    }
  } else {
    const sock = peer.socket;
    if (!sock?.open) {
      a = { ...base, tWritten: null, tEnd: now(), outcome: 'not_sent', status: null };
    } else {
      const f = await sock.request(`r-${rec.clientMessageId}-${rec.tries}`, data, timeoutMs);
      const tEnd = now();
      if (f === null) a = { ...base, tWritten: tStart, tEnd, outcome: 'no_response', status: null };
      else if (f.type === 'message.sent') {
        if (f.data?.clientMessageId !== rec.clientMessageId || f.data?.senderId !== peer.id) throw new Error(`message.sent for another message: ${JSON.stringify(f)}`);
        a = { ...base, tWritten: tStart, tEnd, outcome: 'acked', status: 0, message: f.data as WireMessage };
        ledger.recordAck(rec, f.data as WireMessage, 0, tEnd);
      } else {
        const code = f.error?.code ?? 'unknown';
        const outcome: Outcome = code === 'unavailable' ? 'unavailable' : code === 'internal_error' ? 'server_error' : 'rejected';
        a = { ...base, tWritten: tStart, tEnd, outcome, status: null, code };
      }
    }
  }
  ledger.attempts.push(a);
  return a;
}

export interface PacedLoadOptions {
  /** Each sender sends to its partner, in the partner's one-to-one chat. */
  senders: Peer[];
  via: (peer: Peer) => Via;
  /** New messages per second per sender. */
  rate: number;
  /** Attempts a sender may have unanswered at once; past it, its schedule waits (and `lateMs` shows it). */
  maxInFlight?: number;
  /** Random envelopes made in advance and used in turn (default: 64 of 64 bytes). */
  envelopes?: Envelope[];
  requestTimeoutMs?: number;
  /**
   * Delay before an unacknowledged message is sent again with its clientMessageId (default 250 ms):
   * at once again while the client's own socket is down (not sent); otherwise doubled at each
   * try, and at least the server's Retry-After, up to 5 s — as a client should back off.
   */
  retryDelayMs?: number;
  tickMs?: number;
}

/**
 * A lean open-loop generator for many senders: one timer for all of them (no loop per sender),
 * each sender on a fixed schedule (`rate`, the senders spread evenly over one interval), envelopes
 * made in advance; every message gets a fresh clientMessageId and, until it is acknowledged, is
 * sent again with the same one (`retryDelayMs`). Accounting as with `Load`: every attempt and
 * acknowledgement goes into the ledger.
 */
export class PacedLoad {
  mode: 'run' | 'drain' | 'stopped' = 'run';
  readonly startedAt = now();
  inFlight = 0;
  /** How late each new message started against its schedule (ms): whether the generator kept up. */
  readonly lateMs: number[] = [];
  /** Exceptions of the accounting itself (an acknowledgement for another message …). */
  readonly errors: string[] = [];
  private readonly next: number[];
  private readonly busy: number[];
  private readonly retries: { i: number; rec: SendRecord; notBefore: number }[] = [];
  private readonly envelopes: Envelope[];
  private readonly interval: number;
  private used = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly ledger: Ledger,
    readonly opts: PacedLoadOptions,
  ) {
    const n = opts.senders.length;
    this.interval = 1000 / opts.rate;
    this.next = opts.senders.map((_, i) => this.startedAt + (i * this.interval) / n);
    this.busy = opts.senders.map(() => 0);
    this.envelopes = opts.envelopes ?? Array.from({ length: 64 }, () => envelope(64));
    this.timer = setInterval(() => this.tick(), opts.tickMs ?? 10);
  }

  /** Messages started so far (first attempts). */
  get started(): number {
    return this.lateMs.length;
  }

  get pendingRetries(): number {
    return this.retries.length;
  }

  /** No new messages; retries go on until every message is acknowledged (or `stop`). */
  drain(): void {
    if (this.mode === 'run') this.mode = 'drain';
  }

  /** Drains and waits until nothing is left in flight or to retry (bounded). */
  async settle(timeoutMs: number): Promise<void> {
    this.drain();
    await waitFor(() => this.retries.length === 0 && this.inFlight === 0, timeoutMs, `the load to settle (${this.retries.length} retries, ${this.inFlight} in flight)`, 50);
  }

  /** Stops everything; attempts in flight are awaited (bounded by their own timeout). */
  async stop(): Promise<void> {
    this.mode = 'stopped';
    clearInterval(this.timer);
    await waitFor(() => this.inFlight === 0, (this.opts.requestTimeoutMs ?? 15_000) + 5000, 'the attempts in flight to end', 50);
  }

  private tick(): void {
    const t = now();
    if (this.retries.length > 0) {
      const due = this.retries.filter((r) => r.notBefore <= t);
      if (due.length > 0) {
        const later = this.retries.filter((r) => r.notBefore > t);
        this.retries.length = 0;
        this.retries.push(...later);
        for (const r of due) this.start(r.i, r.rec);
      }
    }
    if (this.mode !== 'run') return;
    const max = this.opts.maxInFlight ?? 8;
    const senders = this.opts.senders;
    for (let i = 0; i < senders.length; i++) {
      while (this.next[i]! <= t && this.busy[i]! < max) {
        this.lateMs.push(t - this.next[i]!);
        this.next[i]! += this.interval;
        const p = senders[i]!;
        this.start(i, this.ledger.newSend(p.id, p.partner!.id, p.chatId!, this.opts.via(p)));
      }
    }
  }

  private start(i: number, rec: SendRecord): void {
    this.busy[i]!++;
    this.inFlight++;
    const env = this.envelopes[this.used++ % this.envelopes.length]!;
    sendOnce(this.ledger, this.opts.senders[i]!, rec, { envelope: env, timeoutMs: this.opts.requestTimeoutMs ?? 15_000 })
      .then(
        (a) => {
          if (a.outcome === 'acked' || this.mode === 'stopped') return;
          const base = this.opts.retryDelayMs ?? 250;
          const retryAfterMs = a.retryAfter !== undefined && Number.isFinite(Number(a.retryAfter)) ? Number(a.retryAfter) * 1000 : 0;
          const delay = a.outcome === 'not_sent' ? base : Math.min(5000, Math.max(retryAfterMs, base * 2 ** Math.min(5, rec.tries - 1)));
          this.retries.push({ i, rec, notBefore: now() + delay });
        },
        (err: unknown) => {
          this.errors.push((err as Error).message);
        },
      )
      .finally(() => {
        this.busy[i]!--;
        this.inFlight--;
      });
  }
}

/** Pairs peers (0↔1, 2↔3, …) in one-to-one chats created on `srv`. */
export async function pairUp(srv: ServerProcess, peers: Peer[]): Promise<void> {
  for (let i = 0; i + 1 < peers.length; i += 2) {
    const a = peers[i]!;
    const b = peers[i + 1]!;
    const chatId = await createChat(srv, a.session, b.session);
    a.partner = b;
    b.partner = a;
    a.chatId = b.chatId = chatId;
  }
}

/** Waits until every acknowledged message has reached its receiver (bounded); returns how long it took. */
export async function waitDelivered(ledger: Ledger, timeoutMs: number): Promise<number> {
  const t0 = now();
  await waitFor(() => ledger.missing().length === 0, timeoutMs, `every acknowledged message to be delivered (${ledger.missing().length} missing)`, 100).catch(() => undefined);
  return now() - t0;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: fresh databases on TEST_DATABASE_URL, private clusters for restarts
// ---------------------------------------------------------------------------------------------

/** A fresh database on the TEST_DATABASE_URL server, dropped at cleanup; returns its URL. */
export async function freshDatabase(adminUrl: string): Promise<string> {
  const name = `safechat_fault_${randomBytes(5).toString('hex')}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  onCleanup(`drop database ${name}`, async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(`drop database if exists ${name} with (force)`);
    } finally {
      await c.end();
    }
  });
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

function pgBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return null;
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')) && fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : null;
}

/** Why a private PostgreSQL cluster cannot be made here, or null when it can. */
export function pgClusterUnavailable(): string | null {
  const bin = pgBinDir();
  if (!bin) return 'PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl) are not installed';
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root but there is no "postgres" OS user to run initdb as';
  return null;
}

function execAsync(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number | null) ?? 1 : 0;
      resolve({ code: typeof code === 'number' ? code : 1, out: `${stdout}${stderr}` });
    });
  });
}

/**
 * A private PostgreSQL cluster in a temp dir (initdb as the `postgres` OS user when running as
 * root), on a free port with trust auth and its socket in the temp dir: restarting it touches
 * nothing else on the machine.
 */
export class PgCluster {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  url(db = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }

  private cmd(args: string[]): [string, string[]] {
    return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', ...args]] : [args[0]!, args.slice(1)];
  }

  private async run(args: string[], timeoutMs = 60_000): Promise<string> {
    const [c, a] = this.cmd(args);
    const r = await execAsync(c, a, timeoutMs);
    if (r.code !== 0) throw new Error(`${args.join(' ')} failed (${r.code}): ${r.out}`);
    return r.out;
  }

  static async create(): Promise<PgCluster> {
    const bin = pgBinDir();
    if (!bin) throw new Error('no PostgreSQL binaries');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safechat-fault-pg-'));
    if (process.getuid?.() === 0) {
      const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
      const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
      fs.chownSync(dir, Number(ids.stdout.trim()), Number(gid.stdout.trim()));
    }
    const port = await freePort();
    const c = new PgCluster(dir, port, bin);
    onCleanup(
      `pg cluster ${dir}`,
      async () => {
        await c.run([path.join(bin, 'pg_ctl'), '-D', c.dataDir, '-m', 'immediate', '-w', '-t', '20', 'stop'], 30_000).catch(() => undefined);
        fs.rmSync(dir, { recursive: true, force: true });
      },
      () => {
        const [cmd, args] = c.cmd([path.join(bin, 'pg_ctl'), '-D', c.dataDir, '-m', 'immediate', 'stop']);
        spawnSync(cmd, args, { timeout: 20_000 });
        fs.rmSync(dir, { recursive: true, force: true });
      },
    );
    await c.run([path.join(bin, 'initdb'), '-D', c.dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions'], 120_000);
    // Durability as in production: fsync and synchronous_commit stay on (the defaults), said out loud.
    fs.appendFileSync(
      path.join(c.dataDir, 'postgresql.conf'),
      `\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nfsync = on\nsynchronous_commit = on\nmax_connections = 100\nshared_buffers = 32MB\n`,
    );
    await c.start();
    return c;
  }

  async start(): Promise<void> {
    await this.run([path.join(this.bin, 'pg_ctl'), '-D', this.dataDir, '-l', path.join(this.dir, 'pg.log'), '-w', '-t', '60', 'start']);
  }

  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    await this.run([path.join(this.bin, 'pg_ctl'), '-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  }

  async restart(mode: 'fast' | 'immediate'): Promise<void> {
    await this.run([path.join(this.bin, 'pg_ctl'), '-D', this.dataDir, '-l', path.join(this.dir, 'pg.log'), '-m', mode, '-w', '-t', '60', 'restart']);
  }
}

/**
 * Straight from the database (the server stopped for SQLite): duplicate (sender, clientMessageId)
 * rows, duplicate (chat, seq), the message count, and SQLite's integrity_check.
 */
export async function inspectDatabase(databaseUrl: string): Promise<{ messages: number; duplicateClientIds: number; duplicateSeqs: number; integrity: string }> {
  const dupCmid = `select count(*) as n from (select sender_id, client_message_id from messages where client_message_id is not null group by sender_id, client_message_id having count(*) > 1) d`;
  const dupSeq = `select count(*) as n from (select chat_id, seq from messages group by chat_id, seq having count(*) > 1) d`;
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new BetterSqlite3(databaseUrl.slice('sqlite:'.length), { fileMustExist: true });
    try {
      const integrity = (db.pragma('integrity_check', { simple: true }) as string) ?? 'unknown';
      const n = (q: string) => Number((db.prepare(q).get() as { n: number }).n);
      return { messages: n('select count(*) as n from messages'), duplicateClientIds: n(dupCmid), duplicateSeqs: n(dupSeq), integrity };
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const n = async (q: string) => Number((await c.query<{ n: string }>(q)).rows[0]!.n);
    return { messages: await n('select count(*) as n from messages'), duplicateClientIds: await n(dupCmid), duplicateSeqs: await n(dupSeq), integrity: 'n/a (PostgreSQL)' };
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------------------------------------
// Redis: a private server that can be killed and restarted on the same port
// ---------------------------------------------------------------------------------------------

export function redisUnavailable(): string | null {
  return spawnSync('redis-server', ['--version']).status === 0 ? null : 'redis-server is not installed';
}

export class PrivateRedis {
  child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort(), tempDir('redis'));
    await r.launch();
    return r;
  }

  async launch(): Promise<void> {
    const out = fs.openSync(path.join(this.dir, 'redis.log'), 'a');
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir], {
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    track(child);
    this.child = child;
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(this.port, '127.0.0.1');
          s.once('connect', () => {
            s.write('PING\r\n');
            s.once('data', (d) => {
              s.destroy();
              resolve(d.toString().startsWith('+PONG'));
            });
          });
          s.once('error', () => resolve(false));
          s.setTimeout(1000, () => {
            s.destroy();
            resolve(false);
          });
        }),
      10_000,
      'redis-server to answer PING',
      50,
    );
  }

  /** `kill -9` of Redis: subscribers and publishers lose their connections at once. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await withTimeout(exited, 5000, 'redis to die');
  }
}

/**
 * A private Redis and two server instances sharing it and one database: the SQLite file of a shared
 * DATA_DIR, or `databaseUrl`. Instance names are `<label>-A` and `<label>-B`.
 */
export async function twoInstances(label: string, databaseUrl?: string): Promise<{ redis: PrivateRedis; a: ServerProcess; b: ServerProcess }> {
  const redis = await PrivateRedis.start();
  const common = { redisUrl: redis.url, dataDir: tempDir(label), ...(databaseUrl ? { databaseUrl } : {}) };
  const a = await ServerProcess.start({ name: `${label}-A`, ...common });
  const b = await ServerProcess.start({ name: `${label}-B`, ...common });
  return { redis, a, b };
}

// ---------------------------------------------------------------------------------------------
// the server's own event-loop delay, the machine's limits
// ---------------------------------------------------------------------------------------------

/**
 * The server's event-loop delay from its own `/metrics`: prom-client's `monitorEventLoopDelay`
 * histogram (10 ms resolution, so every value includes those 10 ms) is reset at each scrape, so
 * each scrape gives the p99 and max of the interval since the previous one. The first scrape
 * only starts the first interval.
 */
export class LoopLagSampler {
  readonly intervals: { at: number; p99Ms: number; maxMs: number; extra: Record<string, number> }[] = [];
  failures = 0;
  private readonly timer: NodeJS.Timeout;
  private last: Promise<void>;

  /** `extra`: more figures read from the same scrape, kept with each interval (counters, gauges). */
  constructor(
    private readonly server: ServerProcess,
    everyMs = 10_000,
    private readonly extra: (m: Metrics) => Record<string, number> = () => ({}),
  ) {
    this.last = this.scrape(false);
    this.timer = setInterval(() => {
      this.last = this.scrape(true);
    }, everyMs);
  }

  private async scrape(keep: boolean): Promise<void> {
    try {
      const m = await this.server.scrape();
      const p99 = m.sum('safechat_nodejs_eventloop_lag_p99_seconds') * 1000;
      const max = m.sum('safechat_nodejs_eventloop_lag_max_seconds') * 1000;
      if (keep) this.intervals.push({ at: now(), p99Ms: round(p99), maxMs: round(max), extra: this.extra(m) });
    } catch {
      this.failures++;
    }
  }

  /** Ends the last interval; returns the worst interval p99 (an upper bound of the whole run's p99), their median, and the longest delay. */
  async stop(): Promise<{ intervals: number; p99MaxMs: number; p99MedianMs: number; maxMs: number; failures: number }> {
    clearInterval(this.timer);
    await this.last;
    await this.scrape(true);
    const p99s = this.intervals.map((i) => i.p99Ms);
    return {
      intervals: this.intervals.length,
      p99MaxMs: round(maxOf(p99s)),
      p99MedianMs: round(percentile(p99s, 50)),
      maxMs: round(maxOf(this.intervals.map((i) => i.maxMs))),
      failures: this.failures,
    };
  }
}

/** This process's soft limit of open files (`ulimit -n`), from /proc/self/limits. */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// figures
// ---------------------------------------------------------------------------------------------

/** One JSON line per test (`FAULT-FIGURES {...}`) for docs/faults.md; also appended to $FAULT_FIGURES_FILE. */
export function reportFigures(test: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({ test, date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, ...figures });
  console.log(`FAULT-FIGURES ${line}`);
  const file = process.env.FAULT_FIGURES_FILE;
  if (file) fs.appendFileSync(file, line + '\n');
}
