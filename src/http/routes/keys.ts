import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorBody, KeyCount, KeysUserParams, PreKeyBundle, UploadKeysBody } from '@safechat/protocol';
import type { AppContext } from '../../context.js';
import { caller } from '../plugins/auth.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 429: ErrorBody };
const security = [{ bearer: [] }];

export const keyRoutes: FastifyPluginAsyncZod<{ ctx: AppContext }> = async (app, { ctx }) => {
  app.addHook('onRequest', ctx.authenticate);

  app.put(
    '/keys',
    {
      schema: {
        tags: ['keys'],
        summary: "Upload the caller's public keys; the signed pre-key's signature is verified; one-time pre-keys are added",
        security,
        body: UploadKeysBody,
        response: { 200: KeyCount, ...errors },
      },
    },
    async (request) => ctx.services.keys.upload(caller(request).userId, request.body),
  );

  app.get(
    '/keys/count',
    { schema: { tags: ['keys'], summary: "How many one-time pre-keys the caller has left", security, response: { 200: KeyCount, ...errors } } },
    async (request) => ctx.services.keys.count(caller(request).userId),
  );

  app.get(
    '/keys/:userId',
    {
      schema: {
        tags: ['keys'],
        summary: 'A pre-key bundle; each one-time pre-key is handed out at most once (rate limited per requester)',
        security,
        params: KeysUserParams,
        response: { 200: PreKeyBundle, ...errors },
      },
    },
    async (request) => ctx.services.keys.bundle(caller(request).userId, request.params.userId),
  );
};
