/**
 * SECURITY.md T-FUZZ-01: a property-based fuzz of every REST route with fast-check. Each run sends
 * one generated request: a mutation of a valid body (a field replaced by another type, removed,
 * added, nested), `fc.json()`, `fc.object()`, `fc.string({unit:'binary'})`, `{unit:'grapheme'}`,
 * raw bytes, odd content types, and generated path and query parameters. Properties:
 *   - never a 5xx (and only statuses the API documents);
 *   - every 4xx has the SPEC's error shape and leaks nothing;
 *   - a 4xx changes nothing (row counts and state counters of the database).
 *
 * FUZZ_RUNS (default 300) sets the runs per route; FUZZ_SEED replays a run. The seed is printed
 * whenever a property fails. Every route of the OpenAPI document is fuzzed: the routes below have
 * valid bodies to mutate; any other documented route is fuzzed from an empty template.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Chat, Message } from '@safechat/protocol';
import { Api, envelope, STRONG_PASSWORD, type Session } from '../_helpers/api.js';
import { keyUpload } from '../_helpers/keys.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';
import { FAST_ARGON2 } from '../_helpers/ws.js';
import { expectErrorBody, snapshot } from './_support.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;
const DOCUMENTED_STATUSES = new Set([200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 429]);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface Fixture {
  /** The valid ids a path may name. */
  ids: string[];
  token: string;
}

interface RouteSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** OpenAPI-style template, `{param}` for path parameters. */
  path: string;
  /** A valid body to mutate (omitted: the route takes none, but is fuzzed with bodies anyway). */
  body?: (f: Fixture) => Record<string, Json>;
  /** Query keys the route knows, to bias generation towards them. */
  query?: string[];
  /** Sent as the spare user: a surprise success must not end alice's session for later routes. */
  spare?: boolean;
}

/** Percent-encodes every byte, so any generated string (even a lone surrogate) makes a legal URL. */
const enc = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');

/** Every path to a value inside a JSON body (objects and arrays), for targeted mutation. */
function paths(v: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (v === null || typeof v !== 'object') return [prefix];
  const entries: [string | number, Json][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  return [prefix, ...entries.flatMap(([k, x]) => paths(x, [...prefix, k]))];
}

function setAt(root: Json, path: (string | number)[], op: 'replace' | 'delete' | 'add', value: Json, key: string): Json {
  const copy = structuredClone(root);
  if (path.length === 0) return op === 'replace' ? value : copy;
  let node = copy as Record<string | number, Json>;
  for (const p of path.slice(0, -1)) node = node[p] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (op === 'replace') node[last] = value;
  else if (op === 'delete') {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else if (!Array.isArray(node)) node[key] = value;
  return copy;
}

const anyValue: fc.Arbitrary<Json> = fc.oneof(
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme', minLength: 200, maxLength: 2000 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('', ' ', '0', '-1', 'null', '__proto__', "' OR 1=1--", '\u0000', '../../etc/passwd', 'A'.repeat(5000)),
  fc.jsonValue() as fc.Arbitrary<Json>,
  fc.array(fc.string(), { maxLength: 5 }),
  fc.object() as fc.Arbitrary<Json>,
);

/** A request body: raw text or bytes, and the content type it is sent with. */
interface GenBody {
  payload?: string | Buffer;
  contentType?: string;
}

function bodyArb(template: Json | undefined): fc.Arbitrary<GenBody> {
  const json = (v: unknown): GenBody => ({ payload: JSON.stringify(v) ?? 'null', contentType: 'application/json' });
  const raw = (s: string | Buffer): GenBody => ({ payload: s, contentType: 'application/json' });
  const base = template ?? {};
  const all = paths(base);
  const mutation = fc
    .record({
      path: fc.constantFrom(...all),
      op: fc.constantFrom('replace' as const, 'delete' as const, 'add' as const),
      value: anyValue,
      key: fc.oneof(fc.string(), fc.constantFrom('senderId', 'id', 'isAdmin', 'userId', 'status', 'seq', '__proto__', 'constructor')),
    })
    .map(({ path, op, value, key }) => setAt(base, path, op, value, key));
  return fc.oneof(
    { weight: 6, arbitrary: mutation.map(json) },
    { weight: 2, arbitrary: fc.array(mutation.map((m) => m), { minLength: 2, maxLength: 3 }).map((ms) => json(Object.assign({}, ...ms.filter((m) => m && typeof m === 'object' && !Array.isArray(m))))) },
    { weight: 1, arbitrary: fc.constant(json(base)) },
    { weight: 2, arbitrary: fc.json().map(raw) },
    { weight: 2, arbitrary: fc.object().map(json) },
    { weight: 1, arbitrary: fc.jsonValue().map(json) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary' }).map(raw) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme' }).map(raw) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => raw(Buffer.from(b))) },
    {
      weight: 1,
      arbitrary: fc.record({
        payload: fc.oneof(fc.json(), fc.constant(JSON.stringify(base))),
        contentType: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/xml', ''),
      }),
    },
    { weight: 1, arbitrary: fc.constant({}) },
  );
}

/**
 * Generated path parameters go past the router's 200-character limit on purpose (that answer is
 * a SPEC-shaped 400 too) and are cut only between whole characters.
 */
const MAX_PARAM_CHARS = 300;

/** Percent-encodes whole code points while the result fits in MAX_PARAM_CHARS. */
function encParam(s: string): string {
  let out = '';
  for (const ch of s) {
    const e = enc(ch);
    if (out.length + e.length > MAX_PARAM_CHARS) break;
    out += e;
  }
  return out || 'x';
}

function pathParamArb(ids: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...ids) },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.uuid().map((u) => u.toUpperCase()) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1 }).map(encParam) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1 }).map(encParam) },
    { weight: 1, arbitrary: fc.constantFrom('..', '.', '%00', '%2e%2e%2f', 'me', 'count', '-1', '0', '1e3', "'%20OR%201=1--", 'a'.repeat(MAX_PARAM_CHARS)) },
  );
}

function queryArb(known: string[], ids: string[]): fc.Arbitrary<string> {
  const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known, 'limit', 'since', 'access_token') }, { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1 }) });
  const value = fc.oneof(
    fc.constantFrom(...ids, '', '0', '-1', '100', '101', '1e9', 'abc', 'NaN'),
    fc.integer().map(String),
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary' }),
  );
  return fc.array(fc.tuple(key, value), { maxLength: 4 }).map((pairs) => (pairs.length ? '?' + pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&') : ''));
}

describeEachDialect('fuzz every route', (dialect) => {
  let srv: TestServer;
  let api: Api;
  let alice: Session, bob: Session, spare: Session;
  let chat: Chat;
  let msg: Message;
  let fixture: Fixture;
  const failures: string[] = [];

  beforeAll(async () => {
    srv = await testServer({ dialect, env: { RATE_LIMITS: 'off' }, overrides: { argon2: FAST_ARGON2 } });
    api = new Api(srv.app);
    [alice, bob, spare] = await Promise.all([api.register(), api.register(), api.register()]);
    chat = await api.chat(alice, bob);
    msg = await api.send(bob, { chatId: chat.id });
    expect((await api.put('/keys', keyUpload().body, bob.token)).status).toBe(200);
    fixture = { ids: [alice.id, bob.id, chat.id, msg.id], token: alice.token };
  });
  afterAll(async () => {
    if (failures.length) console.error(`fuzz failures (${dialect}): ${failures.join('; ')}`);
    await srv.close();
  });

  // A syntactically valid refresh token that belongs to no session: a real one would be rotated by
  // the unmutated sample and then count as reuse (a designed, state-changing 401).
  const unknownRefresh = 'A'.repeat(43);
  const specs: RouteSpec[] = [
    { method: 'POST', path: '/auth/register', body: () => ({ username: 'fuzz_user', password: STRONG_PASSWORD }) },
    { method: 'POST', path: '/auth/login', body: () => ({ username: alice.username, password: 'not-the-password' }) },
    { method: 'POST', path: '/auth/refresh-token', body: () => ({ refreshToken: unknownRefresh }) },
    { method: 'POST', path: '/auth/logout', body: () => ({ refreshToken: unknownRefresh }) },
    { method: 'GET', path: '/users/me' },
    { method: 'GET', path: '/users/{id}' },
    { method: 'GET', path: '/users', query: ['username'] },
    { method: 'PUT', path: '/keys', body: () => keyUpload(undefined, 2, 1000).body },
    { method: 'GET', path: '/keys/count' },
    { method: 'GET', path: '/keys/{userId}' },
    { method: 'POST', path: '/chats', body: () => ({ participantIds: [bob.id] }) },
    { method: 'GET', path: '/chats' },
    { method: 'GET', path: '/chats/{chatId}' },
    { method: 'POST', path: '/messages', body: () => ({ chatId: chat.id, ...envelope(), clientMessageId: 'fuzz-1' }) },
    { method: 'GET', path: '/messages/{chatId}', query: ['limit', 'before', 'after'] },
    { method: 'PUT', path: '/messages/{id}/status', body: () => ({ status: 'delivered' }) },
    { method: 'POST', path: '/auth/change-password', spare: true, body: () => ({ currentPassword: 'not-the-password', newPassword: 'another-Harbor-43-lantern' }) },
    { method: 'DELETE', path: '/users/me', spare: true, body: () => ({ password: 'not-the-password' }) },
    { method: 'GET', path: '/health' },
    { method: 'GET', path: '/health/live' },
  ];

  /** One generated request against `spec`, checked against the three properties. */
  async function probe(spec: RouteSpec, token: string, pathValues: string[], query: string, body: GenBody): Promise<void> {
    let i = 0;
    const url = spec.path.replace(/\{[^}]+\}/g, () => pathValues[i++] ?? msg.id) + query;
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body.contentType) headers['content-type'] = body.contentType;
    const before = await snapshot(srv);
    const res = await srv.app.inject({ method: spec.method, url, headers, ...(body.payload !== undefined ? { payload: body.payload } : {}), remoteAddress: '127.0.0.1' });
    const where = `${spec.method} ${url} ${String(body.payload ?? '').slice(0, 200)} → ${res.statusCode} ${res.body.slice(0, 300)}`;
    expect(res.statusCode, where).toBeLessThan(500);
    expect(DOCUMENTED_STATUSES.has(res.statusCode), where).toBe(true);
    if (res.statusCode >= 400) {
      expectErrorBody(JSON.parse(res.body), where);
      expect(await snapshot(srv), `database changed on a 4xx: ${where}`).toEqual(before);
    }
  }

  async function fuzz(spec: RouteSpec, token: string): Promise<void> {
    const nParams = (spec.path.match(/\{/g) ?? []).length;
    const arb = fc.record({
      pathValues: fc.array(pathParamArb(fixture.ids), { minLength: nParams, maxLength: nParams }),
      query: spec.query || spec.method === 'GET' ? queryArb(spec.query ?? [], fixture.ids) : fc.constant(''),
      body: spec.method === 'GET' ? fc.oneof({ weight: 9, arbitrary: fc.constant<GenBody>({}) }, { weight: 1, arbitrary: bodyArb(undefined) }) : bodyArb(spec.body?.(fixture)),
    });
    try {
      await fc.assert(
        fc.asyncProperty(arb, ({ pathValues, query, body }) => {
          return probe(spec, token, pathValues, query, body);
        }),
        { numRuns: RUNS, seed: SEED, interruptAfterTimeLimit: 90_000 },
      );
    } catch (err) {
      failures.push(`${spec.method} ${spec.path}`);
      console.error(`fuzz ${spec.method} ${spec.path} failed — replay with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}`);
      throw err;
    }
  }

  it.each(specs.map((s) => [`${s.method} ${s.path}`, s] as const))('%s', { timeout: 180_000 }, async (_name, spec) => {
    await fuzz(spec, spec.spare ? spare.token : alice.token);
  });

  it('documented routes outside the table are fuzzed too, from an empty template', { timeout: 600_000 }, async () => {
    const doc = (await api.get('/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => m !== 'head').map((m) => `${m.toUpperCase()} ${p}`));
    const covered = new Set(specs.map((s) => `${s.method} ${s.path}`));
    // /metrics answers Prometheus text and takes no input.
    const extra = documented.filter((r) => !covered.has(r) && r !== 'GET /metrics');
    console.info(`fuzz [${dialect}]: seed ${SEED}, ${RUNS} runs per route, ${covered.size} routes in the table${extra.length ? `, generic: ${extra.join(', ')}` : ''}`);
    expect(documented.length).toBeGreaterThanOrEqual(covered.size);
    // They run as a spare user, so a surprise success (a password change, a deletion) cannot end
    // alice's session for the routes after it.
    for (const r of extra) {
      const [method, path] = r.split(' ') as [RouteSpec['method'], string];
      await fuzz({ method, path, body: () => ({}) }, spare.token);
    }
  });
});
