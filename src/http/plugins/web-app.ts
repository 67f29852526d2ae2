/**
 * The web client at /app (SERVE_APP): web/src/main.ts is bundled in memory with esbuild when the
 * server starts (no build step, nothing written to disk), and served with the static files of
 * web/public. Everything is same-origin, so the server's CSP (script-src 'self', connect-src
 * 'self') is all the page needs.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { build, type Plugin } from 'esbuild';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AppContext } from '../../context.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const WEB_ENTRY = path.join(ROOT, 'web/src/main.ts');
export const WEB_PUBLIC = path.join(ROOT, 'web/public');

export interface WebBundle {
  code: Buffer;
  etag: string;
}

/** Refuses any Node built-in (`node:*` or bare `fs`, `crypto`, …): the bundle runs in a browser. */
const noNodeModules: Plugin = {
  name: 'no-node-modules',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ errors: [{ text: `"${args.path}" (imported by ${args.importer}) cannot run in a browser` }] }));
  },
};

let cached: Promise<WebBundle> | null = null;

/** Bundles the web client (once per process: every server instance in one process shares it). */
export function bundleWebApp(): Promise<WebBundle> {
  cached ??= (async () => {
    const result = await build({
      entryPoints: [WEB_ENTRY],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      minify: true,
      sourcemap: false,
      write: false,
      legalComments: 'none',
      logLevel: 'silent',
      plugins: [noNodeModules],
    });
    const file = result.outputFiles[0];
    if (!file) throw new Error('esbuild produced no output');
    const code = Buffer.from(file.contents);
    return { code, etag: `"${createHash('sha256').update(code).digest('base64url').slice(0, 27)}"` };
  })();
  cached.catch(() => (cached = null));
  return cached;
}

/** GET /app → /app/; /app/ the page; /app/app.js the bundle; /app/<file> the files of web/public. */
export async function registerWebApp(app: FastifyInstance, ctx: AppContext): Promise<void> {
  if (!ctx.cfg.serveApp) return;
  let bundle: WebBundle;
  let html: Buffer;
  try {
    [bundle, html] = await Promise.all([bundleWebApp(), readFile(path.join(WEB_PUBLIC, 'index.html'))]);
  } catch (err) {
    const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`SERVE_APP is on but the web client could not be built (${detail}); set SERVE_APP=off to run without it`, { cause: err });
  }
  const htmlEtag = `"${createHash('sha256').update(html).digest('base64url').slice(0, 27)}"`;

  await app.register(async (scope) => {
    // @NOTE the router ignores trailing slashes, so one route answers /app and /app/.
    scope.get('/app', { schema: { hide: true } }, (request, reply) => {
      const [pathname, query] = splitUrl(request.url);
      if (!pathname.endsWith('/')) return reply.redirect(`/app/${query}`, 302);
      return sendCached(request.headers['if-none-match'], reply, html, htmlEtag, 'text/html; charset=utf-8');
    });
    scope.get('/app/app.js', { schema: { hide: true } }, (request, reply) =>
      sendCached(request.headers['if-none-match'], reply, bundle.code, bundle.etag, 'text/javascript; charset=utf-8'),
    );
    await scope.register(fastifyStatic, {
      root: WEB_PUBLIC,
      prefix: '/app/',
      // One route per file found at start (a file added later needs a restart): no wildcard, no
      // directory listing, no index, no dotfiles.
      wildcard: false,
      list: false,
      index: false,
      decorateReply: false,
      dotfiles: 'deny',
      cacheControl: false,
      setHeaders: (reply) => void reply.header('Cache-Control', 'no-cache'),
      globIgnore: ['index.html'], // served at /app/
    });
  });
  ctx.log.http.info({ bytes: bundle.code.length }, 'web client served at /app/');
}

function splitUrl(url: string): [string, string] {
  const i = url.indexOf('?');
  return i === -1 ? [url, ''] : [url.slice(0, i), url.slice(i)];
}

/** Revalidated on every use (`no-cache` + ETag): a new server version is picked up at once, an unchanged one costs a 304. */
function sendCached(ifNoneMatch: string | undefined, reply: FastifyReply, body: Buffer, etag: string, type: string): FastifyReply {
  reply.header('ETag', etag).header('Cache-Control', 'no-cache').type(type);
  if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) {
    return reply.code(304).send();
  }
  return reply.send(body);
}
