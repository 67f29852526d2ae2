/**
 * `npm run bench`: every scenario in one invocation, against the same load generator, with each
 * server scenario's throughput expressed as a ratio to the bare `ws` relay measured in the same
 * run (the machines are shared and noisy; absolute figures drift, same-run ratios much less).
 *
 *   npm run bench                                  # everything (≈ 5–6 minutes)
 *   npm run bench -- --quick                       # ≈ 1 minute (1½ with PostgreSQL + Redis): CI
 *   npm run bench -- --scenarios ws-send           # one scenario (+ the relay, for its ratios)
 *   npm run bench -- --scenarios ws-send --profile # and a CPU profile of the server, top self time printed
 *   npm run bench -- --scenarios ws-send --trace   # and the server's long event-loop turns (bench/trace.mjs)
 *
 * Scenarios: relay, ws-send, rest-send, idle-relay, idle, ws-send-pg (TEST_DATABASE_URL),
 * ws-send-redis (TEST_DATABASE_URL + TEST_REDIS_URL). Default: all that can run here.
 *
 * Flags: --quick, --scenarios a,b, --no-relay (do not add the relay to --scenarios), --users N,
 * --duration S (measured seconds per phase), --warmup S, --window W (closed loop: messages in
 * flight per user), --contacts K, --rates 1000,5000, --idle-sockets N, --burst N, --profile,
 * --trace, --no-pin, --out FILE.
 *
 * Exits non-zero when any message is lost, unacknowledged, duplicated, out of order, misrouted or
 * refused for good, when an idle socket is dropped, or when a scenario cannot run — never because
 * of a figure. Writes a table on stdout and bench/results/latest.json (not on SIGINT).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { sleep, type GenConfig, type GenResult, type PhaseResult, type ScenarioName } from './lib.js';
import { formatProfile, summarizeProfile, type ProfileSummary, type ProfileWindow } from './profile.js';
import { explainTail } from './tail.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = path.join(ROOT, 'bench', 'results');
const PROFILES = path.join(RESULTS, 'profiles');
const TRACES = path.join(RESULTS, 'traces');
const ALL: ScenarioName[] = ['relay', 'ws-send', 'rest-send', 'idle-relay', 'idle', 'ws-send-pg', 'ws-send-redis'];

// ---------------------------------------------------------------- options

interface Options {
  quick: boolean;
  scenarios: ScenarioName[];
  users: number;
  durationS: number;
  warmupS: number;
  window: number;
  contacts: number;
  rates: number[];
  idleSockets: number;
  idleUsers: number;
  burst: number;
  profile: boolean;
  trace: boolean;
  pin: boolean;
  out: string;
  drainTimeoutS: number;
}

function parseArgs(argv: string[]): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) flags.set(a.slice(2), argv[++i]!);
    else flags.set(a.slice(2), true);
  }
  const known = ['quick', 'scenarios', 'no-relay', 'users', 'duration', 'warmup', 'window', 'contacts', 'rates', 'idle-sockets', 'burst', 'profile', 'trace', 'no-pin', 'out', 'help'];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`unknown flag --${k} (known: ${known.map((x) => `--${x}`).join(' ')})`);
  if (flags.has('help')) {
    console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
    process.exit(0);
  }
  const quick = flags.has('quick');
  const num = (k: string, dflt: number, min = 1) => {
    const v = flags.get(k);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (v === true || !Number.isFinite(n) || n < min) throw new Error(`--${k} needs a number ≥ ${min}`);
    return n;
  };
  let scenarios: ScenarioName[];
  const s = flags.get('scenarios');
  if (typeof s === 'string') {
    scenarios = s.split(',').map((x) => x.trim()) as ScenarioName[];
    for (const x of scenarios) if (!ALL.includes(x)) throw new Error(`unknown scenario ${x} (known: ${ALL.join(', ')})`);
    // Ratios need the relay of the same run.
    if (!flags.has('no-relay')) {
      if (scenarios.some((x) => x !== 'relay' && x !== 'idle' && x !== 'idle-relay') && !scenarios.includes('relay')) scenarios.unshift('relay');
      if (scenarios.includes('idle') && !scenarios.includes('idle-relay')) scenarios.unshift('idle-relay');
    }
  } else {
    scenarios = ['relay', 'ws-send', 'rest-send', 'idle-relay', 'idle'];
    if (process.env.TEST_DATABASE_URL) scenarios.push('ws-send-pg');
    if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) scenarios.push('ws-send-redis');
  }
  const rates = flags.get('rates');
  if (rates === true || (typeof rates === 'string' && rates.split(',').some((r) => !(Number(r) > 0)))) throw new Error('--rates needs positive numbers, e.g. 1000,5000');
  return {
    quick,
    scenarios,
    users: num('users', quick ? 40 : 200, 2),
    durationS: num('duration', quick ? 2 : 15),
    warmupS: num('warmup', quick ? 1 : 3, 0),
    window: num('window', 8),
    contacts: num('contacts', 8),
    rates: typeof rates === 'string' ? rates.split(',').map(Number) : [1000, 5000],
    idleSockets: num('idle-sockets', quick ? 2000 : 10_000),
    idleUsers: quick ? 10 : 50,
    burst: num('burst', quick ? 500 : 2000),
    profile: flags.has('profile'),
    trace: flags.has('trace'),
    pin: !flags.has('no-pin'),
    out: typeof flags.get('out') === 'string' ? path.resolve(flags.get('out') as string) : path.join(RESULTS, 'latest.json'),
    drainTimeoutS: quick ? 20 : 60,
  };
}

// ---------------------------------------------------------------- processes

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  exitCode: number | null | undefined;
  logFile: string | null;
}

const children = new Set<Child>();
const cleanups: (() => Promise<void>)[] = [];

function hardNofile(): number {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 0;
  } catch {
    return 0;
  }
}

const canPin = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return os.availableParallelism() >= 2;
  } catch {
    return false;
  }
})();

/**
 * Starts `node <nodeArgs>` in its own process group (so that it and anything it starts can be
 * killed together), with the open-files limit raised to the hard limit and, when possible,
 * pinned to `core`.
 */
function startNode(name: string, nodeArgs: string[], env: NodeJS.ProcessEnv, core: number | null, logFile: string | null): Child {
  const cmd = [...(core !== null ? ['taskset', '-c', String(core)] : []), process.execPath, ...nodeArgs];
  const out = logFile ? fs.openSync(logFile, 'a') : 'inherit';
  const proc = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...cmd], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', out, out === 'inherit' ? 'inherit' : out],
  });
  if (typeof out === 'number') fs.closeSync(out);
  const child: Child = {
    name,
    proc,
    pid: proc.pid!,
    exitCode: undefined,
    logFile,
    exited: new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        child.exitCode = code ?? (signal ? -1 : null);
        children.delete(child);
        resolve(code);
      });
      proc.once('error', () => resolve(-1));
    }),
  };
  children.add(child);
  return child;
}

function killGroup(child: Child, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after `graceMs`: the group is gone when this returns. */
async function stop(child: Child, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== undefined) {
    killGroup(child, 'SIGKILL');
    return;
  }
  killGroup(child, 'SIGTERM');
  const t = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(t);
  killGroup(child, 'SIGKILL');
}

function killAllNow(): void {
  for (const c of children) killGroup(c, 'SIGKILL');
}

let interrupted = false;
let signalCleanup: Promise<void> = Promise.resolve();
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    interrupted = true;
    log(`${sig}: stopping every child process; no results are written`);
    killAllNow();
    signalCleanup = runCleanups().finally(() => process.exit(130));
  });
}

async function runCleanups(): Promise<void> {
  const all = cleanups.splice(0);
  await Promise.race([Promise.allSettled(all.reverse().map((f) => f())), sleep(10_000)]);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitHealthy(child: Child, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== undefined) throw new Error(`${child.name} exited with ${child.exitCode} during start${logTail(child)}`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`${child.name} not healthy within ${timeoutMs} ms${logTail(child)}`);
}

function logTail(child: Child): string {
  if (!child.logFile) return '';
  try {
    return `\n${fs.readFileSync(child.logFile, 'utf8').split('\n').slice(-15).join('\n')}`;
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------- targets

interface Target {
  urls: string[];
  pids: number[];
  children: Child[];
  auxProcNames: string[];
  logFiles: string[];
}

const baseEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME, LANG: process.env.LANG ?? 'C.UTF-8' });

/** One directory per process: tsx's loader thread writes a (small) profile of its own next to the main thread's. */
function profileDir(name: string): string {
  return path.join(PROFILES, name);
}

function profileArgs(name: string, opts: Options): string[] {
  if (!opts.profile) return [];
  const dir = profileDir(name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/**
 * `--trace`: node arguments and environment that preload bench/trace.mjs, writing a server's long
 * turns to traces/<name>.log and its events to traces/<name>.events.log.
 */
function traceSetup(name: string, opts: Options): { args: string[]; env: NodeJS.ProcessEnv } {
  if (!opts.trace) return { args: [], env: {} };
  fs.mkdirSync(TRACES, { recursive: true });
  return {
    args: ['--import', path.join(ROOT, 'bench', 'trace.mjs')],
    env: { BENCH_TRACE_FILE: path.join(TRACES, `${name}.log`), BENCH_TRACE_EVENTS_FILE: path.join(TRACES, `${name}.events.log`) },
  };
}

/** `--trace`: the generator's list of late messages (bench/tail.ts reads it with the servers' events). */
const lateFile = (scenario: string) => path.join(TRACES, `${scenario}.late.log`);

/** The main thread's profile: the largest file in the process's directory. */
function mainProfile(name: string): string | null {
  const dir = profileDir(name);
  let best: { file: string; size: number } | null = null;
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!f.endsWith('.cpuprofile')) continue;
    const size = fs.statSync(path.join(dir, f)).size;
    if (!best || size > best.size) best = { file: path.join(dir, f), size };
  }
  return best?.file ?? null;
}

/**
 * The saturated phase's window on the monotonic clock of V8's profiles (`process.hrtime`'s), or
 * undefined (no such phase: the whole profile counts).
 */
function saturatedWindow(gen: GenResult | undefined): ProfileWindow | undefined {
  const phase = gen?.phases.find((p) => p.kind === 'closed' && !p.skipped);
  if (!phase) return undefined;
  const monotonicMinusEpochUs = Number(process.hrtime.bigint() / 1000n) - (performance.timeOrigin + performance.now()) * 1000;
  const [from, to] = phase.windowEpochMs;
  return { fromUs: from * 1000 + monotonicMinusEpochUs, toUs: to * 1000 + monotonicMinusEpochUs, label: `the ${phase.name} window, ${phase.windowS} s` };
}

/**
 * `npm start` after `node`: the benchmark starts the server exactly as production does, V8 flags
 * included. The relay gets the same runtime flags (the `--name=value` ones), so both run alike.
 */
const START_ARGV: string[] = (() => {
  const start = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const [node, ...argv] = start.trim().split(/\s+/);
  if (node !== 'node') throw new Error(`npm start must run node directly (it is "${start}")`);
  return argv;
})();
/** The `start` command's node and V8 flags (not its `--import` loader): the relay runs with them too. */
const RUNTIME_FLAGS = START_ARGV.filter((a, i) => a.startsWith('--') && a !== '--import' && START_ARGV[i - 1] !== '--import');

async function startRelay(name: string, opts: Options, tmp: string, serverCore: number | null): Promise<Target> {
  const port = await freePort();
  const logFile = path.join(tmp, `${name}.log`);
  const trace = traceSetup(name, opts);
  const child = startNode(name, [...profileArgs(name, opts), ...trace.args, ...RUNTIME_FLAGS, '--import', 'tsx', 'bench/relay.ts'], { ...baseEnv(), ...trace.env, HOST: '127.0.0.1', PORT: String(port) }, serverCore, logFile);
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(child, url);
  return { urls: [url], pids: [child.pid], children: [child], auxProcNames: [], logFiles: [logFile] };
}

interface ServerSetup {
  instances: number;
  databaseUrl: string;
  redisUrl?: string;
  auxProcNames: string[];
}

async function startServers(name: string, opts: Options, tmp: string, serverCore: number | null, setup: ServerSetup): Promise<Target> {
  const jwtSecret = randomBytes(32).toString('hex');
  const target: Target = { urls: [], pids: [], children: [], auxProcNames: setup.auxProcNames, logFiles: [] };
  // One after the other: the first applies the migrations.
  for (let i = 0; i < setup.instances; i++) {
    const port = await freePort();
    const logFile = path.join(tmp, `${name}-${i}.log`);
    const env: NodeJS.ProcessEnv = {
      ...baseEnv(),
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: setup.databaseUrl,
      DATA_DIR: tmp,
      JWT_SECRET: jwtSecret,
      RATE_LIMITS: 'off',
      LOG_LEVEL: 'warn',
      // Long enough that no socket reaches its token's expiry during a run.
      ACCESS_TOKEN_TTL: '12h',
      ...(setup.redisUrl ? { REDIS_URL: setup.redisUrl } : {}),
    };
    const trace = traceSetup(`${name}-${i}`, opts);
    // BENCH_SERVER_IMPORT: a module preloaded into every server (local diagnosis only, e.g. a heap sampler); its BENCH_* variables pass through.
    const extra = process.env.BENCH_SERVER_IMPORT ? ['--import', path.resolve(process.env.BENCH_SERVER_IMPORT)] : [];
    const passed = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')));
    const child = startNode(`${name}#${i}`, [...profileArgs(`${name}-${i}`, opts), ...trace.args, ...extra, ...START_ARGV], { ...passed, ...env, ...trace.env }, serverCore, logFile);
    target.children.push(child);
    target.pids.push(child.pid);
    target.logFiles.push(logFile);
    const url = `http://127.0.0.1:${port}`;
    target.urls.push(url);
    await waitHealthy(child, url);
  }
  return target;
}

/** A fresh PostgreSQL database for one scenario, dropped afterwards (also on failure). */
async function freshPgDatabase(tag: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const adminUrl = process.env.TEST_DATABASE_URL!;
  const name = `safechat_bench_${tag}`;
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  let dropping: Promise<void> | null = null;
  const drop = () => (dropping ??= dropDatabase());
  const dropDatabase = async () => {
    const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
    try {
      await c.connect();
      await c.query(`drop database if exists "${name}" with (force)`);
    } catch (err) {
      log(`could not drop database ${name}: ${(err as Error).message}`);
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  cleanups.push(drop);
  return { url: u.toString(), drop };
}

// ---------------------------------------------------------------- scenarios

interface ScenarioResult {
  scenario: ScenarioName;
  status: 'ok' | 'failed';
  error?: string;
  description: string;
  instances: number;
  durationMs: number;
  gen?: GenResult;
  serverLog?: { warnings: number; errors: number; samples: string[] };
  profiles?: ProfileSummary[];
  summary?: Summary;
  warnings?: string[];
}

interface Summary {
  saturatedMsgPerSec: number | null;
  ratioToRelay: number | null;
  /** Relay CPU µs/msg ÷ this scenario's: the throughput ratio if both were CPU-bound, much less sensitive to other load. */
  cpuRatioToRelay: number | null;
  at1k: PhaseResult['latencyMs'] | null;
  at5k: PhaseResult['latencyMs'] | null;
  overloadedAt: number[];
  /** Every open-loop rate of the run (at1k / at5k are the issue's two). */
  latencyByRate: Record<string, PhaseResult['latencyMs'] & { overloaded: boolean }>;
  serverCpuPct: number | null;
  genCpuPct: number | null;
  auxCpuPct: number | null;
  otherCpuPct: number | null;
  serverRunqWaitPct: number | null;
  ioPressurePct: number | null;
  cpuUsPerMsg: number | null;
  serverRssMiB: number | null;
  serverLoopMaxMs: number | null;
  genLoopMaxMs: number | null;
  maxGapGlobalMs: number | null;
  maxGapPerReceiverMs: number | null;
  lost: number;
  unacked: number;
  duplicates: number;
  outOfOrder: number;
  misrouted: number;
  errors: number;
  retries: number;
  socketsClosed: number;
  idleKiBPerSocket?: number;
  idleRatioToRelay?: number | null;
  burstReadyMs?: number | null;
}

const DESCRIPTIONS: Record<ScenarioName, string> = {
  relay: 'bare ws relay (bench/relay.ts): parse, forward message.new, ack message.sent; no auth, no storage',
  'ws-send': 'server, SQLite file (WAL, synchronous=FULL), send message.send, receive message.new',
  'rest-send': 'server, SQLite file, send POST /messages (keep-alive), receive message.new',
  'idle-relay': 'idle sockets on the bare relay (baseline for RSS per socket)',
  idle: 'idle authenticated sockets on the server (SQLite): RSS per socket, burst connect time',
  'ws-send-pg': 'server on PostgreSQL (fresh database), message.send',
  'ws-send-redis': 'two server instances, PostgreSQL + Redis fan-out, users spread over both, message.send',
};

async function runScenario(name: ScenarioName, opts: Options, runTag: string, clkTck: number): Promise<ScenarioResult> {
  const started = Date.now();
  const res: ScenarioResult = { scenario: name, status: 'ok', description: DESCRIPTIONS[name], instances: 1, durationMs: 0 };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `safechat-bench-${name}-`));
  cleanups.push(async () => fs.rmSync(tmp, { recursive: true, force: true }));
  const serverCore = opts.pin && canPin ? 0 : null;
  const genCore = opts.pin && canPin ? 1 : null;
  let target: Target | null = null;
  let pgDb: { url: string; drop: () => Promise<void> } | null = null;
  try {
    if ((name === 'ws-send-pg' || name === 'ws-send-redis') && !process.env.TEST_DATABASE_URL) throw new Error('TEST_DATABASE_URL is not set');
    if (name === 'ws-send-redis' && !process.env.TEST_REDIS_URL) throw new Error('TEST_REDIS_URL is not set');
    if (name === 'relay' || name === 'idle-relay') {
      target = await startRelay(name, opts, tmp, serverCore);
    } else {
      let setup: ServerSetup = { instances: 1, databaseUrl: `sqlite:${path.join(tmp, 'bench.db')}`, auxProcNames: [] };
      if (name === 'ws-send-pg' || name === 'ws-send-redis') {
        pgDb = await freshPgDatabase(`${runTag}_${name.replace(/-/g, '_')}`);
        setup = { instances: 1, databaseUrl: pgDb.url, auxProcNames: ['postgres'] };
        if (name === 'ws-send-redis') setup = { instances: 2, databaseUrl: pgDb.url, redisUrl: process.env.TEST_REDIS_URL!, auxProcNames: ['postgres', 'redis-server'] };
      }
      target = await startServers(name, opts, tmp, serverCore, setup);
      res.instances = setup.instances;
    }
    const isIdle = name === 'idle' || name === 'idle-relay';
    const resultFile = path.join(tmp, 'result.json');
    const cfg: GenConfig = {
      scenario: name,
      target: name === 'relay' || name === 'idle-relay' ? 'relay' : 'server',
      urls: target.urls,
      send: name === 'rest-send' ? 'rest' : 'ws',
      users: opts.users,
      contacts: opts.contacts,
      window: opts.window,
      httpConns: 4,
      warmupS: opts.warmupS,
      durationS: opts.durationS,
      rates: opts.rates,
      drainTimeoutS: opts.drainTimeoutS,
      serverPids: target.pids,
      auxProcNames: target.auxProcNames,
      clkTck,
      ...(isIdle ? { idle: { sockets: opts.idleSockets, users: opts.idleUsers, burst: Math.min(opts.burst, opts.idleSockets), settleS: opts.quick ? 0.5 : 2 } } : {}),
      resultFile,
      runTag: `${runTag}${ALL.indexOf(name)}`,
      ciphertextBytes: 256,
      ...(opts.trace ? { lateFile: lateFile(name) } : {}),
    };
    // A bound on everything the generator does: setup (Argon2id per account), phases, drains.
    const accounts = isIdle ? opts.idleUsers : opts.users;
    const budgetS = 120 + accounts * 0.5 + (isIdle ? opts.idleSockets / 100 : opts.warmupS + opts.durationS + opts.rates.length * (opts.durationS + 1) + opts.drainTimeoutS * (opts.rates.length + 2));
    const gen = startNode(`generator ${name}`, ['--import', 'tsx', 'bench/generator.ts'], { ...baseEnv(), BENCH_CONFIG: JSON.stringify(cfg) }, genCore, null);
    const timer = setTimeout(() => {
      log(`generator for ${name} exceeded ${Math.round(budgetS)} s: killing it`);
      killGroup(gen, 'SIGKILL');
    }, budgetS * 1000);
    const code = await gen.exited;
    clearTimeout(timer);
    for (const c of target.children) if (c.exitCode !== undefined) throw new Error(`${c.name} exited with ${c.exitCode} during the run${logTail(c)}`);
    if (code !== 0 || !fs.existsSync(resultFile)) throw new Error(`generator exited with ${code}`);
    res.gen = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as GenResult;
  } catch (err) {
    res.status = 'failed';
    res.error = err instanceof Error ? err.message : String(err);
    log(`${name} FAILED: ${res.error}`);
  } finally {
    if (target) {
      for (const c of target.children) await stop(c);
      res.serverLog = scanLogs(target.logFiles);
      if (opts.profile) {
        res.profiles = [];
        for (const c of target.children) {
          const f = mainProfile(c.name.replace('#', '-'));
          if (f) res.profiles.push(summarizeProfile(f, 20, saturatedWindow(res.gen)));
          else log(`no profile for ${c.name} in ${path.relative(ROOT, profileDir(c.name.replace('#', '-')))} (the process did not exit cleanly?)`);
        }
      }
    }
    if (pgDb) await pgDb.drop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  res.durationMs = Date.now() - started;
  return res;
}

/** pino JSON lines at warn (40) or above; anything else a process printed counts too. */
function scanLogs(files: string[]): { warnings: number; errors: number; samples: string[] } {
  const out = { warnings: 0, errors: 0, samples: [] as string[] };
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '' || line.startsWith('relay listening')) continue;
      let level = 50;
      try {
        level = (JSON.parse(line) as { level?: number }).level ?? 50;
      } catch {
        // not pino: count as an error line
      }
      if (level >= 50) out.errors++;
      else if (level >= 40) out.warnings++;
      else continue;
      if (out.samples.length < 5) out.samples.push(line.slice(0, 400));
    }
  }
  return out;
}

// ---------------------------------------------------------------- summary and output

function summarize(r: ScenarioResult, relay: ScenarioResult | undefined, idleRelay: ScenarioResult | undefined): Summary | undefined {
  const g = r.gen;
  if (!g) return undefined;
  const closed = g.phases.find((p) => p.kind === 'closed');
  const at = (rate: number) => g.phases.find((p) => p.kind === 'open' && p.targetRate === rate);
  const sum = (k: 'lost' | 'unacked' | 'duplicates' | 'outOfOrder' | 'misrouted' | 'errors' | 'retries') => g.phases.reduce((s, p) => s + p[k], 0);
  const maxOf = (k: 'serverLoopMaxMs' | 'genLoopMaxMs' | 'maxGapGlobalMs' | 'maxGapPerReceiverMs') =>
    g.phases.length ? g.phases.reduce<number | null>((m, p) => (p[k] === null ? m : Math.max(m ?? 0, p[k])), null) : null;
  const relaySat = relay?.summary?.saturatedMsgPerSec ?? null;
  const sat = closed?.deliveredPerSec ?? null;
  const s: Summary = {
    saturatedMsgPerSec: sat,
    ratioToRelay: sat !== null && relaySat ? Math.round((sat / relaySat) * 1000) / 1000 : null,
    cpuRatioToRelay: closed?.cpuUsPerMsg && relay?.summary?.cpuUsPerMsg ? Math.round((relay.summary.cpuUsPerMsg / closed.cpuUsPerMsg) * 1000) / 1000 : null,
    at1k: at(1000)?.latencyMs ?? null,
    at5k: at(5000)?.latencyMs ?? null,
    overloadedAt: g.phases.filter((p) => p.overloaded).map((p) => p.targetRate ?? 0),
    latencyByRate: Object.fromEntries(g.phases.filter((p) => p.kind === 'open').map((p) => [String(p.targetRate), { ...p.latencyMs, overloaded: p.overloaded }])),
    serverCpuPct: closed?.serverCpuPct ?? null,
    genCpuPct: closed?.genCpuPct ?? null,
    auxCpuPct: closed?.auxCpuPct ?? null,
    otherCpuPct: closed ? closed.otherCpuPct + closed.stealPct : null,
    serverRunqWaitPct: closed?.serverRunqWaitPct ?? null,
    ioPressurePct: closed?.ioPressurePct ?? null,
    cpuUsPerMsg: closed?.cpuUsPerMsg ?? null,
    serverRssMiB: closed ? Math.round(closed.serverRssKiB / 102.4) / 10 : null,
    serverLoopMaxMs: g.idle ? g.idle.serverLoopMaxMs : maxOf('serverLoopMaxMs'),
    genLoopMaxMs: maxOf('genLoopMaxMs'),
    maxGapGlobalMs: closed?.maxGapGlobalMs ?? null,
    maxGapPerReceiverMs: closed?.maxGapPerReceiverMs ?? null,
    lost: sum('lost'),
    unacked: sum('unacked'),
    duplicates: sum('duplicates'),
    outOfOrder: sum('outOfOrder'),
    misrouted: sum('misrouted'),
    errors: sum('errors'),
    retries: sum('retries'),
    socketsClosed: g.socketsClosed,
  };
  if (g.idle) {
    s.idleKiBPerSocket = g.idle.rssPerSocketKiB;
    s.serverRssMiB = Math.round(g.idle.rssKiB / 102.4) / 10;
    s.burstReadyMs = g.idle.burstReadyMs;
    s.errors += g.idle.failed;
    const base = idleRelay?.gen?.idle?.rssPerSocketKiB;
    s.idleRatioToRelay = base ? Math.round((g.idle.rssPerSocketKiB / base) * 100) / 100 : null;
  }
  return s;
}

function correctnessProblems(r: ScenarioResult): string[] {
  const p: string[] = [];
  if (r.status !== 'ok') p.push(`${r.scenario}: did not run (${r.error?.split('\n')[0]})`);
  const s = r.summary;
  if (s) {
    for (const k of ['lost', 'unacked', 'duplicates', 'outOfOrder', 'misrouted', 'errors'] as const) if (s[k] > 0) p.push(`${r.scenario}: ${s[k]} ${k}`);
  }
  if (r.gen && r.gen.unexpectedFrames > 0) p.push(`${r.scenario}: ${r.gen.unexpectedFrames} unexpected frames`);
  // An idle socket closed by the server is a failure; a busy one is reopened with ?since= and its messages counted exactly.
  if (r.gen?.idle && r.gen.socketsClosed > 0) p.push(`${r.scenario}: ${r.gen.socketsClosed} idle sockets closed by the server`);
  return p;
}

function warnings(r: ScenarioResult): string[] {
  const w: string[] = [];
  const s = r.summary;
  if (s && s.retries > 0) w.push(`${s.retries} sends answered with back-pressure (unavailable / rate_limited / 503 / 429) or lost with their socket, and sent again`);
  if (r.gen && !r.gen.idle && r.gen.socketsClosed > 0) w.push(`the server closed ${r.gen.socketsClosed} sockets during the run (reopened with ?since=, ${r.gen.reconnects} reconnects)`);
  if (s && s.genCpuPct !== null && s.genCpuPct >= 90) w.push(`the generator used ${s.genCpuPct}% of its core at saturation: the saturated figure may be the generator's limit`);
  if (s && s.otherCpuPct !== null && s.otherCpuPct >= 30) w.push(`other processes used ${fmt(s.otherCpuPct, 0)}% of a core during the saturated window: figures are noisy`);
  if (s && s.serverRunqWaitPct !== null && s.serverRunqWaitPct >= 10) {
    w.push(
      r.instances > 1
        ? `the servers' main threads waited ${fmt(s.serverRunqWaitPct, 0)}% of the saturated window for a CPU (summed; the ${r.instances} instances share core 0, so they also wait for each other)`
        : `the server's main thread waited ${fmt(s.serverRunqWaitPct, 0)}% of the saturated window for a CPU (taken by other processes)`,
    );
  }
  if (s && s.ioPressurePct !== null && s.ioPressurePct >= 10) w.push(`some task was stalled on I/O ${fmt(s.ioPressurePct, 0)}% of the saturated window (PSI): fsync-bound figures are noisy`);
  return w;
}

const fmt = (v: number | null | undefined, d = 1) => (v === null || v === undefined ? '–' : v.toFixed(d));
const lat = (l: PhaseResult['latencyMs'] | null, overloaded: boolean) =>
  l && l.count === 0 && overloaded ? 'OVERLOAD' : l ? `${fmt(l.p50, l.p50 !== null && l.p50 >= 100 ? 0 : 2)}/${fmt(l.p99, l.p99 !== null && l.p99 >= 100 ? 0 : 2)}/${fmt(l.p999, l.p999 !== null && l.p999 >= 100 ? 0 : 2)}${overloaded ? ' OVERLOAD' : ''}` : '–';

function table(results: ScenarioResult[], rates: number[]): string {
  const rateName = (r: number) => (r % 1000 === 0 ? `${r / 1000}k` : String(r));
  const [r1, r2] = [rates[0] ?? 1000, rates[1] ?? 5000];
  const head = ['scenario', 'msg/s sat.', '×relay', '×relay CPU', `p50/p99/p99.9 ms @${rateName(r1)}`, `p50/p99/p99.9 ms @${rateName(r2)}`, 'srv CPU%', 'gen CPU%', 'other CPU%', 'srv waited%', 'CPU µs/msg', 'RSS MiB', 'loop max ms', 'lost/dup/ooo', 'retries'];
  const rows: string[][] = [];
  for (const r of results) {
    const s = r.summary;
    if (r.status !== 'ok' || !s) {
      rows.push([r.scenario, 'FAILED', '', '', (r.error ?? '').split('\n')[0]!.slice(0, 60), '', '', '', '', '', '', '', '', '', '']);
      continue;
    }
    if (r.gen?.idle) {
      const i = r.gen.idle;
      rows.push([
        r.scenario,
        `${i.sockets} idle`,
        s.idleRatioToRelay != null ? `${fmt(s.idleRatioToRelay, 2)}` : '',
        '',
        `${fmt(i.rssPerSocketKiB, 1)} KiB/socket (marginal ${fmt(i.marginalPerSocketKiB, 1)})`,
        `${i.burst} burst: ${fmt(i.burstReadyMs, 0)} ms`,
        '',
        '',
        '',
        '',
        '',
        fmt(s.serverRssMiB),
        fmt(s.serverLoopMaxMs),
        `failed ${i.failed}`,
        '',
      ]);
      continue;
    }
    const gen = s.genCpuPct !== null && s.genCpuPct >= 90 ? `${fmt(s.genCpuPct, 0)}!` : fmt(s.genCpuPct, 0);
    rows.push([
      r.scenario + (r.instances > 1 ? ` (${r.instances}×)` : ''),
      fmt(s.saturatedMsgPerSec, 0),
      r.scenario === 'relay' ? '1' : fmt(s.ratioToRelay, 3),
      r.scenario === 'relay' ? '1' : fmt(s.cpuRatioToRelay, 3),
      lat(s.latencyByRate[String(r1)] ?? null, s.overloadedAt.includes(r1)),
      lat(s.latencyByRate[String(r2)] ?? null, s.overloadedAt.includes(r2)),
      fmt(s.serverCpuPct, 0) + (s.auxCpuPct !== null ? `+${fmt(s.auxCpuPct, 0)}` : ''),
      gen,
      fmt(s.otherCpuPct, 0),
      fmt(s.serverRunqWaitPct, 0),
      fmt(s.cpuUsPerMsg, 1),
      fmt(s.serverRssMiB),
      fmt(s.serverLoopMaxMs),
      `${s.lost + s.unacked}/${s.duplicates}/${s.outOfOrder}` + (s.errors + s.misrouted > 0 ? ` +${s.errors + s.misrouted} failed` : ''),
      String(s.retries) + (s.socketsClosed > 0 ? ` (${s.socketsClosed} closed)` : ''),
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    if (dirty) commit += '-dirty';
  } catch {
    // not a git checkout
  }
  let tmpFs = 'unknown';
  try {
    tmpFs = execFileSync('stat', ['-f', '-c', '%T', os.tmpdir()], { encoding: 'utf8' }).trim();
  } catch {
    // no stat
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel: model,
    node: process.version,
    kernel: os.release(),
    loadAvgAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
    tmpFilesystem: tmpFs,
    pinned: canPin,
    commit,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const pinned = opts.pin && canPin;
  if (opts.pin && !canPin) log('taskset unavailable or fewer than 2 cores: server and generator are NOT pinned');
  const nofile = hardNofile();
  const needFds = opts.idleSockets + 1000;
  if ((opts.scenarios.includes('idle') || opts.scenarios.includes('idle-relay')) && nofile > 0 && nofile < needFds) {
    log(`the hard open-files limit is ${nofile}; ${opts.idleSockets} sockets need about ${needFds}: lowering --idle-sockets`);
    opts.idleSockets = Math.max(100, nofile - 1000);
    opts.burst = Math.min(opts.burst, opts.idleSockets);
  }
  const clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const runTag = randomBytes(3).toString('hex');
  const m = machine();
  const started = Date.now();
  log(
    `scenarios ${opts.scenarios.join(', ')}; ${opts.users} users, window ${opts.window}, ${opts.durationS}s per phase, rates ${opts.rates.join('/')}; ` +
      `${m.nproc} cores (${m.cpuModel}), ${pinned ? 'server on core 0, generator on core 1' : 'not pinned'}; load ${m.loadAvgAtStart.join(' ')}`,
  );
  log(`server: node ${START_ARGV.join(' ')} (npm start)`);
  // The relay first: every server scenario is a ratio to it.
  const order = [...opts.scenarios].sort((a, b) => ALL.indexOf(a) - ALL.indexOf(b));
  const results: ScenarioResult[] = [];
  for (const name of order) {
    log(`— ${name}: ${DESCRIPTIONS[name]}`);
    const r = await runScenario(name, opts, runTag, clkTck);
    r.summary = summarize(
      r,
      results.find((x) => x.scenario === 'relay'),
      results.find((x) => x.scenario === 'idle-relay'),
    );
    if (interrupted) return 130;
    r.warnings = warnings(r);
    results.push(r);
    log(`— ${name}: ${r.status} in ${Math.round(r.durationMs / 1000)} s`);
  }
  await runCleanups();

  const problems = results.flatMap(correctnessProblems);
  const out = {
    date: new Date().toISOString(),
    machine: m,
    options: { ...opts, out: path.relative(ROOT, opts.out) },
    durationS: Math.round((Date.now() - started) / 100) / 10,
    definitions: {
      saturated: 'closed loop: each user keeps `window` messages in flight (sent, not yet acknowledged by message.sent / HTTP 201); message.new frames received per second in the measured window',
      latency: 'open loop at a fixed rate, schedule-based: receive time of message.new minus the scheduled send time carried in clientMessageId (same process clock); nearest-rank percentiles over messages scheduled in the window',
      ratioToRelay: "saturated msg/s of the scenario divided by the relay's in the same run",
      cpuRatioToRelay: "the relay's CPU µs per delivered message divided by the scenario's: what the throughput ratio would be if both were CPU-bound on a quiet core",
      idleRatio: 'idle rows: KiB per socket of the server divided by the relay’s',
      cpu: 'utime+stime from /proc/<pid>/stat over the measured window (100% = one core); CPU µs/msg = server CPU time / delivered messages; aux = postgres / redis-server processes',
      noise: "other CPU% = machine busy time (/proc/stat) + steal − server − generator − aux, 100% = one core; srv waited% = time the server's main thread was runnable but not running (/proc/<pid>/schedstat); cpuPressurePct / ioPressurePct = PSI 'some' over the window",
      serverLoopMaxMs: 'largest event-loop delay on the server during the windows (monitorEventLoopDelay: /metrics on the server, /loop on the relay)',
      maxGap: 'stall proxy seen from the generator: longest gap between consecutive message.new frames, on all sockets together (global) and on one receiver',
      outOfOrder: 'per sender→receiver pair; WebSocket: FIFO per socket; REST: a message delivered before one that was acknowledged before it was sent',
      lost: 'acknowledged but never delivered by the end of the run; unacked: neither acknowledged nor rejected',
    },
    scenarios: results,
    correctness: problems.length === 0 ? 'ok' : problems,
  };
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, JSON.stringify(out, null, 2) + '\n');

  console.log(`\nSafe Chat benchmark — ${out.date} — ${m.nproc} × ${m.cpuModel}, node ${m.node}, commit ${m.commit.slice(0, 12)}${pinned ? ', server core 0 / generator core 1' : ', unpinned'}`);
  console.log(`${opts.users} users × ${opts.contacts} contacts, closed loop W=${opts.window}, ${opts.durationS}s per phase${opts.quick ? ' (quick)' : ''}; 256-byte ciphertext\n`);
  console.log(table(results, opts.rates));
  for (const r of results) {
    for (const n of r.warnings ?? []) console.log(`warning ${r.scenario}: ${n}`);
    for (const n of r.gen?.notes ?? []) console.log(`note ${r.scenario}: ${n}`);
    if (r.serverLog && r.serverLog.warnings + r.serverLog.errors > 0) {
      console.log(`note ${r.scenario}: server logged ${r.serverLog.errors} errors, ${r.serverLog.warnings} warnings, e.g. ${r.serverLog.samples[0]}`);
    }
  }
  if (opts.profile) {
    for (const r of results) for (const p of r.profiles ?? []) console.log(`\n${r.scenario}: ${formatProfile(p)}`);
  }
  if (opts.trace) {
    for (const r of results) {
      if (r.status !== 'ok' || !fs.existsSync(lateFile(r.scenario))) continue;
      // The relay's files are named after its scenario, a server's after its scenario and instance.
      const relay = path.join(TRACES, `${r.scenario}.events.log`);
      const events = fs.existsSync(relay) ? [relay] : Array.from({ length: r.instances }, (_, i) => path.join(TRACES, `${r.scenario}-${i}.events.log`));
      // Open loop only: at saturation every message waits in the window by design.
      const report = explainTail(lateFile(r.scenario), events, { phases: (w) => w.kind === 'open' });
      if (report) console.log(`\n${r.scenario}, the tail (bench/tail.ts):\n${report}`);
    }
    console.log(`\nlong event-loop turns of each server: ${path.relative(process.cwd(), TRACES)}/<scenario>-<instance>.log (bench/trace.mjs says how to read them)`);
  }
  console.log(`\nresults: ${path.relative(process.cwd(), opts.out)} (${out.durationS} s)`);
  if (problems.length > 0) {
    console.log(`\nCORRECTNESS FAILED:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  console.log('correctness: every message delivered exactly once, in order (0 lost, 0 duplicated, 0 out of order)');
  return 0;
}

main().then(
  async (code) => {
    killAllNow();
    if (interrupted) await signalCleanup;
    process.exit(code);
  },
  async (err: unknown) => {
    console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    killAllNow();
    await runCleanups();
    process.exit(2);
  },
);
