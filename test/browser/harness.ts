/**
 * Helpers for the browser tests: Debian's Chromium through playwright-core (never a downloaded
 * browser), one isolated context per person, bounded waits, screenshots, and the database scan.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

/** The flags that work on these machines (no network beyond loopback, running as root). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const SCREENSHOTS = path.resolve(import.meta.dirname, '../../test-artifacts/screenshots');

/** Every wait is bounded by this (ms). */
export const WAIT = 15_000;

/** A name that is not loopback: the app as someone on another machine opens it over plain HTTP (not a secure context). */
export const LAN_HOST = 'chat.example.test';

/** Chromium resolves {@link LAN_HOST} to 127.0.0.1: nothing leaves this machine. */
export async function launch(extraArgs: string[] = [`--host-resolver-rules=MAP ${LAN_HOST} 127.0.0.1`]): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 30_000 });
}

export function resetScreenshots(): void {
  rmSync(SCREENSHOTS, { recursive: true, force: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
}

/** One person: a browser context of their own (own IndexedDB, own storage), one page, and what went wrong in it. */
export class Person {
  readonly problems: string[] = [];
  readonly requests: string[] = [];
  /** The origin this person opened the app on. */
  base = '';

  private constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {}

  static async open(browser: Browser, name: string, opts: { width: number; height: number; mobile?: boolean; dark?: boolean }): Promise<Person> {
    const context = await browser.newContext({
      colorScheme: opts.dark ? 'dark' : 'light',
      viewport: { width: opts.width, height: opts.height },
      deviceScaleFactor: opts.mobile ? 2 : 1,
      isMobile: Boolean(opts.mobile),
      hasTouch: Boolean(opts.mobile),
      locale: 'en-GB',
      timezoneId: 'UTC',
    });
    context.setDefaultTimeout(WAIT);
    // Collects CSP violations before any page script runs (init scripts are not subject to the page's CSP).
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
      });
    });
    const page = await context.newPage();
    const p = new Person(name, context, page);
    page.on('pageerror', (err) => p.problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') p.problems.push(`console.error: ${msg.text()}`);
    });
    page.on('dialog', (d) => void d.accept());
    context.on('request', (r) => p.requests.push(r.url()));
    return p;
  }

  async shot(file: string): Promise<void> {
    await this.page.screenshot({ path: path.join(SCREENSHOTS, file), fullPage: false });
  }

  // ---- what a person does ----

  async visit(baseUrl: string): Promise<void> {
    this.base = baseUrl;
    await this.page.goto(`${baseUrl}/app`);
  }

  async register(baseUrl: string, username: string, password: string, shot?: string): Promise<void> {
    await this.visit(baseUrl);
    await this.page.locator('#register-form').waitFor();
    await this.page.locator('#register-username').fill(username);
    await this.page.locator('#register-password').fill(password);
    if (shot) await this.shot(shot);
    await this.page.getByRole('button', { name: 'Create account' }).click();
    await this.signedIn(username);
  }

  async login(username: string, password: string): Promise<void> {
    await this.page.locator('#login-form').waitFor();
    await this.page.locator('#login-username').fill(username);
    await this.page.locator('#login-password').fill(password);
    await this.page.getByRole('button', { name: 'Log in', exact: true }).click();
    await this.signedIn(username);
  }

  async signedIn(username: string): Promise<void> {
    await this.page.locator('#account-name', { hasText: username }).waitFor();
    await this.online();
  }

  async online(): Promise<void> {
    await this.page.locator('#connection[data-state="open"]').waitFor();
  }

  async startChat(username: string): Promise<void> {
    await this.page.getByLabel('Start a chat with').fill(username);
    await this.page.getByRole('button', { name: 'Start', exact: true }).click();
    await this.page.locator('#conversation-title', { hasText: username }).waitFor();
  }

  async openChat(username: string): Promise<void> {
    await this.page.locator('#chat-list button', { hasText: username }).click();
    await this.page.locator('#conversation-title', { hasText: username }).waitFor();
    await this.page.locator('#messages[aria-busy="false"]').waitFor();
  }

  async send(text: string): Promise<void> {
    const box = this.page.locator('#composer-input');
    await box.fill(text);
    await box.press('Enter');
    await this.page.locator('#messages li.msg--out', { hasText: text }).waitFor();
  }

  /** Waits until the own message with `text` shows `status` (sent, delivered, read). */
  async seeStatus(text: string, status: 'sent' | 'delivered' | 'read'): Promise<void> {
    await this.page.locator('#messages li.msg--out', { hasText: text }).locator(`.msg__status[data-status="${status}"]`).waitFor();
  }

  async seeIncoming(text: string): Promise<void> {
    await this.page.locator('#messages li.msg--in .msg__text', { hasText: text }).waitFor();
  }

  async unreadBadge(username: string): Promise<string> {
    const badge = this.page.locator('#chat-list button', { hasText: username }).locator('.badge [aria-hidden="true"]');
    await badge.waitFor();
    return badge.innerText();
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

/** The texts stored in the SQLite database, its WAL and shared memory (whatever exists), as one buffer. */
export function databaseBytes(sqlitePath: string): Buffer {
  const dir = path.dirname(sqlitePath);
  const base = path.basename(sqlitePath);
  const files = readdirSync(dir).filter((f) => f === base || f.startsWith(`${base}-`));
  return Buffer.concat(files.map((f) => readFileSync(path.join(dir, f))));
}

/** The ways a plaintext could sit in the database if a client leaked it: UTF-8, UTF-16LE, and base64 at any byte alignment. */
export function needles(text: string): Buffer[] {
  const utf8 = Buffer.from(text, 'utf8');
  const out = [utf8, Buffer.from(text, 'utf16le')];
  for (let shift = 0; shift < 3; shift++) {
    const b64 = Buffer.concat([Buffer.alloc(shift), utf8]).toString('base64');
    // Drop the characters that depend on the bytes before and after: the middle is fixed.
    const start = Math.ceil((shift * 4) / 3) + 1;
    const middle = b64.slice(start, b64.length - 4);
    if (middle.length >= 12) out.push(Buffer.from(middle, 'latin1'));
  }
  return out;
}
