/**
 * The app's lifecycle: resume the tab's account, or log in / register; one Messenger while
 * signed in; log out (optionally erasing this browser's copy); the connection line.
 */
import type { User } from '@safechat/protocol';
import { SignedOutError, type SafeChatClient } from '@safechat/sdk';
import { claimAccount, createClient, forgetTabAccount, rememberAccount, rememberedAccount } from './account.js';
import { AuthView, type AuthMode } from './auth-view.js';
import { byId, show } from './dom.js';
import { describeError } from './errors.js';
import { eraseAccountStorage, openAccountStorage, type AccountStorage } from './idb-stores.js';
import { Messenger } from './messenger.js';
import { StatusBar } from './status-bar.js';

interface Session {
  username: string;
  client: SafeChatClient;
  storage: AccountStorage;
  release: () => void;
  messenger: Messenger;
  offs: (() => void)[];
}

const SIGNED_OUT_NOTICE: Record<string, string> = {
  logout: 'You have logged out.',
  erased: 'You have logged out, and this browser’s copy of your keys and messages is erased.',
  refresh_failed: 'Your session has ended (it expired, or you logged out elsewhere). Please log in again.',
  account_deleted: 'This account has been deleted.',
};

export class App {
  readonly #auth = new AuthView({ login: (u, p) => this.#login(u, p), register: (u, p) => this.#register(u, p) });
  readonly #status = new StatusBar();
  readonly #account = byId<HTMLDetailsElement>('account');
  #session: Session | null = null;

  async start(): Promise<void> {
    byId('logout').addEventListener('click', () => void this.#logout(false));
    byId('logout-erase').addEventListener('click', () => void this.#logout(true));
    byId<HTMLFormElement>('new-chat').addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.#startChat(ev.currentTarget as HTMLFormElement);
    });
    // The account menu closes on Escape and on a click elsewhere, like any menu.
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.#account.open) {
        this.#account.open = false;
        this.#account.querySelector('summary')?.focus();
      }
    });
    document.addEventListener('click', (ev) => {
      if (this.#account.open && !this.#account.contains(ev.target as Node)) this.#account.open = false;
    });
    window.addEventListener('online', () => this.#online());
    window.addEventListener('offline', () => this.#status.refresh());

    const username = rememberedAccount();
    let notice: string | undefined;
    if (username) {
      try {
        if (await this.#begin(username, (client) => client.restore())) return this.#booted();
      } catch (err) {
        notice = describeError(err);
      }
    }
    this.#showAuth(username ? 'login' : 'register', username ?? undefined, notice);
    this.#booted();
  }

  #booted(): void {
    show(byId('boot'), false);
  }

  // ---- signing in ----

  #login(username: string, password: string): Promise<void> {
    return this.#begin(username, async (client, storage) => {
      const hadKeys = (await storage.stores.keys.getIdentityKeyPair()) !== undefined;
      // A failed login (a typo in the name) leaves no empty database behind.
      storage.wipeOnClose = !hadKeys;
      const user = await client.login(username, password);
      storage.wipeOnClose = false;
      if (!hadKeys) this.#afterEnter = 'This browser had no keys for your account, so new ones were made. Your contacts will see that your safety number changed, and messages sent to your old keys cannot be read here.';
      return user;
    }).then(() => undefined);
  }

  #register(username: string, password: string): Promise<void> {
    return this.#begin(username, async (client, storage) => {
      const hadKeys = (await storage.stores.keys.getIdentityKeyPair()) !== undefined;
      try {
        return await client.register(username, password);
      } catch (err) {
        // A refused registration leaves no identity key behind for someone else's name.
        if (!hadKeys) storage.wipeOnClose = true;
        throw err;
      }
    }).then(() => undefined);
  }

  #afterEnter: string | null = null;

  /** Takes the account's lock and storage, runs `action`, and enters the app with its user (or gives everything back). */
  async #begin(username: string, action: (client: SafeChatClient, storage: AccountStorage) => Promise<User | null>): Promise<boolean> {
    if (this.#session) return true;
    const release = await claimAccount(username);
    if (!release) throw new Error(`“${username}” is open in another tab of this browser. Use that tab, or log in or create another account here.`);
    let storage: AccountStorage | null = null;
    try {
      storage = await openAccountStorage(username);
      const client = createClient(storage);
      const user = await action(client, storage);
      if (!user) {
        storage.close();
        release();
        return false;
      }
      this.#enter(user, client, storage, release);
      return true;
    } catch (err) {
      if (storage) {
        storage.close();
        if (storage.wipeOnClose) await eraseAccountStorage(username).catch(() => undefined);
      }
      release();
      throw err;
    }
  }

  #enter(user: User, client: SafeChatClient, storage: AccountStorage, release: () => void): void {
    rememberAccount(user.username);
    this.#auth.close();
    byId('account-name').textContent = user.username;
    show(this.#account, true);
    const messenger = new Messenger(client, storage);
    const session: Session = { username: user.username, client, storage, release, messenger, offs: [] };
    this.#session = session;
    let previous = client.socket.state;
    session.offs.push(
      client.on('connection', ({ state }) => {
        this.#status.set(state);
        if (state === 'open' && previous === 'reconnecting') void messenger.refreshChats();
        previous = state;
      }),
      client.on('signedOut', ({ reason }) => {
        if (reason !== 'logout') void this.#leave(reason);
      }),
      client.on('error', ({ error, context }) => console.warn('[safechat]', context, error)),
    );
    this.#status.set(client.socket.state);
    if (this.#afterEnter) {
      messenger.notice(this.#afterEnter);
      this.#afterEnter = null;
    }
    void messenger.refreshChats();
    this.#connect(session);
    byId('new-chat-username').focus();
  }

  #connect(session: Session): void {
    session.client.connect().catch((err: unknown) => {
      if (!(err instanceof SignedOutError)) console.warn('[safechat] connect', err);
    });
  }

  /** The browser is back online: reconnect now instead of waiting for the backoff. */
  #online(): void {
    this.#status.refresh();
    const s = this.#session;
    if (!s || s.client.socket.state === 'open') return;
    s.client.disconnect();
    this.#connect(s);
  }

  // ---- signing out ----

  async #logout(erase: boolean): Promise<void> {
    const s = this.#session;
    if (!s) return;
    if (erase && !window.confirm(`Erase ${s.username}’s keys and message history from this browser? Messages you have here cannot be read again after this.`)) return;
    this.#account.open = false;
    try {
      await s.client.logout();
    } catch {
      // The server could not be told (offline): the tokens are forgotten here all the same.
    }
    await this.#leave(erase ? 'erased' : 'logout');
  }

  async #leave(reason: string): Promise<void> {
    const s = this.#session;
    if (!s) return;
    this.#session = null;
    for (const off of s.offs.splice(0)) off();
    s.messenger.dispose();
    s.client.disconnect();
    s.storage.close();
    if (reason === 'erased') await eraseAccountStorage(s.username).catch((err: unknown) => console.warn('[safechat] erase', err));
    s.release();
    forgetTabAccount();
    this.#status.hide();
    show(this.#account, false);
    this.#showAuth('login', s.username, SIGNED_OUT_NOTICE[reason] ?? 'You have been signed out.');
  }

  #showAuth(mode: AuthMode, username?: string, notice?: string): void {
    this.#auth.open({ mode, ...(username ? { username } : {}), ...(notice ? { notice } : {}) });
  }

  // ---- new chat ----

  async #startChat(form: HTMLFormElement): Promise<void> {
    const s = this.#session;
    const input = form.elements.namedItem('username') as HTMLInputElement;
    const error = byId('new-chat-error');
    const username = input.value.trim();
    if (!s) return;
    if (!username) {
      error.textContent = 'Enter a username.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    error.textContent = '';
    input.removeAttribute('aria-invalid');
    try {
      await s.messenger.startChat(username);
      input.value = '';
    } catch (err) {
      error.textContent = describeError(err, 'find');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }
}
