import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { AuthResponse, Chat, Message } from '@safechat/protocol';

export interface Res<T = any> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface Session {
  id: string;
  username: string;
  password: string;
  token: string;
  refreshToken: string;
}

let counter = 0;
/** A unique, valid username per call. */
export function uniqueName(prefix = 'user'): string {
  return `${prefix}_${process.pid}_${++counter}_${randomBytes(2).toString('hex')}`.slice(0, 32);
}

export const STRONG_PASSWORD = 'violet-Harbor-42-lantern';

export function b64(bytes: number): string {
  return randomBytes(bytes).toString('base64');
}

/** A valid ciphertext envelope of `bytes` random bytes. */
export function envelope(bytes = 64, type: Message['type'] = 'text') {
  return { encryptedContent: b64(bytes), iv: b64(16), mac: b64(32), type };
}

/** Keys no JSON answer may ever carry (SECURITY AZ-06, T-AZ-07): hashes, secrets, private key material. */
const SECRET_KEY = /^(password|passwordhash|password_hash|hash|tokenhash|token_hash|secret|jwtsecret|privatekey|private_key|d|seed)$/i;
/** Tokens only in the answers of the auth routes that issue them. */
const TOKEN_KEY = /^(accesstoken|refreshtoken|access_token|refresh_token|token)$/i;

/**
 * T-AZ-07, on every answer of every test that goes through this client: no key of the JSON names a
 * secret, and tokens appear only where they are issued. (The OpenAPI document describes request
 * bodies, so it names `password`: it is skipped.)
 */
function assertNothingSecret(url: string, body: unknown): void {
  if (url.startsWith('/openapi.json') || url.startsWith('/docs')) return;
  const tokensAllowed = /^\/auth\/(register|login|refresh-token|change-password)\b/.test(url);
  const walk = (v: unknown, path: string): void => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`));
    if (v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (SECRET_KEY.test(k) || (!tokensAllowed && TOKEN_KEY.test(k))) throw new Error(`T-AZ-07: the answer to ${url} carries "${path}.${k}"`);
      walk(x, `${path}.${k}`);
    }
  };
  walk(body, 'body');
}

/** The API through app.inject: real routing, hooks, parsing and validation, no socket. */
export class Api {
  constructor(readonly app: FastifyInstance, readonly ip = '127.0.0.1') {}

  async request<T = any>(method: string, url: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Res<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let payload: string | undefined;
    if (opts.raw !== undefined) payload = opts.raw;
    else if (opts.body !== undefined) payload = JSON.stringify(opts.body);
    if (payload !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
    const res = await this.app.inject({ method: method as 'GET', url, headers, payload, remoteAddress: this.ip });
    let body: any;
    try {
      body = res.body === '' ? undefined : JSON.parse(res.body);
    } catch {
      body = res.body;
    }
    assertNothingSecret(url, body);
    return { status: res.statusCode, body, headers: res.headers as Res['headers'], text: res.body };
  }

  get<T = any>(url: string, token?: string) {
    return this.request<T>('GET', url, { token });
  }
  post<T = any>(url: string, body: unknown, token?: string) {
    return this.request<T>('POST', url, { token, body });
  }
  put<T = any>(url: string, body: unknown, token?: string) {
    return this.request<T>('PUT', url, { token, body });
  }

  async register(username = uniqueName(), password = STRONG_PASSWORD, extra: Record<string, unknown> = {}): Promise<Session> {
    const res = await this.post<AuthResponse>('/auth/register', { username, password, ...extra });
    if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`);
    return { id: res.body.user.id, username, password, token: res.body.accessToken, refreshToken: res.body.refreshToken };
  }

  /** Another login of a registered user: a new token family (session). */
  async login(u: Session): Promise<Session> {
    const res = await this.post<AuthResponse>('/auth/login', { username: u.username, password: u.password });
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${res.text}`);
    return { ...u, token: res.body.accessToken, refreshToken: res.body.refreshToken };
  }

  async chat(a: Session, b: Session): Promise<Chat> {
    const res = await this.post<Chat>('/chats', { participantIds: [b.id] }, a.token);
    if (res.status !== 201 && res.status !== 200) throw new Error(`chat failed: ${res.status} ${res.text}`);
    return res.body;
  }

  async send(from: Session, body: Record<string, unknown>): Promise<Message> {
    const res = await this.post<Message>('/messages', { ...envelope(), ...body }, from.token);
    if (res.status !== 201) throw new Error(`send failed: ${res.status} ${res.text}`);
    return res.body;
  }
}

/** Every error response has exactly the SPEC's shape and leaks no internals. */
export function isErrorShape(body: any, code?: string): boolean {
  if (!body || typeof body !== 'object' || !body.error || typeof body.error !== 'object') return false;
  if (typeof body.error.code !== 'string' || typeof body.error.message !== 'string') return false;
  if (code !== undefined && body.error.code !== code) return false;
  const text = JSON.stringify(body);
  return !/\bat \S+:\d+:\d+|node_modules|SQLITE_|syntax error|pg-protocol|stack/.test(text);
}
