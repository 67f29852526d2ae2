import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

/** The OpenAPI document is generated from the route schemas; /docs browses it with locally served assets. */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Safe Chat Backend',
        version: '0.1.0',
        description:
          'End-to-end-encrypted messaging backend. The server stores and forwards ciphertext it cannot read. ' +
          'Errors are {"error":{"code","message","details?"}}. Real-time events: see docs/websocket.md (GET /ws).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      tags: [
        { name: 'auth', description: 'Accounts and sessions' },
        { name: 'users', description: 'User directory' },
        { name: 'keys', description: 'Public key directory for end-to-end encryption' },
        { name: 'chats', description: 'Conversations' },
        { name: 'messages', description: 'Ciphertext store-and-forward, delivery and read status' },
        { name: 'operations', description: 'Health and metrics' },
      ],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
}
