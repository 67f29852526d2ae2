/** Pre-key management through a real server: refill on `prekeys.low` and on connect, signed pre-key rotation. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../../../test/_helpers/server.js';
import { atLeast, client, disconnectAll, PASSWORD, record, registered, startServer, uniqueName, waitUntil } from './helpers.js';

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});
afterEach(() => disconnectAll());
afterAll(() => server?.close());

describe('one-time pre-keys', () => {
  it('prekeys.low makes the owner top its one-time pre-keys up; sessions made from old and new keys all work', async () => {
    const bob = client(server, { preKeyBatch: 15, preKeyMinimum: 5 });
    await bob.register(uniqueName(), PASSWORD);
    expect(await bob.api.getPreKeyCount()).toEqual({ oneTimePreKeys: 15 });
    await bob.connect();
    const uploads = record(bob, 'preKeysUploaded');
    const got = record(bob, 'message');

    // six people write to Bob for the first time: each claims one of his one-time pre-keys (15 → 9 < 10)
    const senders = await Promise.all(Array.from({ length: 6 }, () => registered(server)));
    for (const [i, s] of senders.entries()) await s.sendText(bob.user!.id, `first contact ${i}`);
    await atLeast(got, 6, 'messages');
    await atLeast(uploads, 1, 'a refill');
    await waitUntil(async () => (await bob.api.getPreKeyCount()).oneTimePreKeys === 15, 'count back at 15');
    expect(uploads[0]).toEqual({ uploaded: 6, total: 15 });
    // the keys used by the six sessions are gone locally; the new ones are there
    expect((await bob.stores.keys.listOneTimePreKeys()).length).toBe(15);

    // the server's 15 and Bob's 15 are the same keys: a sender after the refill gets one, and Bob opens the message
    const local = new Set((await bob.stores.keys.listOneTimePreKeys()).map((k) => k.keyId));
    const late = await registered(server);
    const claimed = await late.api.getPreKeyBundle(bob.user!.id);
    expect(local.has(claimed.oneTimePreKey!.keyId)).toBe(true);
    await late.sendText(bob.user!.id, 'after the refill');
    await atLeast(got, 7, 'messages');
    expect(got.map((m) => m.plaintext.body)).toEqual([...senders.map((_, i) => `first contact ${i}`), 'after the refill']);
    expect((await bob.stores.keys.listOneTimePreKeys()).length).toBe(14); // the one the session used is gone; the one only claimed stays
  });

  it('connecting tops up keys that were drained while the owner was away', async () => {
    const bob = client(server, { preKeyBatch: 20, preKeyMinimum: 8 });
    await bob.register(uniqueName(), PASSWORD);
    const drainer = await registered(server);
    for (let i = 0; i < 15; i++) await drainer.api.getPreKeyBundle(bob.user!.id);
    expect(await bob.api.getPreKeyCount()).toEqual({ oneTimePreKeys: 5 });
    const uploads = record(bob, 'preKeysUploaded');
    await bob.connect();
    await atLeast(uploads, 1, 'a refill');
    // prekeys.low events queued while away and the check on connect share one refill
    await waitUntil(async () => (await bob.api.getPreKeyCount()).oneTimePreKeys === 20, 'count back at 20');
  });
});

describe('signed pre-key', () => {
  it('rotation publishes a new signed pre-key; a first message made with the previous one still opens', async () => {
    const bob = await registered(server);
    const alice = await registered(server);
    const before = await alice.api.getPreKeyBundle(bob.user!.id);
    // Alice writes first while Bob is offline, with the bundle of the old signed pre-key
    await alice.sendText(bob.user!.id, 'made with the old signed pre-key');

    await bob.rotateSignedPreKey();
    const after = await alice.api.getPreKeyBundle(bob.user!.id);
    expect(after.signedPreKey.keyId).not.toBe(before.signedPreKey.keyId);
    expect(after.identityKey).toBe(before.identityKey);
    expect(await bob.api.getPreKeyCount()).toEqual({ oneTimePreKeys: 97 }); // rotation uploads no one-time keys

    const carol = await registered(server);
    await bob.connect();
    const got = record(bob, 'message');
    await carol.sendText(bob.user!.id, 'made with the new signed pre-key');
    await atLeast(got, 1, 'messages');
    const history = await bob.history(alice.user!.id);
    expect(history.items.map((i) => i.plaintext?.body)).toEqual(['made with the old signed pre-key']);
    expect(got.map((m) => m.plaintext.body)).toContain('made with the new signed pre-key');
  });

  it('connect() replaces a signed pre-key older than signedPreKeyMaxAgeDays', async () => {
    let offset = 0;
    const bob = client(server, { now: () => Date.now() + offset, signedPreKeyMaxAgeDays: 30 });
    await bob.register(uniqueName(), PASSWORD);
    const alice = await registered(server);
    const first = (await bob.stores.keys.listSignedPreKeys())[0]!;
    await bob.connect();
    await bob.socket.idle();
    bob.disconnect();
    expect((await bob.stores.keys.listSignedPreKeys()).length).toBe(1); // young: kept

    offset = 31 * 86_400_000;
    const uploads = record(bob, 'preKeysUploaded');
    await bob.connect();
    await waitUntil(async () => (await bob.stores.keys.listSignedPreKeys()).length === 2, 'a new signed pre-key');
    const newest = (await bob.stores.keys.listSignedPreKeys()).find((k) => k.keyId !== first.keyId)!;
    await waitUntil(async () => (await alice.api.getPreKeyBundle(bob.user!.id)).signedPreKey.keyId === newest.keyId, 'the new one published');
    expect(uploads).toEqual([]);
  });
});
