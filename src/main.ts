import { ConfigError, envToConfig } from './config/config.js';
import { readEnv } from './config/env.js';
import { envToSecrets } from './config/secrets.js';
import { createApp } from './app.js';
import { AppContext } from './context.js';
import { listenWhileStarting } from './http/starting.js';
import { CLOSE } from '@safechat/protocol';

/** Process entry: env → config → context → app → listen; SIGTERM/SIGINT drain and exit 0. */
async function main(): Promise<void> {
  const env = readEnv();
  let cfg, secrets;
  try {
    cfg = envToConfig(env);
    secrets = envToSecrets(env, cfg);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exitCode = 78; // EX_CONFIG
      return;
    }
    throw err;
  }
  /** An address that cannot be listened on is bad configuration: one line naming the variable. */
  const badAddress = (err: unknown): boolean => {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const variable = ['EADDRINUSE', 'EACCES'].includes(code) ? 'PORT' : ['ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'EAI_NONAME'].includes(code) ? 'HOST' : null;
    if (variable === null) return false;
    console.error(`Invalid ${variable}: cannot listen on ${cfg.http.host}:${cfg.http.port} (${code})`);
    process.exitCode = 78; // EX_CONFIG
    return true;
  };
  // PostgreSQL may come up after this process (compose, an orchestrator, a restart): meanwhile the
  // address answers 503 (live, not ready) and the server waits for it as long as it takes.
  let starting: Awaited<ReturnType<typeof listenWhileStarting>> | null = null;
  if (cfg.db.kind === 'postgres') {
    try {
      starting = await listenWhileStarting(cfg.http.host, cfg.http.port);
    } catch (err) {
      if (badAddress(err)) return;
      throw err;
    }
  }
  let ctx: AppContext;
  let app: Awaited<ReturnType<typeof createApp>>;
  try {
    ctx = await AppContext.fromConfig(cfg, secrets, starting ? { databaseWaitMs: Number.POSITIVE_INFINITY } : {});
    app = await createApp(ctx);
  } finally {
    // Also on a fatal error (a wrong password, a missing database): the process must exit.
    await starting?.close();
  }
  try {
    await app.listen({ host: cfg.http.host, port: cfg.http.port });
  } catch (err) {
    if (!badAddress(err)) throw err;
    await app.close().catch(() => undefined);
    await ctx.close().catch(() => undefined);
    return;
  }
  ctx.log.root.info({ db: cfg.db.kind, redis: cfg.redisUrl !== null, rateLimits: cfg.rateLimits }, 'safe chat backend ready');
  const durability = await ctx.db.durability();
  if (durability.survivesPowerLoss) ctx.log.db.info(durability.settings, 'storage durability');
  else ctx.log.db.warn(durability.settings, 'storage durability: acknowledged messages can be lost if the machine fails');
  const statistics = await ctx.db.statistics();
  if (statistics && !statistics.keptCurrent) {
    ctx.log.db.warn(statistics.settings, 'table statistics: autovacuum is off (or track_counts, which it needs), so nothing re-plans cached statements as tables grow and queries slow down; turn it on or run ANALYZE regularly');
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    ctx.log.root.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      ctx.log.root.error('shutdown grace period exceeded; exiting');
      process.exit(1);
    }, cfg.shutdownGraceMs);
    force.unref();
    // 1012 "service restart": clients reconnect (to another instance) and resume by cursor.
    ctx.hub.shutdown(CLOSE.serviceRestart, 'server restarting');
    // app.close() also closes keep-alive connections as their last requests finish (app.ts).
    await app.close();
    await ctx.close();
    ctx.log.root.info('stopped');
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  console.error('fatal:', err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
