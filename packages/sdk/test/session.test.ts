/** Behaviour of the end-to-end API: sessions, ordering, loss, tampering, replay, persistence. */
import { describe, expect, it } from 'vitest';
import {
  DecryptionError,
  InvalidBundleError,
  MissingKeyError,
  NoSessionError,
  buildUploadBundle,
  constants,
  decryptMessage,
  encryptMessage,
  generateIdentity,
  generatePreKeys,
  hasSession,
  initiateSession,
  toBase64,
  fromBase64,
  UntrustedIdentityError,
} from '../src/index.js';
import { MemoryKeyStore, MemorySessionStore } from '../src/store/index.js';
import { chatIdFor, claimBundle, connect, flipBit, makeUser, receive, send, type ServerMessage, type TestUser } from './helpers.js';

async function expectRejected(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptionError);
  expect((err as Error).message).toBe('message could not be decrypted');
}

describe('session setup', () => {
  it.each([true, false])('A↔B with one-time pre-key: %s', async (withOneTimePreKey) => {
    const alice = await makeUser();
    const bob = await makeUser();
    const opkCountBefore = (await bob.keys.listOneTimePreKeys()).length;
    const r = await connect(alice, bob, { withOneTimePreKey });
    expect(r).toEqual({ peerIdentityKey: bob.upload.identityKey, identityChanged: false });
    expect(await hasSession(alice.stores, bob.id)).toBe(true);

    const m1 = await send(alice, bob, 'hello bob');
    expect(m1.type).toBe('key_exchange');
    const d1 = await receive(bob, m1);
    expect(d1).toMatchObject({ type: 'text', body: 'hello bob', sessionCreated: true, identityChanged: false, counter: 0 });
    expect(d1.peerIdentityKey).toBe(alice.upload.identityKey);
    // the one-time pre-key is consumed once the message authenticated
    expect((await bob.keys.listOneTimePreKeys()).length).toBe(opkCountBefore - (withOneTimePreKey ? 1 : 0));

    const m2 = await send(bob, alice, 'hello alice');
    expect(m2.type).toBe('text');
    expect(await receive(alice, m2)).toMatchObject({ type: 'text', body: 'hello alice', sessionCreated: false });
    // Alice got a reply: no more pre-key header
    const m3 = await send(alice, bob, 'again');
    expect(m3.type).toBe('text');
    expect(fromBase64(m3.encryptedContent)[1]).toBe(constants.ENVELOPE_KIND_MESSAGE);
    expect((await receive(bob, m3)).body).toBe('again');
  });

  it('many turns in both directions, with bursts, binary bodies and every type', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    const types = constants.PLAINTEXT_TYPES;
    let turn = 0;
    for (let round = 0; round < 30; round++) {
      const [from, to] = round % 2 === 0 ? [alice, bob] : [bob, alice];
      const burst = 1 + (round % 4);
      for (let i = 0; i < burst; i++) {
        const type = types[turn % types.length]!;
        const body = turn % 3 === 0 ? new Uint8Array([turn & 0xff, 1, 2, 3]) : `msg ${turn} ✓`;
        const d = await receive(to, await send(from, to, body, type));
        expect(d.type).toBe(type);
        expect(d.body).toEqual(body);
        turn++;
      }
    }
  });

  it('several pre-key messages before the first reply: one session, one pre-key consumed', async () => {
    const alice = await makeUser();
    const bob = await makeUser({ oneTimePreKeys: 2 });
    await connect(alice, bob);
    const ms = [await send(alice, bob, 'a'), await send(alice, bob, 'b'), await send(alice, bob, 'c')];
    expect(ms.map((m) => m.type)).toEqual(['key_exchange', 'key_exchange', 'key_exchange']);
    const ds = [];
    for (const m of ms) ds.push(await receive(bob, m));
    expect(ds.map((d) => [d.body, d.sessionCreated])).toEqual([
      ['a', true],
      ['b', false],
      ['c', false],
    ]);
    expect((await bob.keys.listOneTimePreKeys()).length).toBe(1);
  });

  it('first message lost: a later pre-key message sets the session up, the first still decrypts when it turns up', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    const m1 = await send(alice, bob, 'one');
    const m2 = await send(alice, bob, 'two');
    expect((await receive(bob, m2)).body).toBe('two');
    expect((await receive(bob, m1)).body).toBe('one');
    expect((await receive(alice, await send(bob, alice, 'three'))).body).toBe('three');
  });

  it('bad signed pre-key signature is rejected by the initiator before any use', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    const mallory = await makeUser();
    const good = claimBundle(bob);
    const flipped = { ...good, signedPreKey: { ...good.signedPreKey, signature: flipBit(good.signedPreKey.signature, 10) } };
    await expect(initiateSession(alice.stores, bob.id, flipped)).rejects.toBeInstanceOf(InvalidBundleError);
    // a signed pre-key signed by someone else's identity key
    const swapped = { ...good, signedPreKey: mallory.upload.signedPreKey };
    await expect(initiateSession(alice.stores, bob.id, swapped)).rejects.toBeInstanceOf(InvalidBundleError);
    // the signed pre-key replaced, signature kept
    const replaced = { ...good, signedPreKey: { ...good.signedPreKey, publicKey: mallory.upload.signedPreKey.publicKey } };
    await expect(initiateSession(alice.stores, bob.id, replaced)).rejects.toBeInstanceOf(InvalidBundleError);
    // malformed / for another user / low-order keys
    await expect(initiateSession(alice.stores, bob.id, { ...good, identityKey: 'AAAA' })).rejects.toBeInstanceOf(InvalidBundleError);
    await expect(initiateSession(alice.stores, 'someone-else', good)).rejects.toBeInstanceOf(InvalidBundleError);
    await expect(initiateSession(alice.stores, bob.id, { ...good, identityKey: toBase64(new Uint8Array(32)) })).rejects.toBeInstanceOf(InvalidBundleError);
    // A libsignal client's Curve25519 identity key (the server accepts it): refused by name.
    const curve = new Uint8Array(33);
    curve[0] = 0x05;
    curve[1] = 9;
    await expect(initiateSession(alice.stores, bob.id, { ...good, identityKey: toBase64(curve) })).rejects.toThrow(/Curve25519/);
    await expect(
      initiateSession(alice.stores, bob.id, { ...good, oneTimePreKey: { keyId: 1, publicKey: toBase64(new Uint8Array(32)) } }),
    ).rejects.toBeInstanceOf(InvalidBundleError);
    expect(await hasSession(alice.stores, bob.id)).toBe(false);
  });

  it('encrypting without a session or without keys fails clearly', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await expect(send(alice, bob)).rejects.toBeInstanceOf(NoSessionError);
    const empty = { keys: new MemoryKeyStore(), sessions: new MemorySessionStore() };
    await expect(generatePreKeys(empty.keys, 1)).rejects.toBeInstanceOf(MissingKeyError);
    await expect(buildUploadBundle(empty.keys)).rejects.toBeInstanceOf(MissingKeyError);
    await expect(initiateSession(empty, bob.id, claimBundle(bob))).rejects.toBeInstanceOf(MissingKeyError);
  });

  it('both sides initiate at the same time: every message decrypts and the sessions converge', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    await connect(bob, alice);
    const a1 = await send(alice, bob, 'a1');
    const b1 = await send(bob, alice, 'b1');
    expect([a1.type, b1.type]).toEqual(['key_exchange', 'key_exchange']);
    expect((await receive(bob, a1)).body).toBe('a1');
    expect((await receive(alice, b1)).body).toBe('b1');
    for (let i = 0; i < 6; i++) {
      expect((await receive(bob, await send(alice, bob, `a${i}`))).body).toBe(`a${i}`);
      expect((await receive(alice, await send(bob, alice, `b${i}`))).body).toBe(`b${i}`);
    }
    const last = await send(alice, bob, 'settled');
    expect(last.type).toBe('text');
    expect((await receive(bob, last)).body).toBe('settled');
  });
});

describe('ordering and loss', () => {
  it('out-of-order and lost messages within MAX_SKIP decrypt, across DH ratchet turns', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    await receive(bob, await send(alice, bob, 'start'));
    await receive(alice, await send(bob, alice, 'ok'));

    const a = [];
    for (let i = 1; i <= 5; i++) a.push(await send(alice, bob, `a${i}`));
    expect((await receive(bob, a[2]!)).body).toBe('a3');
    expect((await receive(bob, a[0]!)).body).toBe('a1');
    expect((await receive(bob, a[4]!)).body).toBe('a5');
    // Bob replies (new DH ratchet), Alice answers in a new chain; old-chain messages still arrive
    await receive(alice, await send(bob, alice, 'reply'));
    const a6 = await send(alice, bob, 'a6');
    expect((await receive(bob, a6)).body).toBe('a6');
    expect((await receive(bob, a[3]!)).body).toBe('a4');
    // a[1] (a2) is never delivered: lost. The conversation goes on.
    for (let i = 0; i < 3; i++) {
      expect((await receive(alice, await send(bob, alice, `b${i}`))).body).toBe(`b${i}`);
      expect((await receive(bob, await send(alice, bob, `c${i}`))).body).toBe(`c${i}`);
    }
    // and it would still decrypt now
    expect((await receive(bob, a[1]!)).body).toBe('a2');
  });

  it('exactly MAX_SKIP skipped messages decrypt; one more is rejected', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    await receive(bob, await send(alice, bob, 'start'));
    await receive(alice, await send(bob, alice, 'ok'));

    let last: ServerMessage | undefined;
    for (let i = 0; i <= constants.MAX_SKIP; i++) last = await send(alice, bob, `m${i}`);
    // last has n = MAX_SKIP: MAX_SKIP keys are skipped
    expect((await receive(bob, last!)).body).toBe(`m${constants.MAX_SKIP}`);

    for (let i = 0; i <= constants.MAX_SKIP + 1; i++) last = await send(alice, bob, `x${i}`);
    await expectRejected(receive(bob, last!)); // would skip MAX_SKIP + 1
    // the session is not harmed: the next in-window message decrypts
    const ok = await send(alice, bob, 'after');
    await expectRejected(receive(bob, ok)); // still MAX_SKIP + 2 ahead: rejected too
    // a reply from Bob turns the ratchet: Alice's new chain starts at 0 and decrypts, although
    // her previous chain ended more than MAX_SKIP beyond what Bob had (its tail is lost)
    await receive(alice, await send(bob, alice, 'turn'));
    expect((await receive(bob, await send(alice, bob, 'new chain'))).body).toBe('new chain');
    const rec = (await bob.sessions.loadSession(alice.id))!;
    expect(rec.active!.ratchet.skipped.length).toBeLessThanOrEqual(constants.MAX_STORED_SKIPPED_KEYS);
  }, 60_000);
});

describe('tampering and replay', () => {
  async function setup(): Promise<{ alice: TestUser; bob: TestUser; carol: TestUser }> {
    const alice = await makeUser();
    const bob = await makeUser();
    const carol = await makeUser();
    await connect(alice, bob);
    await connect(carol, bob);
    await receive(bob, await send(alice, bob, 'start'));
    await receive(bob, await send(carol, bob, 'start'));
    await receive(alice, await send(bob, alice, 'ok'));
    return { alice, bob, carol };
  }

  it('tampered ciphertext, IV, MAC, header or routing are rejected, and the real message still decrypts', async () => {
    const { alice, bob, carol } = await setup();
    const m = await send(alice, bob, 'secret', 'text');
    const len = Buffer.from(m.encryptedContent, 'base64').length;
    const forgeries: ServerMessage[] = [
      { ...m, encryptedContent: flipBit(m.encryptedContent, -1) }, // last ciphertext byte
      { ...m, encryptedContent: flipBit(m.encryptedContent, -17) }, // previous block (CBC bit-flipping)
      { ...m, encryptedContent: flipBit(m.encryptedContent, 2) }, // counter
      { ...m, encryptedContent: flipBit(m.encryptedContent, 6) }, // ratchet key
      { ...m, encryptedContent: flipBit(m.encryptedContent, 6 + 32 + 3) }, // pn
      { ...m, encryptedContent: flipBit(m.encryptedContent, 6 + 36 + 3) }, // n
      { ...m, encryptedContent: flipBit(m.encryptedContent, 0) }, // version
      { ...m, encryptedContent: flipBit(m.encryptedContent, 1) }, // kind
      { ...m, encryptedContent: Buffer.from(m.encryptedContent, 'base64').subarray(0, len - 16).toString('base64') }, // truncated
      { ...m, encryptedContent: m.encryptedContent + 'AAAA' }, // extended
      { ...m, encryptedContent: 'not base64!' },
      { ...m, iv: flipBit(m.iv, 0) },
      { ...m, iv: flipBit(m.iv, 15, 7) },
      { ...m, mac: flipBit(m.mac, 0) },
      { ...m, mac: flipBit(m.mac, 31, 7) },
      { ...m, mac: Buffer.from(m.mac, 'base64').subarray(0, 16).toString('base64') }, // truncated tag
      { ...m, chatId: 'another-chat' },
      { ...m, receiverId: carol.id },
      { ...m, senderId: carol.id }, // Bob has a session with Carol too: still rejected
    ];
    for (const f of forgeries) await expectRejected(receive(bob, f));
    expect((await receive(bob, m)).body).toBe('secret');
  });

  it('a pairwise copy delivered to another recipient does not decrypt there', async () => {
    const { alice, bob, carol } = await setup();
    await connect(alice, carol);
    await receive(carol, await send(alice, carol, 'hi carol'));
    const forBob = await send(alice, bob, 'only for bob');
    await expectRejected(receive(carol, forBob));
    await expectRejected(receive(carol, { ...forBob, receiverId: carol.id }));
    expect((await receive(bob, forBob)).body).toBe('only for bob');
  });

  it('replays are rejected: a normal message, a skipped one, and the first pre-key message', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob, { withOneTimePreKey: false });
    const first = await send(alice, bob, 'first');
    await receive(bob, first);
    await expectRejected(receive(bob, first));

    await receive(alice, await send(bob, alice, 'ok'));
    const m1 = await send(alice, bob, 'm1');
    const m2 = await send(alice, bob, 'm2');
    await receive(bob, m2);
    await receive(bob, m1); // from the skipped-key store, which then forgets it
    await expectRejected(receive(bob, m1));
    await expectRejected(receive(bob, m2));
    // the first (pre-key) message again, after the ratchet moved on: still the same session, still rejected
    await expectRejected(receive(bob, first));
    expect((await receive(bob, await send(alice, bob, 'still fine'))).body).toBe('still fine');
  });

  it('a pre-key message naming an unknown signed pre-key, or forged, consumes nothing', async () => {
    const alice = await makeUser();
    const bob = await makeUser({ oneTimePreKeys: 1 });
    await connect(alice, bob);
    const m = await send(alice, bob, 'x');
    await expectRejected(receive(bob, { ...m, mac: flipBit(m.mac, 3) }));
    expect((await bob.keys.listOneTimePreKeys()).length).toBe(1);
    expect(await hasSession(bob.stores, alice.id)).toBe(false);
    // signed pre-key id changed (bytes 6+40+64 .. +68 of the envelope)
    await expectRejected(receive(bob, { ...m, encryptedContent: flipBit(m.encryptedContent, 6 + 40 + 64 + 3) }));
    expect((await receive(bob, m)).body).toBe('x');
    expect((await bob.keys.listOneTimePreKeys()).length).toBe(0);
  });

  it('our own message reflected back to us is rejected', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    const m = await send(alice, bob, 'x');
    await expectRejected(receive(alice, { ...m, senderId: bob.id, receiverId: alice.id }));
    await expectRejected(receive(alice, m));
  });
});

describe('identity changes', () => {
  it('a peer who re-registers with a new identity key is flagged on both paths', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    await receive(bob, await send(alice, bob, 'hi'));
    await receive(alice, await send(bob, alice, 'hi'));

    // Bob reinstalls: new identity, new pre-keys, same user id
    const bob2 = await makeUser({ id: bob.id });
    const r = await connect(alice, bob2);
    expect(r.identityChanged).toBe(true);
    expect(r.peerIdentityKey).toBe(bob2.upload.identityKey);
    const d = await receive(bob2, await send(alice, bob2, 'who are you'));
    expect(d.sessionCreated).toBe(true);
    expect(d.identityChanged).toBe(false); // bob2 never had a session with Alice

    // Alice reinstalls and writes to Bob, who had a session with her old key
    const alice2 = await makeUser({ id: alice.id });
    await connect(alice2, bob2);
    const d2 = await receive(bob2, await send(alice2, bob2, 'new phone'));
    expect(d2).toMatchObject({ sessionCreated: true, identityChanged: true, peerIdentityKey: alice2.upload.identityKey });
  });
});

describe('identity trust hook', () => {
  it('a refused identity stores and consumes nothing; an accepted one proceeds', async () => {
    const alice = await makeUser();
    const bob = await makeUser({ oneTimePreKeys: 1 });
    await connect(alice, bob);
    const m = await send(alice, bob, 'hello');
    const seen: [string, string][] = [];
    const refuse = (u: string, k: string) => (seen.push([u, k]), false);
    const err = await decryptMessage(bob.stores, m, { trustIdentity: refuse }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UntrustedIdentityError);
    expect(err).toMatchObject({ peerUserId: alice.id, identityKey: alice.upload.identityKey });
    expect(seen).toEqual([[alice.id, alice.upload.identityKey]]);
    expect(await hasSession(bob.stores, alice.id)).toBe(false);
    expect((await bob.keys.listOneTimePreKeys()).length).toBe(1);
    // a forged pre-key message never reaches the hook
    seen.length = 0;
    await expectRejected(decryptMessage(bob.stores, { ...m, mac: flipBit(m.mac, 1) }, { trustIdentity: refuse }));
    expect(seen).toEqual([]);
    // the directory says this is Alice's key: accepted
    const directory = new Map([[alice.id, alice.upload.identityKey]]);
    const d = await decryptMessage(bob.stores, m, { trustIdentity: (u, k) => directory.get(u) === k });
    expect(d.body).toBe('hello');
  });
});

describe('persistence and concurrency', () => {
  it('session state survives a JSON round trip mid-conversation (new store objects, skipped keys included)', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    await receive(bob, await send(alice, bob, 'one'));
    await receive(alice, await send(bob, alice, 'two'));
    const pending = [await send(alice, bob, 'p1'), await send(alice, bob, 'p2'), await send(alice, bob, 'p3')];
    await receive(bob, pending[2]!); // p1, p2 become skipped keys

    const revive = async (u: TestUser) => {
      const json = JSON.parse(JSON.stringify(await u.sessions.loadSession(u.id === alice.id ? bob.id : alice.id)));
      const sessions = new MemorySessionStore();
      await sessions.storeSession(u.id === alice.id ? bob.id : alice.id, json);
      u.sessions = sessions;
      u.stores = { keys: u.keys, sessions };
    };
    await revive(alice);
    await revive(bob);
    expect((await receive(bob, pending[0]!)).body).toBe('p1');
    expect((await receive(bob, pending[1]!)).body).toBe('p2');
    expect((await receive(alice, await send(bob, alice, 'three'))).body).toBe('three');
    expect((await receive(bob, await send(alice, bob, 'four'))).body).toBe('four');

    const stored = await bob.sessions.loadSession(alice.id);
    expect(JSON.parse(JSON.stringify(stored))).toEqual(stored); // plain JSON, nothing lost
  });

  it('a corrupted stored record is refused rather than misused', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    const rec = (await alice.sessions.loadSession(bob.id))!;
    await alice.sessions.storeSession(bob.id, { ...rec, version: 2 as 1 });
    await expect(send(alice, bob)).rejects.toThrow(TypeError);
  });

  it('concurrent encrypts and decrypts for one peer are serialised', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    const chatId = chatIdFor(alice, bob);
    const encs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => encryptMessage(alice.stores, { senderId: alice.id, receiverId: bob.id, chatId }, { type: 'text', body: `c${i}` })),
    );
    const counters = encs.map((e) => Buffer.from(e.encryptedContent, 'base64').readUInt32BE(2));
    expect(new Set(counters).size).toBe(20);
    const ds = await Promise.all(encs.map((e) => decryptMessage(bob.stores, { ...e, senderId: alice.id, receiverId: bob.id, chatId })));
    expect(ds.map((d) => d.body).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`).sort());
  });
});

describe('what the server sees', () => {
  it('the outer type is key_exchange or the constant "text"; the real type is only inside', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    await receive(bob, await send(alice, bob, new Uint8Array([1]), 'image'));
    await receive(alice, await send(bob, alice, 'ok'));
    for (const type of constants.PLAINTEXT_TYPES) {
      const m = await send(alice, bob, 'x', type);
      expect(m.type).toBe('text');
      expect((await receive(bob, { ...m, type: 'audio' })).type).toBe(type); // the outer type is ignored
    }
  });

  it('no plaintext in what is posted', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    const m = await send(alice, bob, 'TOP-SECRET-PLAINTEXT');
    const posted = JSON.stringify(m) + Buffer.from(m.encryptedContent, 'base64').toString('latin1');
    expect(posted).not.toContain('TOP-SECRET');
    expect(posted).not.toContain('text\u0001'); // not the payload's type field either
  });

  it('identity key in the upload equals a fresh identity (sanity)', () => {
    const id = generateIdentity();
    expect(id.publicKey.length).toBe(32);
    expect(id.secretKey.length).toBe(32);
  });
});
