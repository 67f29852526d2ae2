/**
 * The web client at /app, used by two people in Debian's Chromium (two isolated browser
 * contexts: their own IndexedDB each) against a real server on 127.0.0.1 with SQLite in a file:
 * register, find each other, messages both ways with sent → delivered → read ticks, a reload
 * that keeps account and history, a contact's new keys (the identity-change warning and equal
 * safety numbers), a lost connection and its recovery; then the database holds none of the
 * plaintexts. Screenshots of each step go to test-artifacts/screenshots/.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServer, type TestServer } from '../_helpers/server.js';
import { CHROMIUM, databaseBytes, HAVE_CHROMIUM, LAN_HOST, launch, needles, Person, resetScreenshots } from './harness.js';

if (!HAVE_CHROMIUM) console.warn(`[browser tests] SKIPPED: ${CHROMIUM} not found (install Debian's chromium: apt-get install chromium)`);

const PASSWORD = 'violet-Harbor-42-lantern';
const dir = mkdtempSync(path.join(tmpdir(), 'safechat-web-'));
const sqlitePath = path.join(dir, 'chat.db');
/** Everything anyone typed into a message: none of it may reach the database. */
const typed: string[] = [];

describe.skipIf(!HAVE_CHROMIUM)('web client in Chromium', () => {
  let server: TestServer;
  let browser: Browser;
  let alice: Person;
  let bob: Person;

  const say = async (who: Person, text: string) => {
    typed.push(text);
    await who.send(text);
  };

  beforeAll(async () => {
    resetScreenshots();
    server = await testServer({ listen: true, sqlitePath, env: { SERVE_APP: 'on' } });
    browser = await launch();
    alice = await Person.open(browser, 'alice', { width: 1100, height: 720 });
    bob = await Person.open(browser, 'bob', { width: 360, height: 740, mobile: true });
  }, 60_000);

  afterAll(async () => {
    await alice?.close().catch(() => undefined);
    await bob?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is served at /app under the server CSP, with a cacheable bundle', async () => {
    const page = await fetch(`${server.url}/app/`);
    expect(page.status, 'is `await registerWebApp(app, ctx)` in createApp (src/app.ts)?').toBe(200);
    const redirect = await fetch(`${server.url}/app`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/app/');
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//); // nothing from another origin
    const js = await fetch(`${server.url}/app/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    const etag = js.headers.get('etag');
    expect(etag).toBeTruthy();
    const again = await fetch(`${server.url}/app/app.js`, { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    expect((await fetch(`${server.url}/app/styles.css`)).status).toBe(200);
    expect((await fetch(`${server.url}/app/`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${server.url}/app/nothing-here.js`)).status).toBe(404);
    expect((await fetch(`${server.url}/app/%2e%2e/package.json`)).status).toBe(404);
  });

  it('two people register in their own browsers', async () => {
    await alice.register(server.url, 'alice', PASSWORD, '00-register-form.png');
    await alice.shot('01-alice-registered.png');
    await bob.register(server.url, 'bob', PASSWORD);
    await bob.shot('02-bob-registered-360px.png');
  });

  it('alice finds bob and writes; bob receives it (delivered), opens it (read)', async () => {
    await alice.page.getByLabel('Start a chat with').fill('bobby');
    await alice.page.getByRole('button', { name: 'Start', exact: true }).click();
    await alice.page.locator('#new-chat-error', { hasText: 'Nobody has that username' }).waitFor();
    await alice.startChat('bob');
    await say(alice, 'Hi Bob! This is Alice, writing from her browser ☀');
    await alice.seeStatus('writing from her browser', 'delivered'); // bob is online: his client said "delivered"
    await alice.shot('03-alice-sent-delivered.png');

    expect(await bob.unreadBadge('alice')).toBe('1');
    await bob.shot('04-bob-chat-list-unread.png');

    // bob finds alice by her username too: the same chat opens
    await bob.startChat('alice');
    await bob.page.locator('#messages[aria-busy="false"]').waitFor();
    await bob.seeIncoming('writing from her browser');
    await alice.seeStatus('writing from her browser', 'read');
    await bob.shot('05-bob-conversation.png');
    await alice.shot('06-alice-read.png');
  });

  it('messages go both ways, live, with ticks on each side', async () => {
    await say(bob, 'Hello Alice — got it. Line one\nand line two.');
    await alice.seeIncoming('got it. Line one');
    await bob.seeStatus('got it. Line one', 'read'); // alice has the conversation open and focused
    for (const [who, other, text] of [
      [alice, bob, 'Does the server see any of this? (it should not) #3'],
      [bob, alice, 'Only ciphertext, base64, with a MAC. Unicode works: ¿qué tal? Ωμέγα, Привет ♥ #4'],
      [alice, bob, 'Great: then let us meet at the blue door at noon #5'],
    ] as const) {
      await say(who, text);
      await other.seeIncoming(text.slice(0, 20));
      await who.seeStatus(text, 'read');
    }
    await alice.shot('07-alice-conversation-both-ways.png');
    await bob.shot('08-bob-conversation-both-ways-360px.png');
  });

  it('a reload keeps the account, the sessions and the decrypted history', async () => {
    await alice.page.reload();
    await bob.page.reload();
    await alice.signedIn('alice');
    await bob.signedIn('bob');
    await alice.openChat('bob');
    await bob.openChat('alice');
    for (const p of [alice, bob]) {
      for (const t of typed) await p.page.locator('#messages .msg__text', { hasText: t.split('\n')[0]!.slice(0, 24) }).waitFor();
    }
    await alice.seeStatus('blue door at noon', 'read');
    // the ratchet goes on where it was
    await say(bob, 'Still here after the reload #6');
    await alice.seeIncoming('after the reload #6');
    await say(alice, 'Me too, my keys survived the reload #7');
    await bob.seeIncoming('keys survived the reload');
    await alice.shot('09-alice-after-reload.png');
  });

  it('one account per tab: a second tab of the same browser is told so, and can use another account', async () => {
    const second = await alice.context.newPage();
    try {
      await second.goto(`${server.url}/app`);
      await second.locator('#auth-notice', { hasText: 'open in another tab' }).waitFor();
      expect(await second.locator('#login-username').inputValue()).toBe('alice');
      await second.getByRole('button', { name: 'Create an account instead' }).click();
      await second.locator('#register-username').fill('dave');
      await second.locator('#register-password').fill(PASSWORD);
      await second.getByRole('button', { name: 'Create account' }).click();
      await second.locator('#account-name', { hasText: 'dave' }).waitFor();
    } finally {
      await second.close();
    }
    // each tab remembers its own account: alice's tab comes back as alice
    await alice.page.reload();
    await alice.signedIn('alice');
    await alice.openChat('bob');
  });

  it('a contact with new keys: the warning, the same safety number on both sides, and talking again', async () => {
    // bob erases this browser's copy (keys, sessions, history) and logs in again: a new identity
    await bob.page.locator('#account summary').click();
    await bob.page.getByRole('button', { name: 'Log out and erase from this browser' }).click();
    await bob.page.locator('#auth-notice', { hasText: 'erased' }).waitFor();
    await bob.shot('10-bob-logged-out-erased.png');
    await bob.login('bob', PASSWORD);
    await bob.page.locator('#chat-notice', { hasText: 'new ones were made' }).waitFor();

    // alice has the chat open: the server's key.changed reaches her and the warning shows
    const warning = alice.page.locator('#identity-warning');
    await warning.waitFor({ state: 'visible' });
    expect(await warning.innerText()).toContain('safety number has changed');
    await alice.page.locator('#chat-list .chat-item__warning', { hasText: 'Safety number changed' }).waitFor();
    await alice.shot('11-alice-identity-warning.png');

    await alice.page.getByRole('button', { name: 'Compare safety number' }).click();
    await alice.page.locator('#safety-digits .safety-line').first().waitFor();
    const aliceDigits = (await alice.page.locator('#safety-digits').innerText()).replace(/\s+/g, ' ').trim();
    await alice.shot('12-alice-safety-number.png');

    await bob.openChat('alice');
    await bob.page.getByRole('button', { name: 'Safety number' }).click();
    await bob.page.locator('#safety-digits .safety-line').first().waitFor();
    const bobDigits = (await bob.page.locator('#safety-digits').innerText()).replace(/\s+/g, ' ').trim();
    await bob.shot('13-bob-safety-number-360px.png');
    expect(aliceDigits).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(bobDigits).toBe(aliceDigits);
    await bob.page.getByRole('button', { name: 'Close' }).click();

    await alice.page.getByRole('button', { name: 'They match' }).click();
    await warning.waitFor({ state: 'hidden' });

    // the old history cannot be read on bob's new keys; new messages work both ways
    await bob.page.locator('#messages .msg__text--note').first().waitFor();
    await say(bob, 'New keys, same Bob #8');
    await alice.seeIncoming('same Bob #8');
    await say(alice, 'Checked your new safety number, all good #9');
    await bob.seeIncoming('all good #9');
    await alice.seeStatus('all good #9', 'read');
    await bob.shot('14-bob-after-new-keys-360px.png');
  });

  it('says when it is offline, reconnects by itself, and catches up from its cursor', async () => {
    await alice.context.setOffline(true);
    server.ctx.hub.closeAll(1001, 'test: connection lost');
    await alice.page.locator('#connection[data-state="offline"], #connection[data-state="reconnecting"]').first().waitFor();
    await alice.shot('15-alice-offline.png');
    await bob.online(); // bob's socket reconnects on its own
    await say(bob, 'Sent while Alice was offline #10');
    await bob.seeStatus('while Alice was offline #10', 'sent');
    await alice.page.waitForTimeout(1_500); // (bounded) nothing can reach alice now
    expect(await alice.page.locator('#messages li', { hasText: 'while Alice was offline' }).count()).toBe(0);
    expect(await alice.page.locator('#connection').getAttribute('data-state')).not.toBe('open');
    await alice.context.setOffline(false);
    await alice.online();
    await alice.seeIncoming('while Alice was offline #10');
    await bob.seeStatus('while Alice was offline #10', 'read');
    await alice.shot('16-alice-back-online.png');
  });

  it('works over plain HTTP on a name that is not loopback (another machine on the LAN; no secure context)', async () => {
    const carol = await Person.open(browser, 'carol', { width: 800, height: 600, dark: true });
    try {
      // a taken name first: a clear answer, and nothing left behind
      await carol.visit(`http://${LAN_HOST}:${new URL(server.url).port}`);
      await carol.page.locator('#register-username').fill('Alice');
      await carol.page.locator('#register-password').fill(PASSWORD);
      await carol.page.getByRole('button', { name: 'Create account' }).click();
      await carol.page.locator('#register-error', { hasText: 'That username is taken' }).waitFor();
      await carol.shot('17-carol-username-taken.png');
      const databases = await carol.page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
      expect(databases).not.toContain('safechat.v1.alice');
      await carol.register(carol.base, 'carol', PASSWORD);
      expect(await carol.page.evaluate(() => isSecureContext)).toBe(false);
      await carol.startChat('alice');
      await say(carol, 'Hello from a laptop on the same network #11');
      await alice.page.locator('#chat-list button', { hasText: 'carol' }).waitFor();
      await alice.openChat('carol');
      await alice.seeIncoming('laptop on the same network');
      await carol.seeStatus('laptop on the same network', 'read');
      await carol.shot('18-carol-plain-http-lan.png');
      expect(carol.requests.filter((u) => new URL(u).origin !== carol.base)).toEqual([]);
    } finally {
      await carol.close();
    }
  });

  it('loaded nothing from elsewhere and broke no CSP rule', () => {
    for (const p of [alice, bob]) {
      const foreign = p.requests.filter((u) => new URL(u).origin !== p.base);
      expect(foreign, `${p.name} requested other origins`).toEqual([]);
      const real = p.problems.filter((x) => !/net::ERR_INTERNET_DISCONNECTED|Failed to load resource|WebSocket connection/.test(x));
      expect(real, `${p.name}'s page reported errors`).toEqual([]);
    }
  });

  it('the database holds no plaintext (and does hold the usernames, so the scan reads the right files)', () => {
    const blob = databaseBytes(sqlitePath);
    expect(blob.includes(Buffer.from('alice'))).toBe(true);
    expect(blob.includes(Buffer.from('bob'))).toBe(true);
    expect(typed.length).toBeGreaterThanOrEqual(10);
    for (const text of typed) {
      for (const needle of needles(text)) expect(blob.includes(needle), `found "${text}" in the database`).toBe(false);
      // and no recognisable piece of it either
      for (const word of text.split(/[^A-Za-z]+/).filter((w) => w.length >= 9)) {
        expect(blob.includes(Buffer.from(word)), `found "${word}" in the database`).toBe(false);
      }
    }
  });
});
