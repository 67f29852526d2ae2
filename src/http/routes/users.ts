import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { DeleteAccountBody, ErrorBody, User, UserIdParams, UsernameQuery } from '@safechat/protocol';
import { z } from 'zod';
import type { AppContext } from '../../context.js';
import { caller } from '../plugins/auth.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 429: ErrorBody };
const security = [{ bearer: [] }];

export const userRoutes: FastifyPluginAsyncZod<{ ctx: AppContext }> = async (app, { ctx }) => {
  app.addHook('onRequest', ctx.authenticate);

  app.get('/users/me', { schema: { tags: ['users'], security, response: { 200: User, ...errors } } }, async (request) =>
    ctx.services.users.me(caller(request).userId),
  );

  app.get(
    '/users/:id',
    { schema: { tags: ['users'], security, params: UserIdParams, response: { 200: User, ...errors } } },
    async (request) => ctx.services.users.byId(caller(request).userId, request.params.id),
  );

  app.get(
    '/users',
    { schema: { tags: ['users'], summary: 'Find a user by exact username (case-insensitive)', security, querystring: UsernameQuery, response: { 200: User, ...errors } } },
    async (request) => ctx.services.users.byUsername(caller(request).userId, request.query.username),
  );

  app.delete(
    '/users/me',
    {
      bodyLimit: 4 * 1024,
      schema: {
        tags: ['users'],
        summary: 'Delete the account (password required): tokens, sockets, keys, chats memberships and messages go with it',
        security,
        body: DeleteAccountBody,
        response: { 204: z.null(), ...errors },
      },
    },
    async (request, reply) => {
      await ctx.services.accounts.deleteAccount(caller(request).userId, request.body.password, request.ip);
      return reply.code(204).send(null);
    },
  );
};
