import { Cursor } from '@safechat/protocol';
import type {} from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { AppError, ForbiddenError, UnauthorizedError } from '../errors.js';
import { bearerToken } from '../http/plugins/auth.js';
import { Connection } from './connection.js';


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
  app.get(
    '/ws',
    {
      websocket: true,
      schema: { hide: true, querystring: WsQuery },
      // Runs before the upgrade: a refused handshake is a plain HTTP answer (401/403/429).
      preHandler: async (request: FastifyRequest) => {
        if (!originAllowed(request.headers.origin, request.host, ctx.cfg.allowedOrigins)) {
          throw new ForbiddenError('origin not allowed');
        }
        await ctx.limiter.consume('wsConnectsPerIp', request.ip);
        if (request.headers.authorization !== undefined) {
          const token = bearerToken(request.headers.authorization);
          if (token === null) throw new UnauthorizedError('invalid authorization header');
          const claims = await ctx.services.tokens.verifyAccess(token);
          request.auth = claims;
          if (ctx.cfg.rateLimits && ctx.hub.connectionCount(claims.userId) >= ctx.socketCap) {
            throw new AppError('rate_limited', 'too many connections for this user', { retryAfter: 10 }, { 'Retry-After': '10' });
          }
        }
      },
    },
    (socket, request) => {
      const conn = new Connection(socket, ctx.connectionDeps, request.ip);
      const since = (request.query as z.infer<typeof WsQuery>).since;
      if (request.auth) conn.begin(request.auth, since === undefined ? undefined : Number(since));
      else conn.awaitAuth(since);
    },
  );
}
