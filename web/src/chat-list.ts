/** The list of chats: name, last activity, a preview from this browser's history, unread count, key-change mark. */
import { byId, h, show } from './dom.js';
import { fullWhen, preview, shortWhen } from './format.js';

export interface ChatEntry {
  chatId: string;
  peerId: string;
  peerName: string;
  unread: number;
  lastActivityAt: string;
  /** The last message this browser can show, if any. */
  preview: { text: string; mine: boolean } | null;
  /** Whether the chat has any message at all (some may not be readable here). */
  hasMessages: boolean;
  /** The contact's identity key changed and the user has not confirmed it. */
  warning: boolean;
}

export class ChatList {
  readonly #list = byId<HTMLUListElement>('chat-list');
  readonly #empty = byId('chats-empty');
  #selected: string | null = null;

  /** `signal`: aborting it removes the listeners (the views outlive a login, their handlers do not). */
  constructor(
    private readonly onOpen: (peerId: string) => void,
    signal: AbortSignal,
  ) {
    this.#list.addEventListener(
      'click',
      (ev) => {
        const button = (ev.target as Element).closest<HTMLButtonElement>('button[data-peer]');
        if (button?.dataset.peer) this.onOpen(button.dataset.peer);
      },
      { signal },
    );
  }

  render(entries: ChatEntry[]): void {
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.peer;
    this.#list.replaceChildren(...entries.map((e) => this.#item(e)));
    show(this.#empty, entries.length === 0);
    if (focused) this.#list.querySelector<HTMLButtonElement>(`button[data-peer="${CSS.escape(focused)}"]`)?.focus();
  }

  select(peerId: string | null): void {
    this.#selected = peerId;
    for (const b of this.#list.querySelectorAll<HTMLButtonElement>('button[data-peer]')) {
      if (b.dataset.peer === peerId) b.setAttribute('aria-current', 'true');
      else b.removeAttribute('aria-current');
    }
  }

  focus(peerId: string): void {
    this.#list.querySelector<HTMLButtonElement>(`button[data-peer="${CSS.escape(peerId)}"]`)?.focus();
  }

  #item(e: ChatEntry): HTMLLIElement {
    const unread =
      e.unread > 0
        ? h('span', { class: 'badge' }, h('span', { 'aria-hidden': 'true' }, String(e.unread)), h('span', { class: 'visually-hidden' }, `, ${e.unread} unread`))
        : null;
    const text = e.preview
      ? e.preview.mine
        ? `You: ${preview(e.preview.text)}`
        : preview(e.preview.text)
      : e.hasMessages
        ? 'Encrypted message'
        : 'No messages yet';
    return h(
      'li',
      {},
      h(
        'button',
        { type: 'button', class: 'chat-item', 'data-peer': e.peerId, 'aria-current': e.peerId === this.#selected ? 'true' : undefined },
        h(
          'span',
          { class: 'chat-item__top' },
          h('span', { class: 'chat-item__name' }, e.peerName),
          h('time', { class: 'chat-item__time', datetime: e.lastActivityAt, title: fullWhen(e.lastActivityAt) }, h('span', { class: 'visually-hidden' }, ', last activity '), shortWhen(e.lastActivityAt)),
        ),
        h(
          'span',
          { class: 'chat-item__bottom' },
          e.warning ? h('span', { class: 'chat-item__warning' }, '⚠ Safety number changed') : h('span', { class: 'chat-item__preview' }, text),
          unread,
        ),
      ),
    );
  }
}
