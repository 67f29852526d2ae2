import type { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { Cursor } from '@safechat/protocol';
import type {} from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { ForbiddenError, RateLimitedError, UnauthorizedError, ValidationError } from '../errors.js';
import { bearerToken } from '../http/plugins/auth.js';
import { Pacer } from '../util/pacer.js';
import { Connection } from './connection.js';
import { TOO_MANY_FROM_IP } from './hub.js';


/**
 * Socket starts per turn of the event loop. A start (HTTP routing and hooks, token check,
 * upgrade, replay, `ready`) costs a few hundred microseconds: 2,000 sockets connecting at once
 * were turns of 0.2–0.8 s in which nothing else was served. Paced, every turn stays short and
 * live traffic flows meanwhile; the burst as a whole takes no longer.
 */
const WS_STARTS_PER_TURN = 32;
/** Upgrades waiting for their turn before more are turned away (503): bounds memory and delay. */
const MAX_WAITING_UPGRADES = 20_000;

const BUSY = JSON.stringify({ error: { code: 'unavailable', message: 'too many connections starting, retry later' } });
const BUSY_RESPONSE =
  `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nRetry-After: 2\r\n` +
  `Content-Length: ${Buffer.byteLength(BUSY)}\r\nConnection: close\r\n\r\n${BUSY}`;

function dropOnError(this: Duplex): void {
  this.destroy();
}

/**
 * Hands the HTTP server's upgrade requests to `into` (where @fastify/websocket listens) at most
 * WS_STARTS_PER_TURN per turn; the rest wait, in order. Returns a stop function for shutdown:
 * what still waits then is closed.
 */
export function paceUpgrades(
  server: Pick<Server, 'on' | 'off'>,
  into: EventEmitter,
  limits: { perTurn: number; maxWaiting: number } = { perTurn: WS_STARTS_PER_TURN, maxWaiting: MAX_WAITING_UPGRADES },
): () => void {
  const pacer = new Pacer(limits.perTurn);
  let stopped = false;
  const onUpgrade = (request: unknown, socket: Duplex, head: Buffer) => {
    if (pacer.queued >= limits.maxWaiting) {
      // Node removed its own error listener before 'upgrade': a reset must not throw.
      socket.on('error', dropOnError);
      socket.end(BUSY_RESPONSE);
      return;
    }
    const wait = pacer.admit();
    if (!wait) {
      into.emit('upgrade', request, socket, head);
      return;
    }
    // Node removed its own error listener before 'upgrade'; a reset while waiting must not throw.
    socket.on('error', dropOnError);
    void wait.then(() => {
      socket.off('error', dropOnError);
      if (stopped) socket.destroy();
      else if (!socket.destroyed) into.emit('upgrade', request, socket, head);
    });
  };
  server.on('upgrade', onUpgrade);
  return () => {
    stopped = true;
    server.off('upgrade', onUpgrade);
  };
}

/** The frame limit with the default MAX_MESSAGE_BYTES; the app sets it from the configuration (see maxEnvelopeBytes). */
export const MAX_FRAME_BYTES = 128 * 1024;

const WsQuery = z.strictObject({ since: Cursor.optional() });

/** Browsers send Origin: it must be this server's own or listed in ALLOWED_ORIGINS. Native apps send none. */
export function originAllowed(origin: string | undefined, host: string | undefined, allowed: string[]): boolean {
  if (origin === undefined) return true;
  if (allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

export function registerGateway(app: FastifyInstance, ctx: AppContext): void {
  // Token checks finish on the thread pool and come back in batches: their upgrades are paced too.
  const verified = new Pacer(WS_STARTS_PER_TURN);
  app.route({
    method: 'GET',
    url: '/ws',
    schema: { hide: true, querystring: WsQuery },
    // Runs before the upgrade: a refused handshake is a plain HTTP answer (401/403/429).
    preHandler: async (request: FastifyRequest) => {
      if (!originAllowed(request.headers.origin, request.host, ctx.cfg.allowedOrigins)) {
        throw new ForbiddenError('origin not allowed');
      }
      if (ctx.cfg.rateLimits && ctx.hub.socketsFrom(request.ip) >= ctx.cfg.maxSocketsPerIp) {
        throw new RateLimitedError(10, TOO_MANY_FROM_IP);
      }
      await ctx.limiter.consume('wsConnectsPerIp', request.ip);
      if (request.headers.authorization !== undefined) {
        const token = bearerToken(request.headers.authorization);
        if (token === null) throw new UnauthorizedError('invalid authorization header');
        const claims = await ctx.services.tokens.verifyAccess(token);
        await verified.admit();
        request.auth = claims;
        if (ctx.cfg.rateLimits && ctx.hub.connectionCount(claims.userId) >= ctx.socketCap) {
          throw new RateLimitedError(10, 'too many connections for this user');
        }
      }
    },
    // A plain GET (no upgrade): an answer in the error shape instead of the plugin's empty 404.
    handler: () => {
      throw new ValidationError('/ws accepts only a WebSocket upgrade');
    },
    wsHandler: (socket, request) => {
      const conn = new Connection(socket, ctx.connectionDeps, request.ip);
      const since = (request.query as z.infer<typeof WsQuery>).since;
      if (request.auth) conn.begin(request.auth, since === undefined ? undefined : Number(since));
      else conn.awaitAuth(since);
    },
  });
}
