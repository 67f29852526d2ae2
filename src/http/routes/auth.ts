import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AuthResponse, ChangePasswordBody, ErrorBody, LoginBody, LogoutBody, RefreshBody, RegisterBody, TokenPair } from '@safechat/protocol';
import { z } from 'zod';
import type { AppContext } from '../../context.js';
import { caller } from '../plugins/auth.js';

/** Auth bodies are small: a 4 KiB cap means a huge "password" is refused before any hashing. */
const AUTH_BODY_LIMIT = 4 * 1024;
const errors = { 400: ErrorBody, 401: ErrorBody, 409: ErrorBody, 413: ErrorBody, 429: ErrorBody, 503: ErrorBody };

export const authRoutes: FastifyPluginAsyncZod<{ ctx: AppContext }> = async (app, { ctx }) => {
  app.post(
    '/auth/register',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: { tags: ['auth'], summary: 'Create an account and a first session', body: RegisterBody, response: { 201: AuthResponse, ...errors } },
    },
    async (request, reply) => reply.code(201).send(await ctx.services.accounts.register(request.body, request.ip)),
  );

  app.post(
    '/auth/login',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: { tags: ['auth'], summary: 'Start a session', body: LoginBody, response: { 200: AuthResponse, ...errors } },
    },
    async (request) => ctx.services.accounts.login(request.body, request.ip),
  );

  app.post(
    '/auth/refresh-token',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: {
        tags: ['auth'],
        summary: 'Rotate the refresh token; a reused one revokes the session',
        body: RefreshBody,
        response: { 200: TokenPair, ...errors },
      },
    },
    async (request) => ctx.services.tokens.refresh(request.body.refreshToken, request.ip),
  );

  app.post(
    '/auth/logout',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: { tags: ['auth'], summary: 'End the session the refresh token belongs to', body: LogoutBody, response: { 204: z.null(), ...errors } },
    },
    async (request, reply) => {
      await ctx.services.tokens.logout(request.body.refreshToken);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/change-password',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      onRequest: ctx.authenticate,
      schema: {
        tags: ['auth'],
        summary: 'Change the password (current one required); every session ends and the caller gets a new one',
        security: [{ bearer: [] }],
        body: ChangePasswordBody,
        response: { 200: TokenPair, ...errors },
      },
    },
    async (request) => {
      const { userId, familyId } = caller(request);
      return ctx.services.accounts.changePassword(userId, familyId, request.body, request.ip);
    },
  );
};
