import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Health } from '@safechat/protocol';
import type { AppContext } from '../../context.js';

export const opsRoutes: FastifyPluginAsyncZod<{ ctx: AppContext }> = async (app, { ctx }) => {
  app.get(
    '/health',
    { schema: { tags: ['operations'], summary: 'Ready: the database (and Redis, when configured) answer', response: { 200: Health, 503: Health } } },
    async (_request, reply) => {
      const checks = await ctx.healthChecks();
      const ok = Object.values(checks).every((v) => v === 'ok');
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks });
    },
  );

  app.get('/health/live', { schema: { tags: ['operations'], summary: 'Live: the process answers', response: { 200: Health } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get('/metrics', { schema: { tags: ['operations'], summary: 'Prometheus metrics', hide: false } }, async (_request, reply) => {
    const { contentType, body } = await ctx.telemetry.render();
    return reply.type(contentType).send(body);
  });
};
