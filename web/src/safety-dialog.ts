/** The safety-number dialog: 60 digits to compare with the contact, and the key-change notice. */
import { byId, h, show } from './dom.js';
import { safetyLines } from './format.js';

export interface SafetyView {
  peerName: string;
  safetyNumber: string;
  /** Set when the contact's key changed and the user has not confirmed the new number yet. */
  changed: boolean;
}

export class SafetyDialog {
  readonly #dialog = byId<HTMLDialogElement>('safety-dialog');
  readonly #title = byId('safety-title');
  readonly #digits = byId('safety-digits');
  readonly #changed = byId('safety-changed');
  readonly #verified = byId<HTMLButtonElement>('safety-verified');
  #onVerified: (() => void) | null = null;
  #returnFocus: HTMLElement | null = null;

  /** `signal`: aborting it removes the listeners. */
  constructor(signal: AbortSignal) {
    const opts = { signal };
    byId('safety-close').addEventListener('click', () => this.#dialog.close(), opts);
    this.#verified.addEventListener(
      'click',
      () => {
        this.#onVerified?.();
        this.#dialog.close();
      },
      opts,
    );
    this.#dialog.addEventListener(
      'close',
      () => {
        this.#returnFocus?.focus();
        this.#returnFocus = null;
      },
      opts,
    );
  }

  open(view: SafetyView, onVerified: () => void): void {
    this.#returnFocus = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    this.#onVerified = onVerified;
    this.#title.textContent = `Safety number with ${view.peerName}`;
    this.#digits.replaceChildren(...safetyLines(view.safetyNumber).map((line) => h('span', { class: 'safety-line' }, line)));
    this.#changed.textContent = view.changed
      ? `${view.peerName}’s safety number changed recently. Check the new one with them before you share anything sensitive.`
      : '';
    show(this.#changed, view.changed);
    show(this.#verified, view.changed);
    if (!this.#dialog.open) this.#dialog.showModal();
    byId('safety-close').focus();
  }

  close(): void {
    if (this.#dialog.open) this.#dialog.close();
  }
}
