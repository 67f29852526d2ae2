import { randomUUID } from 'node:crypto';
import { base64ByteLength } from '@safechat/protocol';
import type pino from 'pino';
import { ARGON2_MAX_IN_FLIGHT, type ServerConfig } from './config/config.js';
import type { ServerSecrets } from './config/secrets.js';
import { AccountService } from './domain/accounts.js';
import { ChatService } from './domain/chats.js';
import { KeyService } from './domain/keys.js';
import { Mailbox } from './domain/mailbox.js';
import { MessageService } from './domain/messages.js';
import { PasswordHasher, type Argon2Params } from './domain/password-hasher.js';
import { TokenService } from './domain/tokens.js';
import { UserService } from './domain/users.js';
import { authenticate } from './http/plugins/auth.js';
import { PruneEventsJob } from './jobs/prune-events.js';
import { CAPS, limitsFor, type Limits } from './limits/catalog.js';
import { MemoryLimiterStore, RateLimiter, type LimiterStore } from './limits/limiter.js';
import { createLoggers, type Loggers } from './logger.js';
import type { PubSub } from './pubsub/pubsub.js';
import { RedisPubSub } from './pubsub/redis.js';
import { RedisLimiterStore } from './limits/redis-store.js';
import { createDatabase, type Database } from './storage/db.js';
import { Telemetry } from './telemetry.js';
import { systemClock, type Clock } from './util/clock.js';
import { INBOUND_FRAMES_PER_TURN, SOCKET_LIMITS, type ConnectionDeps } from './ws/connection.js';
import { Pacer } from './util/pacer.js';
import { Hub } from './ws/hub.js';

/** What tests (and benchmarks) may swap in. */
export interface ContextOverrides {
  clock?: Clock;
  argon2?: Argon2Params;
  /** Shared between app instances in one process to simulate several servers. */
  pubsub?: PubSub | null;
  limiterStore?: LimiterStore;
  logDestination?: pino.DestinationStream;
  instanceId?: string;
  /** Do not start background jobs (tests run them by hand). */
  noJobs?: boolean;
  /** How long to wait for a PostgreSQL that is not reachable yet (default 60 s; the server process waits as long as it takes). */
  databaseWaitMs?: number;
  /** Tests of a limit whose production burst is too large to reach in a test (bytes per receiver). */
  limits?: Partial<Limits>;
  /** Tests of timings that are 30 s in production: the protocol ping interval and the token expiry grace of a live socket. */
  heartbeatMs?: number;
  expiryGraceMs?: number;
  /** How often live sockets check that their login was not revoked (default 60 s; rounded to heartbeats). */
  loginCheckMs?: number;
}

const HEARTBEAT_MS = 30_000;
/** Bounds how long a socket outlives a revocation whose signal was lost (decision 0021). */
const LOGIN_CHECK_MS = 60_000;
/** Instances that lost signals together (a Redis restart) are answered with one pass. */
const RECHECK_GATHER_MS = 250;

/** The composition root: every long-lived object is built here, once, and passed down. */
export class AppContext {
  readonly instanceId: string;
  readonly socketCap = CAPS.socketsPerUser;
  readonly authenticate: ReturnType<typeof authenticate>;
  readonly connectionDeps: ConnectionDeps;

  private constructor(
    readonly cfg: ServerConfig,
    readonly log: Loggers,
    readonly clock: Clock,
    readonly db: Database,
    readonly pubsub: PubSub | null,
    readonly limiter: RateLimiter,
    readonly telemetry: Telemetry,
    readonly hub: Hub,
    readonly jobs: { pruneEvents: PruneEventsJob },
    readonly services: {
      tokens: TokenService;
      accounts: AccountService;
      users: UserService;
      chats: ChatService;
      mailbox: Mailbox;
      messages: MessageService;
      keys: KeyService;
    },
    instanceId: string,
    timing: { expiryGraceMs: number; loginCheckBeats: number },
  ) {
    this.instanceId = instanceId;
    this.authenticate = authenticate(services.tokens, limiter);
    this.connectionDeps = {
      tokens: services.tokens,
      messages: services.messages,
      mailbox: services.mailbox,
      telemetry,
      clock,
      log: log.ws,
      rateLimits: cfg.rateLimits,
      ...timing,
      frames: new Pacer(INBOUND_FRAMES_PER_TURN),
      opened: (conn) => hub.opened(conn),
      ended: (conn) => hub.ended(conn),
      attach: (conn) => hub.attach(conn),
    };
  }

  static async fromConfig(cfg: ServerConfig, secrets: ServerSecrets, overrides: ContextOverrides = {}): Promise<AppContext> {
    const log = createLoggers(cfg.logLevel, overrides.logDestination);
    const clock = overrides.clock ?? systemClock;
    const instanceId = overrides.instanceId ?? randomUUID();
    const telemetry = new Telemetry();
    const db = await createDatabase(cfg.db, log.db, overrides.databaseWaitMs);
    telemetry.watchDatabase(() => db.load());
    const redis = overrides.pubsub === undefined && cfg.redisUrl ? await RedisPubSub.connect(cfg.redisUrl, log.pubsub) : null;
    const pubsub = overrides.pubsub !== undefined ? overrides.pubsub : redis;
    // Buckets shared by instances refill by Redis's clock; a test that moves the clock keeps its own.
    const limiterStore = overrides.limiterStore ?? (redis ? new RedisLimiterStore(redis.pub, log.root, undefined, overrides.clock ? 'caller' : 'redis') : new MemoryLimiterStore());
    const limiter = new RateLimiter(limiterStore, clock, cfg.rateLimits, (limit) => telemetry.rateLimited.inc({ limit }), { ...limitsFor(cfg.auth.accessTtlSec), ...overrides.limits });
    const hub = new Hub({ pubsub, instanceId, telemetry, log: log.ws, maxSocketsPerUser: cfg.rateLimits ? CAPS.socketsPerUser : Number.MAX_SAFE_INTEGER,
      maxSocketsPerIp: cfg.rateLimits ? cfg.maxSocketsPerIp : Number.MAX_SAFE_INTEGER,
    });

    const tokens = new TokenService(db, cfg.auth, secrets.jwtSecret, clock, log.auth, limiter);
    const hasher = new PasswordHasher(overrides.argon2 ?? cfg.auth.argon2, ARGON2_MAX_IN_FLIGHT);
    const mailbox = new Mailbox(db, clock);
    const chats = new ChatService(db, clock, limiter);
    const messages = new MessageService({
      db,
      chats,
      mailbox,
      limiter,
      clock,
      maxCiphertextBytes: cfg.messages.maxCiphertextBytes,
      holdAfterCommitMs: cfg.messages.holdAfterCommitMs,
      hooks: {
        stored: (m) => {
          telemetry.messagesStored.inc();
          telemetry.messageBytes.inc(base64ByteLength(m.encryptedContent));
        },
        statusChanged: (status) => telemetry.statusUpdates.inc({ status }),
      },
    });
    const services = {
      tokens,
      accounts: new AccountService({ db, hasher, tokens, limiter, clock, log: log.auth, deleted: (userId) => chats.forgetUser(userId) }),
      users: new UserService(db, limiter),
      chats,
      mailbox,
      messages,
      keys: new KeyService({ db, mailbox, limiter, clock, log: log.root }),
    };
    mailbox.connect(hub);
    tokens.connect(hub);
    let recheck: NodeJS.Timeout | null = null;
    pubsub?.onSignalsLost(() => {
      recheck ??= setTimeout(() => {
        recheck = null;
        hub.resync((ids) => tokens.liveFamilies(ids)).catch((err: unknown) => log.ws.error({ err }, 'checking live sockets after lost signals failed'));
      }, RECHECK_GATHER_MS).unref();
    });
    const heartbeatMs = overrides.heartbeatMs ?? HEARTBEAT_MS;
    hub.startHeartbeat(heartbeatMs);
    const jobs = { pruneEvents: new PruneEventsJob({ db, clock, log: log.jobs, retentionDays: cfg.events.retentionDays }) };
    if (!overrides.noJobs) jobs.pruneEvents.start();
    return new AppContext(cfg, log, clock, db, pubsub, limiter, telemetry, hub, jobs, services, instanceId, {
      expiryGraceMs: overrides.expiryGraceMs ?? SOCKET_LIMITS.expiryGraceMs,
      loginCheckBeats: Math.max(1, Math.round((overrides.loginCheckMs ?? LOGIN_CHECK_MS) / heartbeatMs)),
    });
  }

  async healthChecks(): Promise<Record<string, 'ok' | 'down'>> {
    const probe = (p: Promise<unknown>) =>
      Promise.race([p.then(() => 'ok' as const), new Promise<'down'>((r) => setTimeout(() => r('down'), 2000).unref())]).catch(() => 'down' as const);
    const checks: Record<string, 'ok' | 'down'> = { database: await probe(this.db.ping()) };
    if (this.pubsub instanceof RedisPubSub) checks.redis = await probe(this.pubsub.ping());
    return checks;
  }

  /** Releases everything in reverse order of construction. */
  async close(): Promise<void> {
    const closers: [string, () => Promise<void> | void][] = [
      ['jobs', () => this.jobs.pruneEvents.close()],
      ['sockets', () => this.hub.shutdown(1001, 'server closing')],
      ['pubsub', () => this.pubsub?.close()],
      ['limiter', () => this.limiter.close()],
      ['database', () => this.db.close()],
    ];
    for (const [name, close] of closers) {
      try {
        await close();
      } catch (err) {
        this.log.root.warn({ err, resource: name }, 'close failed');
      }
    }
  }
}
