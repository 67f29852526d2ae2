import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.js';

/**
 * Unknown paths get 404; known paths with another method get 405 and an `Allow` header
 * (Fastify answers both with 404 by itself).
 */
export function registerNotFound(app: FastifyInstance): void {
  const routes: { pattern: RegExp; methods: Set<string> }[] = [];
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat().filter((m) => m !== 'OPTIONS'); // CORS pre-flight answers every path
    if (methods.length === 0) return;
    const source = '^' + route.url.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\\\*|\*/g, '.*').replace(/:[A-Za-z_]+/g, '[^/]+') + '/?$';
    let entry = routes.find((r) => r.pattern.source === source);
    if (!entry) routes.push((entry = { pattern: new RegExp(source), methods: new Set() }));
    for (const m of methods) entry.methods.add(m);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = new Set<string>();
    for (const r of routes) if (r.pattern.test(path)) r.methods.forEach((m) => allowed.add(m));
    if (allowed.size > 0) {
      const err = new AppError('method_not_allowed', `${request.method} is not allowed here`);
      return reply.code(405).header('Allow', [...allowed].sort().join(', ')).send(err.toBody());
    }
    return reply.code(404).send(new AppError('not_found', 'no such route').toBody());
  });
}
