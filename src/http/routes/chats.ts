import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Chat, ChatIdParams, ChatList, ChatListQuery, CreateChatBody, ErrorBody } from '@safechat/protocol';
import type { AppContext } from '../../context.js';
import { caller } from '../plugins/auth.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 429: ErrorBody };
const security = [{ bearer: [] }];

export const chatRoutes: FastifyPluginAsyncZod<{ ctx: AppContext }> = async (app, { ctx }) => {
  app.addHook('onRequest', ctx.authenticate);

  app.post(
    '/chats',
    {
      schema: {
        tags: ['chats'],
        summary: 'Create a chat (the caller is added); a one-to-one pair that has one gets it back with 200',
        security,
        body: CreateChatBody,
        response: { 200: Chat, 201: Chat, ...errors },
      },
    },
    async (request, reply) => {
      const { chat, created } = await ctx.services.chats.create(caller(request).userId, request.body.participantIds);
      return reply.code(created ? 201 : 200).send(chat);
    },
  );

  app.get(
    '/chats',
    {
      schema: {
        tags: ['chats'],
        summary: "A page of the caller's chats, most recent activity first; pass nextCursor back as cursor for the next",
        security,
        querystring: ChatListQuery,
        response: { 200: ChatList, ...errors },
      },
    },
    async (request) => ctx.services.chats.list(caller(request).userId, request.query),
  );

  app.get(
    '/chats/:chatId',
    { schema: { tags: ['chats'], security, params: ChatIdParams, response: { 200: Chat, ...errors } } },
    async (request) => ctx.services.chats.get(caller(request).userId, request.params.chatId),
  );
};
