import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import cors from '@fastify/cors';
import websocket, { type WebsocketPluginOptions } from '@fastify/websocket';
import helmet from 'helmet';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { CLOSE, DEFAULT_MAX_CIPHERTEXT_BYTES } from '@safechat/protocol';
import type { AppContext } from './context.js';
import { AppError, UnavailableError } from './errors.js';
import { requestLogger } from './logger.js';
import { registerBodyParser } from './http/plugins/body-parser.js';
import { registerErrorHandlers } from './http/plugins/error-handler.js';
import { registerNotFound } from './http/plugins/not-found.js';
import { registerOpenApi } from './http/plugins/openapi.js';
import { registerWebApp } from './http/plugins/web-app.js';
import { authRoutes } from './http/routes/auth.js';
import { chatRoutes } from './http/routes/chats.js';
import { keyRoutes } from './http/routes/keys.js';
import { messageRoutes } from './http/routes/messages.js';
import { opsRoutes } from './http/routes/ops.js';
import { userRoutes } from './http/routes/users.js';
import { paceUpgrades, registerGateway } from './ws/gateway.js';

/**
 * Largest request body and WebSocket frame: room for the largest allowed ciphertext in base64
 * plus the envelope; 128 KiB for the default 64 KiB ciphertext.
 */
export function maxEnvelopeBytes(maxCiphertextBytes: number): number {
  return Math.max(128 * 1024, Math.ceil(maxCiphertextBytes / 3) * 4 + 16 * 1024);
}

/** Fragments one WebSocket message may come in; more closes the socket with 1008 (T-WS-15). */
export const WS_MAX_FRAGMENTS = 64;

/** The body limit with the default MAX_MESSAGE_BYTES (64 KiB): 128 KiB. */
export const MAX_BODY_BYTES = maxEnvelopeBytes(DEFAULT_MAX_CIPHERTEXT_BYTES);

/** Builds the HTTP + WebSocket app on a context, without listening (tests and benchmarks use it). */
export async function createApp(ctx: AppContext): Promise<FastifyInstance> {
  const logger: FastifyBaseLogger = ctx.log.http;
  const envelopeLimit = maxEnvelopeBytes(ctx.cfg.messages.maxCiphertextBytes);
  const app = Fastify({
    loggerInstance: logger,
    // Per-request access logs are off: metrics count requests, logs keep what needs a reader.
    logController: new LogController({ disableRequestLogging: true }),
    // Each request's child logger is made only if the request logs (decision 0028).
    childLoggerFactory: (parent, bindings, opts) => requestLogger(parent as Logger, bindings, opts),
    bodyLimit: envelopeLimit,
    // Unique across instances and restarts: a 5xx answer carries it, and so does its log line.
    genReqId: () => randomUUID(),
    trustProxy: ctx.cfg.http.trustProxy,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Closing: our own 503 below, in the error shape (Fastify's has `error` as a string).
    return503OnClosing: false,
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    keepAliveTimeout: 72_000,
    // Node checks the header and request deadlines only every connectionsCheckingInterval (30 s by
    // default), so a slow-headers client could hold its connection for up to 50 s; checked each second.
    http: { headersTimeout: 20_000, maxHeaderSize: 16 * 1024, connectionsCheckingInterval: 1000 },
    routerOptions: { maxParamLength: 200, ignoreTrailingSlash: true },
    // Errors raised before routing (bad URL encoding, an over-long path parameter) and by the HTTP
    // parser (smuggling attempts, huge headers) get the same error shape as everything else.
    frameworkErrors: (err, _request, reply: FastifyReply) => {
      const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : 'malformed URL';
      void reply.code(400).type('application/json').send(JSON.stringify(new AppError('validation_error', message).toBody()));
    },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, text, error] =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'Request Header Fields Too Large', new AppError('payload_too_large', 'request headers are too large')]
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? [408, 'Request Timeout', new AppError('validation_error', 'the request was not received in time')]
            : [400, 'Bad Request', new AppError('validation_error', 'malformed HTTP request')];
      const body = JSON.stringify(error.toBody());
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy();
    },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // @NOTE Responses are built by the allowlisting functions in domain/wire.ts and typed by the
  // schemas; re-validating every response would cost more than it protects.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.decorateRequest('auth', null);

  registerErrorHandlers(app);
  registerNotFound(app);
  registerBodyParser(app);
  observe(app, ctx);

  // Security headers on every answer. The middleware is built once: @fastify/helmet built it
  // (and parsed the CSP again) on every request, ~2 % of a REST send's CPU.
  const securityHeaders = helmet({
    // The API serves JSON; /docs and /app are same-origin pages with their own assets.
    contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'", "'unsafe-inline'"], imgSrc: ["'self'", 'data:'], connectSrc: ["'self'"], upgradeInsecureRequests: null } },
    crossOriginEmbedderPolicy: false,
  });
  app.addHook('onRequest', (request, reply, done) => {
    securityHeaders(request.raw, reply.raw, (err?: unknown) => done(err instanceof Error ? err : undefined));
  });
  await app.register(cors, {
    origin: (origin, cb) => cb(null, origin === undefined || ctx.cfg.allowedOrigins.includes(origin)),
    methods: ['GET', 'POST', 'PUT', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['Retry-After'],
    maxAge: 600,
  });
  await registerOpenApi(app);
  // The plugin listens for upgrades on this emitter, which paceUpgrades feeds from the server.
  const upgrades = new EventEmitter();
  // maxPendingAutoPongs (ws ≥ 8.19) is not in @types/ws yet, hence the variable.
  const wsOptions: NonNullable<WebsocketPluginOptions['options']> & { maxPendingAutoPongs: number } = {
    server: upgrades as unknown as Server,
    maxPayload: envelopeLimit,
    // Explicit, not ws's defaults (16,384 fragments, 60 pongs): no client of ours splits a message
    // into more than a few fragments, and a ping flood from a peer that reads nothing is cut early.
    maxFragments: WS_MAX_FRAGMENTS,
    maxPendingAutoPongs: 16,
    perMessageDeflate: false,
    clientTracking: false,
  };
  await app.register(websocket, {
    options: wsOptions,
  });
  const stopUpgrades = paceUpgrades(app.server, upgrades);

  // Sockets first: an HTTP server does not finish closing while upgraded sockets stay open.
  let idleSweep: NodeJS.Timeout | null = null;
  let closing = false;
  app.addHook('onRequest', (request, reply, done) => {
    if (!closing) return done();
    // Requests that arrive on kept-alive connections while the server drains: the client retries
    // elsewhere (or here, after the restart) and drops this connection.
    void reply.header('Connection', 'close');
    done(new UnavailableError('server is shutting down, retry later', 1));
  });
  app.addHook('preClose', async () => {
    closing = true;
    stopUpgrades();
    ctx.hub.shutdown(CLOSE.goingAway, 'server closing');
    // A keep-alive connection whose request was still running when close began would idle on
    // until keepAliveTimeout and hold the close up; each is closed as soon as it is idle.
    idleSweep = setInterval(() => app.server.closeIdleConnections(), 50);
  });
  app.addHook('onClose', async () => {
    if (idleSweep) clearInterval(idleSweep);
  });

  const opts = { ctx };
  await app.register(authRoutes, opts);
  await app.register(userRoutes, opts);
  await app.register(keyRoutes, opts);
  await app.register(chatRoutes, opts);
  await app.register(messageRoutes, opts);
  await app.register(opsRoutes, opts);
  await registerWebApp(app, ctx);
  await app.register(async (scope) => registerGateway(scope, ctx));
  return app;
}

/** Request counts and durations by route template (never the raw URL: ids would explode the series). */
function observe(app: FastifyInstance, ctx: AppContext): void {
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    ctx.telemetry.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    ctx.telemetry.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });
}
