/** The log-in and create-account forms. */
import { byId, show } from './dom.js';
import { describeError } from './errors.js';

export type AuthMode = 'login' | 'register';

export interface AuthHandlers {
  login(username: string, password: string): Promise<void>;
  register(username: string, password: string): Promise<void>;
}

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

export class AuthView {
  readonly #root = byId('auth');
  readonly #notice = byId('auth-notice');
  readonly #forms = { login: byId<HTMLFormElement>('login-form'), register: byId<HTMLFormElement>('register-form') };
  readonly #errors = { login: byId('login-error'), register: byId('register-error') };

  constructor(handlers: AuthHandlers) {
    for (const mode of ['login', 'register'] as const) {
      const form = this.#forms[mode];
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        void this.#submit(mode, handlers);
      });
    }
    for (const b of this.#root.querySelectorAll<HTMLButtonElement>('[data-switch]')) {
      b.addEventListener('click', () => this.mode(b.dataset.switch === 'register' ? 'register' : 'login', true));
    }
  }

  /** Shows the forms; `notice` is a line above them (why you are here), `username` prefills both. */
  open(opts: { mode: AuthMode; username?: string; notice?: string }): void {
    show(this.#root, true);
    this.#notice.textContent = opts.notice ?? '';
    show(this.#notice, Boolean(opts.notice));
    for (const mode of ['login', 'register'] as const) {
      this.#errors[mode].textContent = '';
      const pw = this.#forms[mode].elements.namedItem('password') as HTMLInputElement;
      pw.value = '';
    }
    if (opts.username) (this.#forms.login.elements.namedItem('username') as HTMLInputElement).value = opts.username;
    this.mode(opts.mode, true);
  }

  close(): void {
    show(this.#root, false);
  }

  mode(mode: AuthMode, focus: boolean): void {
    show(this.#forms.login, mode === 'login');
    show(this.#forms.register, mode === 'register');
    if (!focus) return;
    const form = this.#forms[mode];
    const user = form.elements.namedItem('username') as HTMLInputElement;
    const pw = form.elements.namedItem('password') as HTMLInputElement;
    (user.value ? pw : user).focus();
  }

  async #submit(mode: AuthMode, handlers: AuthHandlers): Promise<void> {
    const form = this.#forms[mode];
    const error = this.#errors[mode];
    const user = form.elements.namedItem('username') as HTMLInputElement;
    const pw = form.elements.namedItem('password') as HTMLInputElement;
    const username = user.value.trim();
    const problem = !USERNAME.test(username)
      ? { field: user, text: 'Enter a username of 3–32 letters, digits, _ . or -.' }
      : pw.value.length < 8
        ? { field: pw, text: 'Enter a password of at least 8 characters.' }
        : null;
    user.setAttribute('aria-invalid', String(problem?.field === user));
    pw.setAttribute('aria-invalid', String(problem?.field === pw));
    if (problem) {
      error.textContent = problem.text;
      problem.field.focus();
      return;
    }
    const submit = form.querySelector<HTMLButtonElement>('button[type=submit]')!;
    const label = submit.textContent;
    submit.disabled = true;
    submit.textContent = mode === 'login' ? 'Logging in…' : 'Creating keys…';
    error.textContent = '';
    try {
      await (mode === 'login' ? handlers.login(username, pw.value) : handlers.register(username, pw.value));
      pw.value = '';
    } catch (err) {
      error.textContent = describeError(err, mode);
      const nameProblem = (err as { code?: string }).code === 'conflict' || (err instanceof Error && err.message.includes('another tab'));
      (nameProblem ? user : pw).focus();
    } finally {
      submit.disabled = false;
      submit.textContent = label;
    }
  }
}
