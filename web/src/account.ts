/**
 * Which account this tab uses, and making sure one account is open in one tab at a time (two
 * tabs sharing a ratchet state would corrupt it; the SDK asks apps to serialise across processes).
 */
import { SafeChatClient } from '@safechat/sdk';
import type { AccountStorage } from './idb-stores.js';

const TAB_KEY = 'safechat.account';
const LAST_KEY = 'safechat.lastAccount';

/** This tab's account (survives a reload), else the last one used on this browser. Only the username is kept here. */
export function rememberedAccount(): string | null {
  try {
    return sessionStorage.getItem(TAB_KEY) ?? localStorage.getItem(LAST_KEY);
  } catch {
    return null;
  }
}

export function rememberAccount(username: string): void {
  try {
    sessionStorage.setItem(TAB_KEY, username);
    localStorage.setItem(LAST_KEY, username);
  } catch {
    // storage disabled: the user logs in again after a reload
  }
}

/** This tab stops resuming the account (after a logout). */
export function forgetTabAccount(): void {
  try {
    sessionStorage.removeItem(TAB_KEY);
  } catch {
    // nothing to forget
  }
}

/**
 * Takes the account's lock (Web Locks API) for this tab. Resolves with the function that
 * releases it, or null when another tab of this browser has the account open. Without Web
 * Locks (not a secure context) there is no guard.
 */
export function claimAccount(username: string): Promise<(() => void) | null> {
  const locks = (navigator as { locks?: LockManager }).locks;
  if (!locks) return Promise.resolve(() => undefined);
  return new Promise((resolve, reject) => {
    locks
      .request(`safechat:${username.toLowerCase()}`, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(null);
          return undefined;
        }
        // Held until released (logout) or the tab goes away.
        return new Promise<void>((release) => resolve(() => release()));
      })
      .catch(reject);
  });
}

/** The SDK client on this account's IndexedDB stores, talking to the server that served the page. */
export function createClient(storage: AccountStorage): SafeChatClient {
  return new SafeChatClient({
    baseUrl: location.origin,
    stores: storage.stores,
    // Receipts are sent by the app (receipts.ts), so "delivered" always comes before "read".
    markDelivered: false,
    socket: { backoff: { initialMs: 500, maxMs: 15_000 } },
  });
}
