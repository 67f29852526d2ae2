import { sign } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Api, isErrorShape, type Session } from '../_helpers/api.js';
import { identityKeyPair, keyUpload, LIBSIGNAL_SIGNATURE_VECTOR, x25519Public, x25519Serialized, xeddsaIdentity } from '../_helpers/keys.js';
import { describeEachDialect, testServer, type TestServer } from '../_helpers/server.js';
import { connect } from '../_helpers/ws.js';

describeEachDialect('key directory', (dialect) => {
  let s: TestServer;
  let api: Api;
  let alice: Session, bob: Session, carol: Session;

  beforeAll(async () => {
    s = await testServer({ dialect, listen: true });
    api = new Api(s.app);
    [alice, bob, carol] = await Promise.all([api.register(), api.register(), api.register()]);
  });
  afterAll(() => s.close());

  it('PUT /keys stores the bundle; the identity key becomes the user’s publicKey', async () => {
    const { body } = keyUpload(undefined, 5);
    const res = await api.put('/keys', body, alice.token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ oneTimePreKeys: 5 });
    expect((await api.get(`/users/${alice.id}`, bob.token)).body.publicKey).toBe(body.identityKey);
    expect((await api.get('/keys/count', alice.token)).body).toEqual({ oneTimePreKeys: 5 });
  });

  it('refuses bad keys, bad signatures and anything private, changing nothing', async () => {
    const { body, identity } = keyUpload(undefined, 2);
    const other = identityKeyPair();
    const spk = body.signedPreKey.publicKey;
    const cases: [string, unknown, string?][] = [
      ['signature by another key', { ...body, signedPreKey: { ...body.signedPreKey, signature: sign(null, Buffer.from(spk, 'base64'), other.privateKey).toString('base64') } }, 'invalid_signature'],
      ['signature over other bytes', { ...body, signedPreKey: { ...body.signedPreKey, publicKey: x25519Public() } }, 'invalid_signature'],
      ['identity not a point', { ...body, identityKey: Buffer.alloc(32, 0xff).toString('base64') }, 'invalid_key'],
      ['identity of small order', { ...body, identityKey: Buffer.alloc(32).toString('base64') }, 'invalid_key'],
      ['all-zero pre-key', { ...body, oneTimePreKeys: [{ keyId: 9, publicKey: Buffer.alloc(32).toString('base64') }] }, 'invalid_key'],
      ['31-byte key', { ...body, oneTimePreKeys: [{ keyId: 9, publicKey: Buffer.alloc(31, 1).toString('base64') }] }, 'invalid_length'],
      ['33-byte key without the 0x05 type byte', { ...body, identityKey: Buffer.alloc(33, 1).toString('base64') }, 'invalid_key'],
      ['34-byte key', { ...body, identityKey: Buffer.alloc(34, 5).toString('base64') }, 'invalid_length'],
      ['64-byte (private) key', { ...body, identityKey: Buffer.alloc(64, 1).toString('base64') }, 'invalid_length'],
      ['a private key field', { ...body, privateKey: 'AAAA' }, 'unknown_field'],
      ['a JWK d', { ...body, signedPreKey: { ...body.signedPreKey, d: 'AAAA' } }, 'unknown_field'],
      ['repeated keyIds', { ...body, oneTimePreKeys: [{ keyId: 3, publicKey: x25519Public() }, { keyId: 3, publicKey: x25519Public() }] }, 'duplicate_key_id'],
      ['keyId out of range', { ...body, oneTimePreKeys: [{ keyId: 2 ** 32, publicKey: x25519Public() }] }],
      ['101 pre-keys', { ...body, oneTimePreKeys: Array.from({ length: 101 }, (_, i) => ({ keyId: i, publicKey: x25519Public() })) }],
      ['base64url key', { ...body, identityKey: Buffer.from(identity.publicKey, 'base64').toString('base64url') }],
    ];
    for (const [name, b, reason] of cases) {
      const res = await api.put('/keys', b, carol.token);
      expect(res.status, name).toBe(400);
      expect(isErrorShape(res.body, 'validation_error'), name).toBe(true);
      if (reason) expect(JSON.stringify(res.body.error.details), name).toContain(reason);
    }
    expect((await api.get(`/users/${carol.id}`, carol.token)).body.publicKey).toBeNull();
    expect((await api.get(`/keys/${carol.id}`, alice.token)).status).toBe(404);
    expect((await api.put('/keys', body)).status).toBe(401);
  });

  it("a libsignal client's keys: a Curve25519 identity (0x05 + 32 bytes) with an XEdDSA signature, stored and handed out as uploaded", async () => {
    const dave = await api.register();
    const v = LIBSIGNAL_SIGNATURE_VECTOR;
    // libsignal's own vector is a whole upload: the key it signed is itself a serialized Curve25519 key.
    const upload = { identityKey: v.identityKey, signedPreKey: { keyId: 7, publicKey: v.message, signature: v.signature }, oneTimePreKeys: [{ keyId: 1, publicKey: x25519Serialized() }] };
    const res = await api.put('/keys', upload, dave.token);
    expect(res.status).toBe(200);
    expect((await api.get(`/users/${dave.id}`, alice.token)).body.publicKey).toBe(v.identityKey);
    const bundle = await api.get(`/keys/${dave.id}`, alice.token);
    expect(bundle.body).toEqual({ userId: dave.id, identityKey: v.identityKey, signedPreKey: upload.signedPreKey, oneTimePreKey: upload.oneTimePreKeys[0] });

    // A fresh identity signing in the XEdDSA paper's variant: accepted too.
    const id = xeddsaIdentity('paper');
    const spk = x25519Serialized();
    const fresh = { identityKey: id.publicKey, signedPreKey: { keyId: 8, publicKey: spk, signature: id.sign(Buffer.from(spk, 'base64')) }, oneTimePreKeys: [] };
    expect((await api.put('/keys', fresh, dave.token)).status).toBe(200);

    // One encoding per upload: pre-keys in the identity key's (no client mixes them).
    const raw = x25519Public();
    const ed = keyUpload(undefined, 0).body;
    for (const [name, b] of [
      ['raw signed pre-key beside a Curve25519 identity', { ...fresh, signedPreKey: { ...fresh.signedPreKey, publicKey: raw, signature: id.sign(Buffer.from(raw, 'base64')) } }],
      ['raw one-time pre-key beside a Curve25519 identity', { ...fresh, oneTimePreKeys: [{ keyId: 3, publicKey: raw }] }],
      ['0x05 one-time pre-key beside an Ed25519 identity', { ...ed, oneTimePreKeys: [{ keyId: 3, publicKey: x25519Serialized() }] }],
    ] as const) {
      const r = await api.put('/keys', b, carol.token);
      expect(r.status, name).toBe(400);
      expect(JSON.stringify(r.body.error.details), name).toContain('invalid_key');
    }

    // Refused: a tampered signature, and a signature over the key without its type byte.
    const tampered = Buffer.from(v.signature, 'base64');
    tampered[40]! ^= 1;
    const signedRaw = xeddsaIdentity();
    const raw33 = x25519Serialized();
    for (const [name, b] of [
      ['tampered XEdDSA signature', { ...upload, signedPreKey: { ...upload.signedPreKey, signature: tampered.toString('base64') } }],
      ['signed without the type byte', { identityKey: signedRaw.publicKey, signedPreKey: { keyId: 9, publicKey: raw33, signature: signedRaw.sign(Buffer.from(raw33, 'base64').subarray(1)) } }],
    ] as const) {
      const r = await api.put('/keys', b, carol.token);
      expect(r.status, name).toBe(400);
      expect(JSON.stringify(r.body.error.details), name).toContain('invalid_signature');
    }
    // Registration takes the same identity keys.
    const withKey = await api.post('/auth/register', { username: `xed${Date.now().toString(36)}`, password: 'violet-Harbor-42-lantern', publicKey: v.identityKey });
    expect(withKey.status).toBe(201);
    expect(withKey.body.user.publicKey).toBe(v.identityKey);
  });

  it('hands out each one-time pre-key once, then bundles without one', async () => {
    const u = await api.register();
    const { body } = keyUpload(undefined, 3, 100);
    await api.put('/keys', body, u.token);
    const seen: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await api.get(`/keys/${u.id}`, bob.token);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ userId: u.id, identityKey: body.identityKey, signedPreKey: body.signedPreKey });
      seen.push(res.body.oneTimePreKey.keyId);
      expect(body.oneTimePreKeys.find((k) => k.keyId === res.body.oneTimePreKey.keyId)?.publicKey).toBe(res.body.oneTimePreKey.publicKey);
    }
    expect(seen.sort()).toEqual([100, 101, 102]);
    const empty = await api.get(`/keys/${u.id}`, bob.token);
    expect(empty.status).toBe(200);
    expect(empty.body.oneTimePreKey).toBeUndefined();
    expect((await api.get('/keys/count', u.token)).body.oneTimePreKeys).toBe(0);
  });

  it('concurrent claims never hand out a key twice', async () => {
    const u = await api.register();
    const { body } = keyUpload(undefined, 20, 1);
    await api.put('/keys', body, u.token);
    const claimers = await Promise.all(Array.from({ length: 6 }, () => api.register()));
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => api.get(`/keys/${u.id}`, claimers[i % 6]!.token)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const ids = results.map((r) => r.body.oneTimePreKey?.keyId).filter((x) => x !== undefined);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeLessThanOrEqual(20);
    expect(ids.length).toBeGreaterThanOrEqual(dialect === 'sqlite' ? 20 : 14);
    expect((await api.get('/keys/count', u.token)).body.oneTimePreKeys).toBe(20 - ids.length);
  });

  it('refills add keys; a repeated keyId keeps its first key; at most 500 stored', async () => {
    const u = await api.register();
    const first = keyUpload(undefined, 100, 1);
    expect((await api.put('/keys', first.body, u.token)).body.oneTimePreKeys).toBe(100);
    const again = keyUpload(first.identity, 100, 51);
    expect((await api.put('/keys', again.body, u.token)).body.oneTimePreKeys).toBe(150);
    for (let start = 151; start < 500; start += 100) {
      await api.put('/keys', keyUpload(first.identity, Math.min(100, 501 - start), start).body, u.token);
    }
    expect((await api.get('/keys/count', u.token)).body.oneTimePreKeys).toBe(500);
    const over = await api.put('/keys', keyUpload(first.identity, 1, 9999).body, u.token);
    expect(over.status).toBe(400);
    expect(JSON.stringify(over.body.error.details)).toContain('too_many_prekeys');
    expect((await api.get('/keys/count', u.token)).body.oneTimePreKeys).toBe(500);
  });

  it('prekeys.low reaches the owner when claims leave fewer than 10', async () => {
    const u = await api.register();
    const { body } = keyUpload(undefined, 11, 1);
    await api.put('/keys', body, u.token);
    const ws = await connect(s.wsUrl, u.token);
    await api.get(`/keys/${u.id}`, bob.token); // 10 left
    await api.get(`/keys/${u.id}`, bob.token); // 9 left
    const low = await ws.next((f) => f.type === 'prekeys.low');
    expect(low.data).toEqual({ remaining: 9 });
    // Once per refill cycle, not once per claim.
    await api.get(`/keys/${u.id}`, bob.token);
    await api.get(`/keys/${u.id}`, bob.token);
    await api.put('/keys', { ...body, oneTimePreKeys: [] }, u.token);
    await api.get(`/keys/${u.id}`, bob.token); // 6 left, re-armed by the upload
    const again = await ws.next((f) => f.type === 'prekeys.low' && f.data.remaining === 6);
    expect(again).toBeDefined();
    expect(ws.ofType('prekeys.low').map((f) => f.data.remaining)).toEqual([9, 6]);
    expect((await api.get(`/keys/${u.id}`, u.token)).status).toBe(400);
    ws.close();
  });

  it('key.changed reaches everyone who shares a chat, live and on resume; old pre-keys are dropped', async () => {
    const [x, y, z, w] = await Promise.all([api.register(), api.register(), api.register(), api.register()]);
    const first = keyUpload(undefined, 5);
    await api.put('/keys', first.body, x.token);
    const chat = await api.chat(x, y);
    await api.chat(x, z);
    await api.send(y, { chatId: chat.id, type: 'key_exchange' });
    expect((await api.get(`/chats/${chat.id}`, y.token)).body.encryptionStatus).toBe('established');
    const yWs = await connect(s.wsUrl, y.token);
    const wWs = await connect(s.wsUrl, w.token);
    const zFirst = await connect(s.wsUrl, z.token);
    const zCursor = zFirst.frames[0]!.data.cursor as string;
    zFirst.close();

    // Same identity again: no event.
    await api.put('/keys', keyUpload(first.identity, 1, 50).body, x.token);
    const second = keyUpload(undefined, 2, 1);
    await api.put('/keys', second.body, x.token);
    const changed = await yWs.next((f) => f.type === 'key.changed');
    expect(changed.data).toEqual({ userId: x.id });
    expect(yWs.ofType('key.changed')).toHaveLength(1);
    const zAgain = await connect(s.wsUrl, z.token, zCursor);
    expect((await zAgain.next((f) => f.type === 'key.changed')).data).toEqual({ userId: x.id });
    expect(wWs.ofType('key.changed')).toHaveLength(0);
    expect((await api.get(`/users/${x.id}`, y.token)).body.publicKey).toBe(second.body.identityKey);
    expect((await api.get('/keys/count', x.token)).body.oneTimePreKeys).toBe(2);
    expect((await api.get(`/chats/${chat.id}`, y.token)).body.encryptionStatus).toBe('pending');
    for (const sock of [yWs, wWs, zAgain]) sock.close();
  });

  it('an upload that finds the identity key changed since it was checked answers 409 and changes nothing', async () => {
    const u = await api.register();
    const first = keyUpload(undefined, 3);
    await api.put('/keys', first.body, u.token);
    const other = keyUpload(undefined, 2);
    // Another upload (a new identity) commits after this one read the key and before it writes:
    // this one was not charged for an identity change, so it must not make one.
    const db = s.ctx.db;
    const transaction = db.transaction.bind(db);
    db.transaction = (async (fn: Parameters<typeof transaction>[0]) => {
      db.transaction = transaction;
      expect((await api.put('/keys', other.body, u.token)).status).toBe(200);
      return transaction(fn);
    }) as typeof db.transaction;
    const res = await api.put('/keys', keyUpload(first.identity, 4, 100).body, u.token);
    expect(res.status).toBe(409);
    expect(isErrorShape(res.body, 'conflict')).toBe(true);
    expect((await api.get(`/users/${u.id}`, alice.token)).body.publicKey).toBe(other.body.identityKey);
    expect((await api.get('/keys/count', u.token)).body.oneTimePreKeys).toBe(2);
    // Uploading again, now knowing the current key, works.
    expect((await api.put('/keys', keyUpload(other.identity, 1, 200).body, u.token)).status).toBe(200);
  });

  it('bundle claims are rate limited per requester (429 with Retry-After)', async () => {
    const u = await api.register();
    await api.put('/keys', keyUpload(undefined, 1).body, u.token);
    const claimer = await api.register();
    let limited: Awaited<ReturnType<Api['get']>> | null = null;
    for (let i = 0; i < 105 && !limited; i++) {
      const res = await api.get(`/keys/${u.id}`, claimer.token);
      if (res.status === 429) limited = res;
    }
    if (!limited) throw new Error('never rate limited');
    expect(isErrorShape(limited.body, 'rate_limited')).toBe(true);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Another requester is not affected.
    expect((await api.get(`/keys/${u.id}`, bob.token)).status).toBe(200);
  });
});
