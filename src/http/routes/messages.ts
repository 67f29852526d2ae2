import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ChatIdParams, ErrorBody, Message, MessageIdParams, MessagePage, MessagePageQuery, SendMessageBody, UpdateStatusBody } from '@safechat/protocol';
import type { AppContext } from '../../context.js';
import { caller } from '../plugins/auth.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 429: ErrorBody, 503: ErrorBody };
const security = [{ bearer: [] }];

export const messageRoutes: FastifyPluginAsyncZod<{ ctx: AppContext }> = async (app, { ctx }) => {
  app.addHook('onRequest', ctx.authenticate);

  app.post(
    '/messages',
    {
      schema: {
        tags: ['messages'],
        summary: 'Send ciphertext to a chat or a user; a retry with the same clientMessageId returns the original (200)',
        security,
        body: SendMessageBody,
        response: { 200: Message, 201: Message, ...errors },
      },
    },
    async (request, reply) => {
      const { message, created } = await ctx.services.messages.send(caller(request).userId, request.body);
      return reply.code(created ? 201 : 200).send(message);
    },
  );

  app.get(
    '/messages/:chatId',
    {
      schema: {
        tags: ['messages'],
        summary: 'A page of history, oldest first; the latest page by default',
        security,
        params: ChatIdParams,
        querystring: MessagePageQuery,
        response: { 200: MessagePage, ...errors },
      },
    },
    async (request) => ctx.services.messages.page(caller(request).userId, request.params.chatId, request.query),
  );

  app.put(
    '/messages/:id/status',
    {
      schema: {
        tags: ['messages'],
        summary: 'Receiver only; sent → delivered → read, never backwards',
        security,
        params: MessageIdParams,
        body: UpdateStatusBody,
        response: { 200: Message, ...errors },
      },
    },
    async (request) => ctx.services.messages.setStatus(caller(request).userId, request.params.id, request.body.status),
  );
};
