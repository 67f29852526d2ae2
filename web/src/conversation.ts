/** One conversation on screen: messages in `seq` order, ticks on our own, the composer, the key-change banner. */
import { byId, h, show } from './dom.js';
import { fullWhen, messageWhen } from './format.js';

export type Tick = 'sending' | 'sent' | 'delivered' | 'read' | 'failed';

export interface ViewItem {
  /** The message id (or a local id while it is being sent). */
  id: string;
  /** Position in the chat; pending messages go last. */
  seq: number;
  mine: boolean;
  /** The text, or null when this browser cannot show it (`note` says why). */
  text: string | null;
  note?: string;
  timestamp: string;
  status?: Tick;
}

export interface ConversationHandlers {
  send(text: string): void;
  retry(localId: string): void;
  loadEarlier(): void;
  back(): void;
  safety(): void;
  dismissWarning(): void;
}

const TICKS: Record<Tick, [string, string]> = {
  sending: ['◷', 'Sending'],
  sent: ['✓', 'Sent'],
  delivered: ['✓✓', 'Delivered'],
  read: ['✓✓', 'Read'],
  failed: ['!', 'Not sent'],
};
const RANK: Record<Tick, number> = { failed: -1, sending: 0, sent: 1, delivered: 2, read: 3 };

export class ConversationView {
  readonly #empty = byId('conversation-empty');
  readonly #body = byId('conversation-body');
  readonly #title = byId('conversation-title');
  readonly #list = byId<HTMLOListElement>('messages');
  readonly #scroller = byId('messages-scroller');
  readonly #earlier = byId<HTMLButtonElement>('load-earlier');
  readonly #notice = byId('conversation-notice');
  readonly #warning = byId('identity-warning');
  readonly #input = byId<HTMLTextAreaElement>('composer-input');
  readonly #items = new Map<string, { item: ViewItem; el: HTMLLIElement }>();
  #peerName = '';

  /** `signal`: aborting it removes the listeners. */
  constructor(
    private readonly handlers: ConversationHandlers,
    signal: AbortSignal,
  ) {
    const opts = { signal };
    const form = byId<HTMLFormElement>('composer');
    form.addEventListener(
      'submit',
      (ev) => {
        ev.preventDefault();
        this.#submit();
      },
      opts,
    );
    this.#input.addEventListener(
      'keydown',
      (ev) => {
        if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          this.#submit();
        }
      },
      opts,
    );
    this.#input.addEventListener('input', () => this.#grow(), opts);
    this.#earlier.addEventListener('click', () => handlers.loadEarlier(), opts);
    byId('back').addEventListener('click', () => handlers.back(), opts);
    byId('show-safety').addEventListener('click', () => handlers.safety(), opts);
    byId('identity-warning-view').addEventListener('click', () => handlers.safety(), opts);
    byId('identity-warning-dismiss').addEventListener('click', () => handlers.dismissWarning(), opts);
    this.#list.addEventListener(
      'click',
      (ev) => {
        const b = (ev.target as Element).closest<HTMLButtonElement>('button[data-retry]');
        if (b?.dataset.retry) handlers.retry(b.dataset.retry);
      },
      opts,
    );
  }

  /** Shows an empty conversation with `peerName` (messages follow with {@link upsert}). */
  open(peerName: string): void {
    this.#peerName = peerName;
    this.#items.clear();
    this.#list.replaceChildren();
    this.#title.textContent = peerName;
    this.#list.setAttribute('aria-label', `Messages with ${peerName}`);
    byId('composer-label').textContent = `Message to ${peerName}`;
    this.#input.placeholder = `Message ${peerName}`;
    this.notice(null);
    this.hasMore(false);
    this.warning(null);
    show(this.#empty, false);
    show(this.#body, true);
  }

  close(): void {
    show(this.#body, false);
    show(this.#empty, true);
    this.#items.clear();
    this.#list.replaceChildren();
  }

  focusComposer(): void {
    this.#input.focus();
  }

  focusTitle(): void {
    this.#title.focus();
  }

  /** While a batch is rendered, screen readers wait (the log would otherwise read every message). */
  busy(on: boolean): void {
    this.#list.setAttribute('aria-busy', String(on));
  }

  notice(text: string | null): void {
    this.#notice.textContent = text ?? '';
    show(this.#notice, text !== null);
  }

  hasMore(more: boolean): void {
    show(this.#earlier, more);
  }

  warning(w: { title: string; text: string } | null): void {
    const atBottom = this.#atBottom();
    show(this.#warning, w !== null);
    byId('identity-warning-title').textContent = w?.title ?? '';
    byId('identity-warning-text').textContent = w?.text ?? '';
    if (atBottom) this.scrollToEnd();
  }

  has(id: string): boolean {
    return this.#items.has(id);
  }

  /** The oldest message on screen with a server id (for paging back). */
  oldestId(): string | undefined {
    let oldest: ViewItem | undefined;
    for (const { item } of this.#items.values()) if (Number.isFinite(item.seq) && (!oldest || item.seq < oldest.seq)) oldest = item;
    return oldest?.id;
  }

  /** Adds or updates a message, keeping `seq` order; sticks to the bottom when the reader was there. */
  upsert(item: ViewItem): void {
    const atBottom = this.#atBottom();
    const existing = this.#items.get(item.id);
    if (existing) {
      const merged: ViewItem = { ...existing.item, ...item, status: furthest(existing.item.status, item.status) };
      // Updated in place: a new node in the log would be read out again.
      if (merged.text !== existing.item.text || merged.note !== existing.item.note) fillText(existing.el, merged);
      fillMeta(existing.el, merged);
      existing.item = merged;
      return;
    }
    const el = h('li', { class: `msg ${item.mine ? 'msg--out' : 'msg--in'}`, 'data-id': item.id, 'data-seq': String(item.seq) });
    el.append(h('span', { class: 'visually-hidden' }, item.mine ? 'You: ' : `${this.#peerName}: `), h('p', { class: 'msg__text' }), h('p', { class: 'msg__meta', 'aria-live': 'off' }));
    fillText(el, item);
    fillMeta(el, item);
    this.#insert(el, item.seq);
    this.#items.set(item.id, { item, el });
    if (atBottom || item.mine) this.scrollToEnd();
  }

  /** Inserts older messages above, keeping what the reader sees in place. */
  prepend(items: ViewItem[]): void {
    const before = this.#scroller.scrollHeight - this.#scroller.scrollTop;
    for (const item of items) if (!this.#items.has(item.id)) this.upsert(item);
    this.#scroller.scrollTop = this.#scroller.scrollHeight - before;
  }

  /** A pending message got its server id and position. */
  rename(localId: string, item: ViewItem): void {
    const entry = this.#items.get(localId);
    if (!entry || this.#items.has(item.id)) {
      if (entry) entry.el.remove();
      this.#items.delete(localId);
      this.upsert(item);
      return;
    }
    this.#items.delete(localId);
    entry.el.dataset.id = item.id;
    entry.el.dataset.seq = String(item.seq);
    this.#items.set(item.id, entry);
    const next = entry.el.nextElementSibling as HTMLElement | null;
    if (next && Number(next.dataset.seq) < item.seq) {
      entry.el.remove();
      this.#insert(entry.el, item.seq);
    }
    this.upsert(item);
  }

  setStatus(id: string, status: Tick): void {
    const entry = this.#items.get(id);
    if (entry && entry.item.status !== furthest(entry.item.status, status)) this.upsert({ ...entry.item, status });
  }

  scrollToEnd(): void {
    this.#scroller.scrollTop = this.#scroller.scrollHeight;
  }

  #atBottom(): boolean {
    const s = this.#scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  #insert(el: HTMLLIElement, seq: number): void {
    // Most messages land at the end: walk from the back.
    let after: HTMLLIElement | null = null;
    for (const node of [...this.#list.children].reverse()) {
      const s = Number((node as HTMLElement).dataset.seq);
      if (s <= seq) {
        after = node as HTMLLIElement;
        break;
      }
    }
    if (after) after.after(el);
    else this.#list.prepend(el);
  }

  #submit(): void {
    const text = this.#input.value.trim();
    if (!text) return;
    this.#input.value = '';
    this.#grow();
    this.handlers.send(text);
  }

  #grow(): void {
    this.#input.style.height = 'auto';
    this.#input.style.height = `${Math.min(this.#input.scrollHeight, 160)}px`;
  }
}

function furthest(a: Tick | undefined, b: Tick | undefined): Tick | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  // A failed send can be retried (→ sending); otherwise status only moves forward.
  if (a === 'failed' || b === 'failed') return b;
  return RANK[b] > RANK[a] ? b : a;
}

function fillText(li: HTMLLIElement, item: ViewItem): void {
  const p = li.querySelector('.msg__text')!;
  p.classList.toggle('msg__text--note', item.text === null);
  p.textContent = item.text ?? item.note ?? 'This message cannot be shown.';
}

function fillMeta(li: HTMLLIElement, item: ViewItem): void {
  const meta = li.querySelector('.msg__meta')!;
  const parts: (Node | string)[] = [h('time', { datetime: item.timestamp, title: fullWhen(item.timestamp) }, messageWhen(item.timestamp))];
  if (item.mine && item.status) {
    const [ticks, label] = TICKS[item.status];
    parts.push(' ', h('span', { class: 'msg__status', 'data-status': item.status }, h('span', { class: 'ticks', 'aria-hidden': 'true' }, ticks), ` ${label}`));
    if (item.status === 'failed') parts.push(' ', h('button', { type: 'button', class: 'button button--link', 'data-retry': item.id }, 'Retry'));
  }
  meta.replaceChildren(...parts);
}
