/**
 * Two and three SDK clients talking end to end through a real server (real HTTP, real `ws`,
 * SQLite in a file): first contact with an offline peer, many turns, history from the local
 * cache, safety numbers, and a scan of the database files showing none of the plaintexts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../../../test/_helpers/server.js';
import type { SafeChatClient } from '../../src/index.js';
import { atLeast, disconnectAll, record, registered, startServer, waitUntil } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'safechat-sdk-'));
const sqlitePath = join(dir, 'chat.db');
let server: TestServer;
/** Every plaintext any client sent in this file: none may appear in the database. */
const sent: string[] = [];
/** Every username: they must appear (shows the scan reads the right files). */
const names: string[] = [];

function say(c: SafeChatClient, peer: SafeChatClient, text: string) {
  sent.push(text);
  return c.sendText(peer.user!.id, text);
}

beforeAll(async () => {
  server = await startServer({ sqlitePath });
});
afterEach(() => disconnectAll());
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('two clients', () => {
  let alice: SafeChatClient;
  let bob: SafeChatClient;

  beforeAll(async () => {
    alice = await registered(server);
    bob = await registered(server);
    names.push(alice.user!.username, bob.user!.username);
  });

  it('register uploads the identity key as publicKey and a batch of one-time pre-keys', async () => {
    const ident = await alice.stores.keys.getIdentityKeyPair();
    expect(alice.user!.publicKey).toBe(Buffer.from(ident!.publicKey).toString('base64'));
    expect(await alice.api.getPreKeyCount()).toEqual({ oneTimePreKeys: 100 });
    expect((await alice.stores.keys.listOneTimePreKeys()).length).toBe(100);
  });

  it('first contact while the peer is offline: the peer resumes, receives and decrypts it', async () => {
    // Bob was online once (he has a cursor), then went away.
    await bob.connect();
    bob.disconnect();
    await alice.connect();

    const first = await say(alice, bob, 'hello bob, this is the first message 🌍');
    expect(first.message.type).toBe('key_exchange');
    expect(first.message.encryptedContent).not.toContain('hello');

    const got = record(bob, 'message');
    const readies: boolean[] = [];
    bob.socket.events.on('ready', (r) => {
      readies.push(r.resumed);
    });
    await bob.connect();
    await atLeast(got, 1, 'messages');
    expect(readies).toEqual([true]);
    expect(got[0]!.plaintext).toEqual({ type: 'text', body: 'hello bob, this is the first message 🌍' });
    expect(got[0]!.message.id).toBe(first.message.id);
    // delivered automatically once decrypted and stored
    await waitUntil(async () => (await bob.history(alice.user!.id)).items[0]!.message.status === 'delivered', 'delivered status');
  });

  it('replies both ways over many turns, in order, each decrypted exactly once', async () => {
    await Promise.all([alice.connect(), bob.connect()]);
    const atAlice = record(alice, 'message');
    const atBob = record(bob, 'message');
    const expectAlice: string[] = [];
    const expectBob: string[] = [];
    for (let turn = 0; turn < 12; turn++) {
      // bursts of one to three messages, alternating sides
      const burst = (turn % 3) + 1;
      const [from, to, expectList, got] = turn % 2 === 0 ? [bob, alice, expectAlice, atAlice] : [alice, bob, expectBob, atBob];
      for (let i = 0; i < burst; i++) {
        const text = `turn ${turn} message ${i} from ${from === alice ? 'alice' : 'bob'}`;
        expectList.push(text);
        await say(from, to, text);
      }
      await atLeast(got, expectList.length, 'messages');
    }
    expect(atAlice.map((m) => m.plaintext.body)).toEqual(expectAlice);
    expect(atBob.map((m) => m.plaintext.body)).toEqual(expectBob);
    // after the first reply nothing carries the pre-key header any more: the outer type is the constant cover type
    const page = await alice.history(bob.user!.id, { limit: 100 });
    expect(page.items.slice(-10).every((i) => i.message.type === 'text')).toBe(true);
  });

  it('history shows every message again from the local plaintext cache, on both sides', async () => {
    const a = await alice.history(bob.user!.id, { limit: 100 });
    const b = await bob.history(alice.user!.id, { limit: 100 });
    expect(a.items.length).toBe(b.items.length);
    expect(a.items.every((i) => i.plaintext !== null)).toBe(true);
    expect(b.items.map((i) => i.plaintext?.body)).toEqual(a.items.map((i) => i.plaintext?.body));
    expect(a.items.map((i) => i.message.seq)).toEqual([...a.items.map((i) => i.message.seq)].sort((x, y) => x - y));
    // …and a second time (the ratchet would refuse a second decryption: this is the cache)
    const again = await bob.history(alice.user!.id, { limit: 100 });
    expect(again.items.map((i) => i.plaintext?.body)).toEqual(b.items.map((i) => i.plaintext?.body));
  });

  it('each send carries a new clientMessageId that starts with its time, so ids grow with time', async () => {
    const before = Date.now();
    const sentMessages = [];
    for (let i = 0; i < 5; i++) {
      sentMessages.push((await say(alice, bob, `ordered ${i}`)).message);
      await new Promise((r) => setTimeout(r, 2));
    }
    const after = Date.now();
    const ids = sentMessages.map((m) => m.clientMessageId!);
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      const t = parseInt(id.slice(0, 12), 16);
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('markRead moves the status forward and the sender sees it', async () => {
    await Promise.all([alice.connect(), bob.connect()]);
    const statuses = record(alice, 'status');
    const got = record(bob, 'message');
    const m = await say(alice, bob, 'please read me');
    await atLeast(got, 1, 'messages');
    const read = await bob.markRead(m.message.id);
    expect(read.status).toBe('read');
    await waitUntil(() => statuses.some((s) => s.messageId === m.message.id && s.status === 'read'), 'read status event');
  });

  it('both sides compute the same safety number, and it changes with the peer', async () => {
    const a = await alice.safetyNumber(bob.user!.id);
    const b = await bob.safetyNumber(alice.user!.id);
    expect(a).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(a).toBe(b);
    const carol = await registered(server);
    names.push(carol.user!.username);
    expect(await alice.safetyNumber(carol.user!.id)).not.toBe(a);
  });
});

describe('three clients', () => {
  it('A talks to B and C concurrently; each conversation stays separate and in order', async () => {
    const [a, b, c] = await Promise.all([registered(server), registered(server), registered(server)]);
    names.push(a.user!.username);
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    const atA = record(a, 'message');
    const atB = record(b, 'message');
    const atC = record(c, 'message');
    const N = 8;
    await Promise.all([
      (async () => {
        for (let i = 0; i < N; i++) await say(a, b, `a→b ${i}`);
      })(),
      (async () => {
        for (let i = 0; i < N; i++) await say(a, c, `a→c ${i}`);
      })(),
      (async () => {
        for (let i = 0; i < N; i++) await say(b, a, `b→a ${i}`);
      })(),
      (async () => {
        for (let i = 0; i < N; i++) await say(c, a, `c→a ${i}`);
      })(),
    ]);
    await atLeast(atA, 2 * N, 'messages at A');
    await atLeast(atB, N, 'messages at B');
    await atLeast(atC, N, 'messages at C');
    const range = (p: string) => Array.from({ length: N }, (_, i) => `${p} ${i}`);
    expect(atB.map((m) => m.plaintext.body)).toEqual(range('a→b'));
    expect(atC.map((m) => m.plaintext.body)).toEqual(range('a→c'));
    expect(atA.filter((m) => m.message.senderId === b.user!.id).map((m) => m.plaintext.body)).toEqual(range('b→a'));
    expect(atA.filter((m) => m.message.senderId === c.user!.id).map((m) => m.plaintext.body)).toEqual(range('c→a'));
    // the three pairs have three different chats, and B cannot read A↔C
    const ac = await a.chatWith(c.user!.id);
    await expect(b.api.getMessages(ac.id)).rejects.toMatchObject({ status: 404, code: 'not_found' });
    expect(await a.safetyNumber(b.user!.id)).toBe(await b.safetyNumber(a.user!.id));
    expect(await a.safetyNumber(c.user!.id)).toBe(await c.safetyNumber(a.user!.id));
  });
});

describe('the database after all of it', () => {
  it('holds none of the plaintexts (and does hold the usernames, so the scan reads the right files)', async () => {
    expect(sent.length).toBeGreaterThan(40);
    // make sure everything committed is in the files
    await server.ctx.db.db.selectFrom('messages').select('id').limit(1).execute();
    const files = readdirSync(dir).filter((f) => f.startsWith('chat.db'));
    expect(files).toContain('chat.db');
    const blob = Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
    for (const name of names) expect(blob.includes(Buffer.from(name, 'utf8')), `username ${name}`).toBe(true);
    const leaks: string[] = [];
    for (const text of sent) {
      for (const needle of [Buffer.from(text, 'utf8'), Buffer.from(Buffer.from(text, 'utf8').toString('base64'), 'utf8')]) {
        if (blob.includes(needle)) leaks.push(text);
      }
    }
    // distinctive fragments too: a leak could be a prefix or a re-encoding of part of a message
    for (const fragment of ['hello bob', 'please read', 'from alice', 'from bob', 'a→b', 'c→a']) {
      if (blob.includes(Buffer.from(fragment, 'utf8'))) leaks.push(fragment);
    }
    expect(leaks).toEqual([]);
  });
});
