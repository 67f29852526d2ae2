/**
 * What an attacker on the network or in the server can try, through a real server: lost and
 * reordered messages, flipped bytes in transit or at rest, replays, re-routing into another
 * chat, a changed or substituted identity key.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../../../test/_helpers/server.js';
import { DecryptionError, encryptMessage, IdentityMismatchError, UntrustedIdentityError, type SafeChatClient } from '../../src/index.js';
import { atLeast, client, countingFetch, disconnectAll, PASSWORD, record, registered, startServer, waitUntil } from './helpers.js';

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});
afterEach(() => disconnectAll());
afterAll(() => server?.close());

/** Two users who have exchanged one message each way (a session in both directions). */
async function pair(): Promise<{ alice: SafeChatClient; bob: SafeChatClient }> {
  const alice = await registered(server);
  const bob = await registered(server);
  await Promise.all([alice.connect(), bob.connect()]);
  const atBob = record(bob, 'message');
  const atAlice = record(alice, 'message');
  await alice.sendText(bob.user!.id, 'hi bob');
  await atLeast(atBob, 1, 'first message');
  await bob.sendText(alice.user!.id, 'hi alice');
  await atLeast(atAlice, 1, 'reply');
  return { alice, bob };
}

/** Encrypts with the sender's client stores but leaves posting to the test (the lower-level path). */
async function seal(from: SafeChatClient, to: SafeChatClient, text: string) {
  const chat = await from.chatWith(to.user!.id);
  const enc = await encryptMessage(from.stores, { senderId: from.user!.id, receiverId: to.user!.id, chatId: chat.id }, { type: 'text', body: text });
  return { chatId: chat.id, receiverId: to.user!.id, ...enc };
}

function flip(b64: string, index: number): string {
  const bytes = Buffer.from(b64, 'base64');
  const i = index < 0 ? bytes.length + index : index;
  bytes[i]! ^= 0x01;
  return bytes.toString('base64');
}

describe('ordering and loss', () => {
  it('messages that arrive out of order, with some lost, all decrypt (within the skip limit)', async () => {
    const { alice, bob } = await pair();
    const got = record(bob, 'message');
    const sealed = [];
    for (let i = 0; i < 8; i++) sealed.push(await seal(alice, bob, `numbered ${i}`));
    // the server (or the network) delivers 5, 1, 0, 7, 3 and loses 2, 4, 6
    for (const i of [5, 1, 0, 7, 3]) await alice.api.sendMessage(sealed[i]!);
    await atLeast(got, 5, 'messages');
    expect(got.map((m) => m.plaintext.body)).toEqual(['numbered 5', 'numbered 1', 'numbered 0', 'numbered 7', 'numbered 3']);

    // a gap of 300 lost messages, then one that arrives: still decrypts
    for (let i = 0; i < 300; i++) await seal(alice, bob, `lost ${i}`);
    await alice.sendText(bob.user!.id, 'after a long gap');
    await atLeast(got, 6, 'messages');
    expect(got[5]!.plaintext.body).toBe('after a long gap');

    // and the conversation goes on in both directions
    const atAlice = record(alice, 'message');
    await bob.sendText(alice.user!.id, 'still here');
    await atLeast(atAlice, 1, 'reply');
    expect(atAlice[0]!.plaintext.body).toBe('still here');
  });
});

describe('tampering', () => {
  it('flipped ciphertext or MAC, a replay, and an authentic envelope moved to another chat are all rejected; the session survives', async () => {
    const { alice, bob } = await pair();
    const carol = await registered(server);
    const good = record(bob, 'message');
    const bad = record(bob, 'undecryptable');

    const a = await seal(alice, bob, 'tampered ciphertext');
    await alice.api.sendMessage({ ...a, encryptedContent: flip(a.encryptedContent, -1) });
    const b = await seal(alice, bob, 'tampered mac');
    await alice.api.sendMessage({ ...b, mac: flip(b.mac, 0) });
    const c = await seal(alice, bob, 'replayed');
    await alice.api.sendMessage(c);
    await alice.api.sendMessage({ ...c }); // same envelope again, a new message to the server
    // an authentic envelope posted into a group chat with the same receiver: the chat id is under the MAC
    const group = (await alice.api.createChat([bob.user!.id, carol.user!.id])).chat;
    const d = await seal(alice, bob, 'moved to another chat');
    await alice.api.sendMessage({ ...d, chatId: group.id });

    await atLeast(bad, 4, 'rejections');
    await atLeast(good, 1, 'the replay original');
    expect(good.map((m) => m.plaintext.body)).toEqual(['replayed']);
    expect(bad.every((x) => x.error instanceof DecryptionError)).toBe(true);
    expect(new Set(bad.map((x) => (x.error as Error).message))).toEqual(new Set(['message could not be decrypted']));

    // the session is intact: the real messages keep flowing both ways
    await alice.sendText(bob.user!.id, 'an honest one');
    await atLeast(good, 2, 'messages');
    expect(good[1]!.plaintext.body).toBe('an honest one');
    // history shows the three rejected ones without plaintext, the rest from the cache
    const history = await bob.history(alice.user!.id, { limit: 100 });
    expect(history.items.filter((i) => i.plaintext === null).length).toBe(3);
  });

  it('bytes flipped in the stored message (in the database) are rejected; restored bytes decrypt', async () => {
    const { alice, bob } = await pair();
    bob.disconnect();
    const sent = await alice.sendText(bob.user!.id, 'at rest');
    const db = server.ctx.db.db;
    const tampered = flip(sent.message.encryptedContent, 40);
    await db.updateTable('messages').set({ encrypted_content: tampered }).where('id', '=', sent.message.id).execute();

    const bad = record(bob, 'undecryptable');
    const good = record(bob, 'message');
    await bob.connect(); // resumes: the replay reads the tampered row
    await atLeast(bad, 1, 'rejection');
    expect(bad[0]!.message.id).toBe(sent.message.id);
    expect(bad[0]!.error).toBeInstanceOf(DecryptionError);
    expect(good).toEqual([]);

    await db.updateTable('messages').set({ encrypted_content: sent.message.encryptedContent }).where('id', '=', sent.message.id).execute();
    const history = await bob.history(alice.user!.id);
    const item = history.items.find((i) => i.message.id === sent.message.id)!;
    expect(item.plaintext).toEqual({ type: 'text', body: 'at rest' });
  });
});

describe('identity keys', () => {
  it('a peer who re-registers keys with a new identity: key.changed reaches the contact as a warning with the new safety number, and both can talk again', async () => {
    const { alice, bob } = await pair();
    const oldNumber = await alice.safetyNumber(bob.user!.id);
    const oldKey = bob.user!.publicKey!;
    const warnings = record(alice, 'identityChanged');

    // Bob installs the app again: empty key store, same account
    const bob2 = client(server);
    await bob2.login(bob.user!.username, PASSWORD);
    expect(bob2.user!.publicKey).not.toBe(oldKey);

    await atLeast(warnings, 1, 'identity warning');
    const w = warnings[0]!;
    expect(w).toMatchObject({ userId: bob.user!.id, identityKey: bob2.user!.publicKey, previousIdentityKey: oldKey, source: 'key.changed' });
    expect(w.safetyNumber).not.toBe(oldNumber);
    expect(w.safetyNumber).toBe(await bob2.safetyNumber(alice.user!.id));
    expect(await alice.safetyNumber(bob.user!.id)).toBe(w.safetyNumber);

    await bob2.connect();
    const atBob2 = record(bob2, 'message');
    const atAlice = record(alice, 'message');
    await alice.sendText(bob.user!.id, 'welcome back');
    await atLeast(atBob2, 1, 'message at the new install');
    expect(atBob2[0]!.plaintext.body).toBe('welcome back');
    await bob2.sendText(alice.user!.id, 'thanks');
    await atLeast(atAlice, 1, 'reply');
    expect(atAlice[0]!.plaintext.body).toBe('thanks');
    expect(warnings.length).toBe(1); // one warning per change, not one per message
  });

  it('a bundle whose identity key is not the user\'s published key is refused before any session exists', async () => {
    const bob = await registered(server);
    // a lying key directory: GET /keys/{id} answers with a substituted identity key
    const mallory = await registered(server);
    const malloryKey = mallory.user!.publicKey!;
    const lying = countingFetch(async (url, init) => {
      const res = await fetch(url, init);
      if (init.method !== 'GET' || !new URL(url).pathname.startsWith('/keys/') || !res.ok) return res;
      const body = (await res.json()) as Record<string, unknown>;
      return new Response(JSON.stringify({ ...body, identityKey: malloryKey }), { status: 200, headers: { 'content-type': 'application/json' } });
    });
    const alice = client(server, { fetch: lying });
    await alice.register(`al_${Date.now()}`, PASSWORD);
    await expect(alice.sendText(bob.user!.id, 'never sent')).rejects.toBeInstanceOf(IdentityMismatchError);
    expect(await alice.stores.sessions.loadSession(bob.user!.id)).toBeUndefined();
  });

  it("a first message whose identity key is not the sender's published key is refused (untrusted identity)", async () => {
    const alice = await registered(server);
    // Bob's view of the directory says Alice has another key (as a man in the middle would cause)
    const other = await registered(server);
    const lying = countingFetch(async (url, init) => {
      const res = await fetch(url, init);
      if (init.method !== 'GET' || new URL(url).pathname !== `/users/${alice.user!.id}`) return res;
      const body = (await res.json()) as Record<string, unknown>;
      return new Response(JSON.stringify({ ...body, publicKey: other.user!.publicKey }), { status: 200, headers: { 'content-type': 'application/json' } });
    });
    const bob = client(server, { fetch: lying });
    await bob.register(`bo_${Date.now()}`, PASSWORD);
    await bob.connect();
    const bad = record(bob, 'undecryptable');
    const good = record(bob, 'message');
    await alice.sendText(bob.user!.id, 'who am I');
    await atLeast(bad, 1, 'rejection');
    expect(bad[0]!.error).toBeInstanceOf(UntrustedIdentityError);
    expect(good).toEqual([]);
    // nothing was consumed: with the honest directory the same message opens
    const honest = client(server, { stores: bob.stores });
    await honest.restore();
    await waitUntil(async () => (await honest.history(alice.user!.id)).items[0]?.plaintext?.body === 'who am I', 'decryption with the honest directory');
  });
});
