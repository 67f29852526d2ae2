/**
 * Replayed first (pre-key) messages are refused for as long as their signed pre-key is kept, also
 * once their session has left the peer's record (decision 0102).
 */
import { describe, expect, it } from 'vitest';
import {
  DecryptionError,
  ReusedBaseKeyError,
  constants,
  decryptMessage,
  envelope,
  fromBase64,
  hasSession,
  rotateSignedPreKey,
  session,
  toBase64,
  type KeyStore,
  type SignedPreKeyRecord,
} from '../src/index.js';
import { withSeenBaseKey } from '../src/crypto/base-keys.js';
import { connect, makeUser, receive, send, type ServerMessage, type TestUser } from './helpers.js';

const { MAX_ARCHIVED_STATES, MAX_SEEN_BASE_KEYS } = constants;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

function baseKeyOf(m: ServerMessage): string {
  return toBase64(envelope.decodeEnvelope(fromBase64(m.encryptedContent)).preKey!.baseKey);
}

function spkIdOf(m: ServerMessage): number {
  return envelope.decodeEnvelope(fromBase64(m.encryptedContent)).preKey!.signedPreKeyId;
}

async function activeBaseKey(receiver: TestUser, peer: TestUser): Promise<string | undefined> {
  return (await receiver.sessions.loadSession(peer.id))?.active?.baseKey;
}

async function holdsSession(receiver: TestUser, peer: TestUser, m: ServerMessage): Promise<boolean> {
  const json = await receiver.sessions.loadSession(peer.id);
  if (!json) return false;
  const pk = envelope.decodeEnvelope(fromBase64(m.encryptedContent)).preKey!;
  return session.findStateByBaseKey(session.recordFromJSON(json), pk.identityKey, pk.baseKey) !== undefined;
}

/** Alice starts `n` new sessions with Bob, each opened by one first message (no one-time pre-key). */
async function newSessions(alice: TestUser, bob: TestUser, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await connect(alice, bob, { withOneTimePreKey: false });
    expect((await receive(bob, await send(alice, bob, `session ${i}`))).sessionCreated).toBe(true);
  }
}

/** Nothing moved: Alice's next message opens on Bob's side and Bob's reply opens on Alice's. */
async function expectSessionIntact(alice: TestUser, bob: TestUser, tag: string): Promise<void> {
  const d = await receive(bob, await send(alice, bob, `next ${tag}`));
  expect(d).toMatchObject({ body: `next ${tag}`, sessionCreated: false });
  expect((await receive(alice, await send(bob, alice, `reply ${tag}`))).body).toBe(`reply ${tag}`);
}

describe('replayed first messages', () => {
  it('without a one-time pre-key: refused at once and after its session left the archive; the active session is unchanged', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob, { withOneTimePreKey: false });
    const first = await send(alice, bob, 'first');
    expect((await receive(bob, first)).body).toBe('first');

    // at once: the session is held, its counters refuse it
    const active = await activeBaseKey(bob, alice);
    expect(await rejection(receive(bob, first))).toBeInstanceOf(DecryptionError);
    expect(await activeBaseKey(bob, alice)).toBe(active);
    await expectSessionIntact(alice, bob, 'after the first replay');

    // MAX_ARCHIVED_STATES + 1 newer sessions push it out of Bob's record
    await newSessions(alice, bob, MAX_ARCHIVED_STATES + 1);
    expect(await holdsSession(bob, alice, first)).toBe(false);
    const current = await activeBaseKey(bob, alice);
    const err = await rejection(receive(bob, first));
    expect(err).toBeInstanceOf(ReusedBaseKeyError);
    expect(err).toBeInstanceOf(DecryptionError); // callers that handle DecryptionError need no change
    expect(await activeBaseKey(bob, alice)).toBe(current);
    expect(await holdsSession(bob, alice, first)).toBe(false);
    await expectSessionIntact(alice, bob, 'after the late replay');
    // and again, after the session moved on
    expect(await rejection(receive(bob, first))).toBeInstanceOf(ReusedBaseKeyError);
    await expectSessionIntact(alice, bob, 'after another replay');
  });

  it('refused after the receiver dropped its session record with the peer; no session is made', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob, { withOneTimePreKey: false });
    const first = await send(alice, bob, 'first');
    await receive(bob, first);
    await bob.sessions.deleteSession(alice.id);
    expect(await rejection(receive(bob, first))).toBeInstanceOf(ReusedBaseKeyError);
    expect(await hasSession(bob.stores, alice.id)).toBe(false);
  });

  it('with a one-time pre-key: the base key is remembered as well (defence in depth)', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob, { withOneTimePreKey: true });
    const first = await send(alice, bob, 'first');
    await receive(bob, first);
    const spk = (await bob.keys.getSignedPreKey(spkIdOf(first)))!;
    expect(spk.seenBaseKeys).toEqual([baseKeyOf(first)]);
    await newSessions(alice, bob, MAX_ARCHIVED_STATES + 1);
    // refused for its base key before the (consumed) one-time pre-key is even looked up
    expect(await rejection(receive(bob, first))).toBeInstanceOf(ReusedBaseKeyError);
    await expectSessionIntact(alice, bob, 'opk');
  });

  it("honest pre-key messages of a session still held open, in any order; a failed one is not remembered", async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob, { withOneTimePreKey: false });
    const ms = [await send(alice, bob, 'a'), await send(alice, bob, 'b'), await send(alice, bob, 'c')];
    expect(ms.map((m) => m.type)).toEqual(['key_exchange', 'key_exchange', 'key_exchange']);
    // a forged copy (bad MAC) of the first message: refused, and its base key not remembered
    const forged = { ...ms[0]!, mac: toBase64(new Uint8Array(32)) };
    expect(await rejection(receive(bob, forged))).toBeInstanceOf(DecryptionError);
    expect((await bob.keys.getSignedPreKey(spkIdOf(ms[0]!)))!.seenBaseKeys).toBeUndefined();
    expect((await receive(bob, ms[2]!)).body).toBe('c');
    expect((await receive(bob, ms[0]!)).body).toBe('a');
    expect((await receive(bob, ms[1]!)).body).toBe('b');
    expect((await bob.keys.getSignedPreKey(spkIdOf(ms[0]!)))!.seenBaseKeys).toEqual([baseKeyOf(ms[0]!)]);
  });
});

describe('the base-key list of a signed pre-key', () => {
  it('is kept while the signed pre-key is kept, and goes with it when it is rotated out', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob, { withOneTimePreKey: false });
    const first = await send(alice, bob, 'first');
    await receive(bob, first);
    const spkId = spkIdOf(first);
    await bob.sessions.deleteSession(alice.id);

    await rotateSignedPreKey(bob.keys); // kept (newest 3)
    expect((await bob.keys.getSignedPreKey(spkId))!.seenBaseKeys).toEqual([baseKeyOf(first)]);
    expect(await rejection(receive(bob, first))).toBeInstanceOf(ReusedBaseKeyError);

    await rotateSignedPreKey(bob.keys);
    await rotateSignedPreKey(bob.keys); // now the 4th newest: deleted, list and all
    expect(await bob.keys.getSignedPreKey(spkId)).toBeUndefined();
    expect(JSON.stringify(await bob.keys.listSignedPreKeys())).not.toContain(baseKeyOf(first));
    // the message can no longer be opened at all
    const err = await rejection(receive(bob, first));
    expect(err).toBeInstanceOf(DecryptionError);
    expect(err).not.toBeInstanceOf(ReusedBaseKeyError);
  });

  it('at the cap the oldest base key is forgotten and new first messages are still accepted', async () => {
    expect(MAX_SEEN_BASE_KEYS).toBe(10_000);
    const rec = { keyId: 1, publicKey: new Uint8Array(32), secretKey: new Uint8Array(32), signature: new Uint8Array(64), createdAt: 1 };
    let r: SignedPreKeyRecord = rec;
    for (const k of ['k1', 'k2', 'k3', 'k4']) r = withSeenBaseKey(r, k, 3) ?? r;
    expect(r.seenBaseKeys).toEqual(['k2', 'k3', 'k4']);
    expect(withSeenBaseKey(r, 'k3', 3)).toBeUndefined(); // already there: nothing to save

    const alice = await makeUser();
    const bob = await makeUser();
    const spkId = bob.upload.signedPreKey.keyId;
    const filler = Array.from({ length: MAX_SEEN_BASE_KEYS }, (_, i) => toBase64(Uint8Array.from({ length: 32 }, (_, j) => (i >> (8 * (j % 4))) & 0xff)));
    await bob.keys.saveSignedPreKey({ ...(await bob.keys.getSignedPreKey(spkId))!, seenBaseKeys: filler });
    await connect(alice, bob, { withOneTimePreKey: false });
    const first = await send(alice, bob, 'first');
    expect((await receive(bob, first)).body).toBe('first');
    const seen = (await bob.keys.getSignedPreKey(spkId))!.seenBaseKeys!;
    expect(seen).toHaveLength(MAX_SEEN_BASE_KEYS);
    expect(seen[0]).toBe(filler[1]);
    expect(seen.at(-1)).toBe(baseKeyOf(first));
    await bob.sessions.deleteSession(alice.id);
    expect(await rejection(receive(bob, first))).toBeInstanceOf(ReusedBaseKeyError);
  });

  it('first messages from many peers at once are all remembered', async () => {
    const bob = await makeUser();
    const spkId = bob.upload.signedPreKey.keyId;
    const peers = await Promise.all(Array.from({ length: 12 }, () => makeUser()));
    const firsts = await Promise.all(
      peers.map(async (p) => {
        await connect(p, bob, { withOneTimePreKey: false });
        return send(p, bob, `from ${p.id}`);
      }),
    );
    const [, rotated] = await Promise.all([Promise.all(firsts.map((m) => receive(bob, m))), rotateSignedPreKey(bob.keys, { retain: 2 })]);
    expect((await bob.keys.listSignedPreKeys()).map((k) => k.keyId).sort()).toEqual([spkId, rotated.keyId].sort());
    expect(new Set((await bob.keys.getSignedPreKey(spkId))!.seenBaseKeys)).toEqual(new Set(firsts.map(baseKeyOf)));
  });

  it('a signed pre-key rotated out while a first message under it opens is not written back', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    const spkId = bob.upload.signedPreKey.keyId;
    // Bob's key store, with a rotation (retain 1) run just after the decryption has read the signed pre-key
    const inner = bob.keys;
    let rotation: Promise<unknown> | undefined;
    const keys: KeyStore = {
      getIdentityKeyPair: () => inner.getIdentityKeyPair(),
      saveIdentityKeyPair: (k) => inner.saveIdentityKeyPair(k),
      getSignedPreKey: async (id) => {
        const r = await inner.getSignedPreKey(id);
        if (!rotation) await (rotation = rotateSignedPreKey(keys, { retain: 1 }));
        return r;
      },
      listSignedPreKeys: () => inner.listSignedPreKeys(),
      saveSignedPreKey: (r) => inner.saveSignedPreKey(r),
      removeSignedPreKey: (id) => inner.removeSignedPreKey(id),
      getOneTimePreKey: (id) => inner.getOneTimePreKey(id),
      listOneTimePreKeys: () => inner.listOneTimePreKeys(),
      saveOneTimePreKey: (r) => inner.saveOneTimePreKey(r),
      removeOneTimePreKey: (id) => inner.removeOneTimePreKey(id),
    };
    await connect(alice, bob, { withOneTimePreKey: false });
    const d = await decryptMessage({ keys, sessions: bob.sessions }, await send(alice, bob, 'x'));
    expect(d.body).toBe('x');
    expect(rotation).toBeDefined();
    expect(await inner.getSignedPreKey(spkId)).toBeUndefined();
    expect(await inner.listSignedPreKeys()).toHaveLength(1);
  });
});

describe('stored state from before the base-key list', () => {
  it('signed pre-key records without the field load as "nothing seen"; a malformed field is refused', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    const spkId = bob.upload.signedPreKey.keyId;
    const stored = (await bob.keys.getSignedPreKey(spkId))!;
    expect('seenBaseKeys' in stored).toBe(false); // as every record stored before it was

    // a record as an older store hands it back (no field, or null from a store that writes null)
    await bob.keys.saveSignedPreKey({ ...stored, seenBaseKeys: null as unknown as string[] });
    await connect(alice, bob, { withOneTimePreKey: false });
    const first = await send(alice, bob, 'first');
    expect((await receive(bob, first)).body).toBe('first');
    expect((await bob.keys.getSignedPreKey(spkId))!.seenBaseKeys).toEqual([baseKeyOf(first)]);

    // a corrupted list is not read as "nothing seen"
    const carol = await makeUser();
    await connect(carol, bob, { withOneTimePreKey: false });
    await bob.keys.saveSignedPreKey({ ...stored, seenBaseKeys: 'oops' as unknown as string[] });
    expect(await rejection(receive(bob, await send(carol, bob, 'x')))).toBeInstanceOf(TypeError);
  });

  it('a session set up before the upgrade is remembered when it leaves the archive, under every signed pre-key kept', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    const spkId = bob.upload.signedPreKey.keyId;
    await connect(alice, bob, { withOneTimePreKey: false });
    const first = await send(alice, bob, 'first');
    await receive(bob, first);
    // what the previous version stored: the session, and no base-key list
    const { seenBaseKeys: _dropped, ...old } = (await bob.keys.getSignedPreKey(spkId))!;
    await bob.keys.saveSignedPreKey(old);
    const newer = await rotateSignedPreKey(bob.keys);

    await newSessions(alice, bob, MAX_ARCHIVED_STATES); // still held: nothing written for it yet
    expect(await holdsSession(bob, alice, first)).toBe(true);
    expect((await bob.keys.getSignedPreKey(newer.keyId))!.seenBaseKeys).toBeUndefined();
    await newSessions(alice, bob, 1); // pushed out now
    expect(await holdsSession(bob, alice, first)).toBe(false);
    expect((await bob.keys.getSignedPreKey(spkId))!.seenBaseKeys).toContain(baseKeyOf(first));
    expect((await bob.keys.getSignedPreKey(newer.keyId))!.seenBaseKeys).toEqual([baseKeyOf(first)]);

    expect(await rejection(receive(bob, first))).toBeInstanceOf(ReusedBaseKeyError);
    await expectSessionIntact(alice, bob, 'upgrade');
  });
});
