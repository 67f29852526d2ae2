/** The connection line in the top bar: online, connecting, reconnecting, offline. */
import type { SocketState } from '@safechat/sdk';
import { byId, show } from './dom.js';

export type ConnectionState = SocketState | 'offline';

const TEXT: Record<ConnectionState, string> = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  open: 'Online',
  reconnecting: 'Connection lost. Reconnecting…',
  closed: 'Disconnected',
  offline: 'Offline. Waiting for the network…',
};

export class StatusBar {
  readonly #el = byId('connection');
  #socket: SocketState = 'idle';

  set(state: SocketState): void {
    this.#socket = state;
    this.#render();
  }

  /** The browser's own view (navigator.onLine) wins over the socket's while it says offline. */
  refresh(): void {
    this.#render();
  }

  hide(): void {
    show(this.#el, false);
  }

  #render(): void {
    const state: ConnectionState = navigator.onLine || this.#socket === 'open' ? this.#socket : 'offline';
    show(this.#el, true);
    this.#el.dataset.state = state;
    if (this.#el.textContent !== TEXT[state]) this.#el.textContent = TEXT[state];
  }
}
