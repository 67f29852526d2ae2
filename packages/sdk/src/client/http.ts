/**
 * A typed client for the whole REST API. Every call returns the contract's type or throws an
 * {@link ApiError}. Authenticated calls refresh the access token by themselves: shortly before
 * it expires, and once more if the server answers 401 (one refresh shared by every concurrent
 * caller); a refresh the server refuses ends the session (`signedOut`).
 */
import type {
  AuthResponse,
  ChangePasswordBody,
  Chat,
  ChatList,
  Health,
  KeyCount,
  LoginBody,
  Message,
  MessagePage,
  PreKeyBundle,
  RegisterBody,
  SendMessageBody,
  TokenPair,
  UploadKeysBody,
  User,
} from '@safechat/protocol';
import { Emitter } from './emitter.js';
import { ApiError, codeOfStatus, SignedOutError } from './errors.js';
import { MemoryTokenStore, type StoredTokens, type TokenStore } from './stores.js';

/** The subset of `fetch` the client uses: the global one, a polyfill, or one backed by `app.inject`. */
export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body?: string }) => Promise<Response>;

export interface HttpClientOptions {
  /** The server, e.g. `https://chat.example.com` (no trailing path). */
  baseUrl: string;
  /** Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Where the login's tokens live (default: in memory). */
  tokens?: TokenStore;
  /** Milliseconds since the epoch (default: `Date.now`). */
  now?: () => number;
  /** An access token with less than this left is refreshed before use (default 5 s). */
  refreshMarginMs?: number;
}

export interface HttpClientEvents {
  /** The session ended: the refresh token was refused (expired, revoked, reused) or `logout()` ran. */
  signedOut: { reason: 'refresh_failed' | 'logout' | 'account_deleted' };
  /** New tokens were stored (after sign-in or a refresh). */
  tokens: StoredTokens;
}

/** What the WebSocket client needs from the HTTP client to authenticate. */
export interface TokenSource {
  /** A valid access token, refreshed first if less than `minValidityMs` is left. Throws SignedOutError when signed out. */
  accessToken(minValidityMs?: number): Promise<string>;
  /** When the current access token expires (client clock, ms), or undefined when signed out. */
  accessTokenExpiresAt(): Promise<number | undefined>;
  /** The server refused `rejected`: refresh unless that already happened since. */
  renew(rejected: string): Promise<void>;
}

/**
 * The server's largest chat page (MAX_CHAT_PAGE in @safechat/protocol). Restated: importing a value
 * from the protocol package would bundle zod into the web client, whose eval probe breaks its CSP.
 */
const CHAT_PAGE = 200;

export interface ChatPageQuery {
  limit?: number;
  cursor?: string;
}

export interface MessagePageQuery {
  limit?: number;
  before?: string;
  after?: string;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export class HttpClient implements TokenSource {
  readonly events = new Emitter<HttpClientEvents>();
  readonly #base: string;
  readonly #fetch: FetchLike;
  readonly #store: TokenStore;
  readonly #now: () => number;
  readonly #margin: number;
  /** undefined: not loaded from the store yet; null: signed out. */
  #tokens: StoredTokens | null | undefined;
  #refreshing: Promise<void> | null = null;

  constructor(opts: HttpClientOptions) {
    this.#base = opts.baseUrl.replace(/\/+$/, '');
    const f: FetchLike | undefined = opts.fetch ?? globalThis.fetch;
    if (!f) throw new TypeError('no fetch: pass the fetch option');
    // @NOTE called as a plain function: browsers throw "Illegal invocation" for fetch called on another object.
    this.#fetch = (url, init) => f(url, init);
    this.#store = opts.tokens ?? new MemoryTokenStore();
    this.#now = opts.now ?? Date.now;
    this.#margin = opts.refreshMarginMs ?? 5_000;
  }

  get baseUrl(): string {
    return this.#base;
  }

  // ---- auth ----

  /** `POST /auth/register`; stores the tokens. */
  async register(body: RegisterBody): Promise<AuthResponse> {
    const res = await this.#call<AuthResponse>('POST', '/auth/register', { body });
    await this.#setTokens(res);
    return res;
  }

  /** `POST /auth/login`; stores the tokens. */
  async login(body: LoginBody): Promise<AuthResponse> {
    const res = await this.#call<AuthResponse>('POST', '/auth/login', { body });
    await this.#setTokens(res);
    return res;
  }

  /** Rotates the tokens (`POST /auth/refresh-token`); concurrent callers share one request. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#doRefresh().finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  /** `POST /auth/logout` (revokes the login on the server) and forgets the tokens, even if the server cannot be reached. */
  async logout(): Promise<void> {
    const t = await this.#current();
    try {
      if (t) await this.#call<void>('POST', '/auth/logout', { body: { refreshToken: t.refreshToken } });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
    } finally {
      await this.#signOut('logout');
    }
  }

  /**
   * `POST /auth/change-password`: every login of the user ends (their sockets close with 4401);
   * this client continues with the new tokens the server returns.
   */
  async changePassword(body: ChangePasswordBody): Promise<void> {
    await this.#setTokens(await this.#authed<TokenPair>('POST', '/auth/change-password', body));
  }

  /** `DELETE /users/me` (password required): the account and everything tied to it are gone; the client is signed out. */
  async deleteAccount(password: string): Promise<void> {
    await this.#authed<void>('DELETE', '/users/me', { password });
    await this.#signOut('account_deleted');
  }

  /** Whether tokens are stored (they may still turn out to be revoked). */
  async isSignedIn(): Promise<boolean> {
    return (await this.#current()) !== null;
  }

  async accessToken(minValidityMs = this.#margin): Promise<string> {
    if (this.#refreshing) await this.#refreshing;
    let t = await this.#current();
    if (!t) throw new SignedOutError();
    if (t.expiresAt - this.#now() < minValidityMs) {
      await this.refresh();
      t = await this.#current();
      if (!t) throw new SignedOutError();
    }
    return t.accessToken;
  }

  async accessTokenExpiresAt(): Promise<number | undefined> {
    return (await this.#current())?.expiresAt;
  }

  async renew(rejected: string): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    const t = await this.#current();
    if (!t) throw new SignedOutError();
    if (t.accessToken !== rejected) return; // someone refreshed already
    return this.refresh();
  }

  // ---- users ----

  getMe(): Promise<User> {
    return this.#authed('GET', '/users/me');
  }
  getUser(userId: string): Promise<User> {
    return this.#authed('GET', `/users/${encodeURIComponent(userId)}`);
  }
  /** Exact username, case-insensitive; 404 when there is none. */
  findUser(username: string): Promise<User> {
    return this.#authed('GET', `/users?username=${encodeURIComponent(username)}`);
  }

  // ---- keys ----

  /** `PUT /keys`: identity key, signed pre-key and one-time pre-keys (public parts only). */
  uploadKeys(body: UploadKeysBody): Promise<KeyCount> {
    return this.#authed('PUT', '/keys', body);
  }
  /** `GET /keys/{userId}`: claims one of the user's one-time pre-keys (if any is left). */
  getPreKeyBundle(userId: string): Promise<PreKeyBundle> {
    return this.#authed('GET', `/keys/${encodeURIComponent(userId)}`);
  }
  /** `GET /keys/count`: how many of the caller's one-time pre-keys the server still holds. */
  getPreKeyCount(): Promise<KeyCount> {
    return this.#authed('GET', '/keys/count');
  }

  // ---- chats ----

  /** `POST /chats`; `created` is false when the one-to-one chat already existed (200). */
  async createChat(participantIds: string[]): Promise<{ chat: Chat; created: boolean }> {
    const { status, body } = await this.#request<Chat>('POST', '/chats', { body: { participantIds }, auth: true });
    return { chat: body, created: status === 201 };
  }
  /** `GET /chats`: one page, most recent activity first; pass `nextCursor` back as `cursor` for the next. */
  getChats(query: ChatPageQuery = {}): Promise<ChatList> {
    const q = new URLSearchParams();
    if (query.limit !== undefined) q.set('limit', String(query.limit));
    if (query.cursor !== undefined) q.set('cursor', query.cursor);
    const qs = q.toString();
    return this.#authed('GET', `/chats${qs ? `?${qs}` : ''}`);
  }
  /**
   * Every chat, most recent activity first: follows the pages (one request per 200 chats). A chat
   * whose activity changed while paging can be on two pages: it is listed once, where first seen.
   */
  async listChats(): Promise<Chat[]> {
    const all = new Map<string, Chat>();
    let cursor: string | undefined;
    do {
      const page = await this.getChats({ limit: CHAT_PAGE, ...(cursor === undefined ? {} : { cursor }) });
      for (const c of page.chats) if (!all.has(c.id)) all.set(c.id, c);
      const next = page.nextCursor ?? undefined;
      // A cursor that does not move would page forever.
      cursor = next === cursor ? undefined : next;
    } while (cursor !== undefined);
    return [...all.values()];
  }
  getChat(chatId: string): Promise<Chat> {
    return this.#authed('GET', `/chats/${encodeURIComponent(chatId)}`);
  }

  // ---- messages ----

  /** `POST /messages`; `created` is false for a retry with a `clientMessageId` already stored (200). */
  async sendMessage(body: SendMessageBody): Promise<{ message: Message; created: boolean }> {
    const { status, body: message } = await this.#request<Message>('POST', '/messages', { body, auth: true });
    return { message, created: status === 201 };
  }
  /** `GET /messages/{chatId}`: a page, oldest first (the latest page by default). */
  getMessages(chatId: string, query: MessagePageQuery = {}): Promise<MessagePage> {
    const q = new URLSearchParams();
    if (query.limit !== undefined) q.set('limit', String(query.limit));
    if (query.before !== undefined) q.set('before', query.before);
    if (query.after !== undefined) q.set('after', query.after);
    const qs = q.toString();
    return this.#authed('GET', `/messages/${encodeURIComponent(chatId)}${qs ? `?${qs}` : ''}`);
  }
  /** `PUT /messages/{id}/status` (receiver only; forward only). */
  setMessageStatus(messageId: string, status: 'delivered' | 'read'): Promise<Message> {
    return this.#authed('PUT', `/messages/${encodeURIComponent(messageId)}/status`, { status });
  }

  // ---- operations ----

  /** `GET /health`: resolves for 200 and for 503 (`status: "unavailable"`); throws only when unreachable. */
  async health(): Promise<Health> {
    try {
      return await this.#call<Health>('GET', '/health', {});
    } catch (err) {
      if (err instanceof ApiError && err.status === 503 && isHealth(err.details)) return err.details;
      throw err;
    }
  }

  // ---- internals ----

  async #authed<T>(method: Method, path: string, body?: unknown): Promise<T> {
    return (await this.#request<T>(method, path, { body, auth: true })).body;
  }

  async #call<T>(method: Method, path: string, opts: { body?: unknown }): Promise<T> {
    return (await this.#request<T>(method, path, { body: opts.body, auth: false })).body;
  }

  async #request<T>(method: Method, path: string, opts: { body?: unknown; auth: boolean }): Promise<{ status: number; body: T }> {
    if (!opts.auth) return this.#send<T>(method, path, opts.body, undefined);
    const token = await this.accessToken();
    try {
      return await this.#send<T>(method, path, opts.body, token);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      await this.renew(token); // throws SignedOutError when the refresh is refused
      return this.#send<T>(method, path, opts.body, await this.accessToken());
    }
  }

  async #send<T>(method: Method, path: string, body: unknown, token: string | undefined): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(this.#base + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
      text = await res.text();
    } catch (err) {
      throw new ApiError(0, 'network_error', `request failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    let json: unknown = undefined;
    if (text !== '') {
      try {
        json = JSON.parse(text);
      } catch {
        if (res.ok) throw new ApiError(res.status, 'invalid_response', 'the server answered with something that is not JSON');
      }
    }
    if (res.ok) return { status: res.status, body: json as T };
    throw toApiError(res, json, text);
  }

  async #current(): Promise<StoredTokens | null> {
    if (this.#tokens === undefined) this.#tokens = (await this.#store.load()) ?? null;
    return this.#tokens;
  }

  async #setTokens(pair: TokenPair): Promise<void> {
    const t: StoredTokens = { accessToken: pair.accessToken, refreshToken: pair.refreshToken, expiresAt: this.#now() + pair.expiresIn * 1000 };
    this.#tokens = t;
    await this.#store.save(t);
    this.events.emit('tokens', t);
  }

  async #doRefresh(): Promise<void> {
    const t = await this.#current();
    if (!t) throw new SignedOutError();
    let pair: TokenPair;
    try {
      pair = await this.#call<TokenPair>('POST', '/auth/refresh-token', { body: { refreshToken: t.refreshToken } });
    } catch (err) {
      // 401: expired, revoked or reused; 400: not even a token. Either way this login is over.
      if (err instanceof ApiError && (err.status === 401 || err.status === 400)) {
        await this.#signOut('refresh_failed');
        throw new SignedOutError(`signed out: ${err.message}`);
      }
      throw err; // network, 429, 5xx: keep the tokens and let the caller retry
    }
    await this.#setTokens(pair);
  }

  async #signOut(reason: HttpClientEvents['signedOut']['reason']): Promise<void> {
    const had = (await this.#current()) !== null;
    this.#tokens = null;
    await this.#store.clear();
    if (had) this.events.emit('signedOut', { reason });
  }
}

function toApiError(res: Response, json: unknown, text: string): ApiError {
  const e = (json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  const header = res.headers.get('retry-after');
  let retryAfter = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : undefined;
  const detailRetry = (e?.details as { retryAfter?: unknown } | undefined)?.retryAfter;
  if (retryAfter === undefined && typeof detailRetry === 'number') retryAfter = detailRetry;
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    return new ApiError(res.status, e.code as ApiError['code'], e.message, e.details, retryAfter);
  }
  // Not the contract's error shape (a proxy's page, 503 health body): keep what there is.
  return new ApiError(res.status, codeOfStatus(res.status), text.slice(0, 200) || res.statusText || `HTTP ${res.status}`, json, retryAfter);
}

function isHealth(v: unknown): v is Health {
  return typeof v === 'object' && v !== null && typeof (v as { status?: unknown }).status === 'string';
}
