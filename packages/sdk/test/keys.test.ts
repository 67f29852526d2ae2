/** Key generation, the upload bundle, and the in-memory stores. */
import crypto from 'node:crypto';
import { SendMessageBody, PublicKey32 } from '@safechat/protocol';
import type { Message } from '@safechat/protocol';
import { describe, expect, it } from 'vitest';
import {
  buildUploadBundle,
  encryptMessage,
  fromBase64,
  generateIdentity,
  generatePreKeys,
  rotateSignedPreKey,
  type IncomingMessage,
} from '../src/index.js';
import { MemoryKeyStore, MemorySessionStore } from '../src/store/index.js';
import { connect, makeUser } from './helpers.js';

async function storeWithIdentity() {
  const keys = new MemoryKeyStore();
  await keys.saveIdentityKeyPair(generateIdentity());
  return keys;
}

describe('pre-keys and the upload bundle', () => {
  it('PUT /keys body: public parts only, valid encodings, a signature the server (Node) accepts', async () => {
    const keys = await storeWithIdentity();
    const { signedPreKey, oneTimePreKeys } = await generatePreKeys(keys, 10);
    const bundle = await buildUploadBundle(keys);
    expect(Object.keys(bundle).sort()).toEqual(['identityKey', 'oneTimePreKeys', 'signedPreKey']);
    expect(Object.keys(bundle.signedPreKey).sort()).toEqual(['keyId', 'publicKey', 'signature']);
    expect(bundle.oneTimePreKeys).toHaveLength(10);
    for (const k of [bundle.identityKey, bundle.signedPreKey.publicKey, ...bundle.oneTimePreKeys.map((o) => o.publicKey)]) {
      expect(PublicKey32.safeParse(k).success).toBe(true);
    }
    expect(fromBase64(bundle.signedPreKey.signature)).toHaveLength(64);
    expect(bundle.signedPreKey.keyId).toBe(signedPreKey.keyId);
    expect(new Set(oneTimePreKeys.map((k) => k.keyId)).size).toBe(10);
    for (const o of bundle.oneTimePreKeys) expect(Number.isInteger(o.keyId) && o.keyId > 0 && o.keyId < 2 ** 31).toBe(true);
    // what the server checks: Ed25519(identityKey) over the 32 raw bytes of the signed pre-key
    const pub = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(bundle.identityKey, 'base64').toString('base64url') }, format: 'jwk' });
    expect(crypto.verify(null, Buffer.from(bundle.signedPreKey.publicKey, 'base64'), pub, Buffer.from(bundle.signedPreKey.signature, 'base64'))).toBe(true);
    // no secret anywhere in it
    const secrets = [(await keys.getIdentityKeyPair())!.secretKey, ...(await keys.listOneTimePreKeys()).map((k) => k.secretKey)];
    const text = JSON.stringify(bundle);
    for (const s of secrets) expect(text).not.toContain(Buffer.from(s).toString('base64'));
  });

  it('refill: only the new one-time pre-keys are uploaded if passed; the signed pre-key stays until rotated', async () => {
    const keys = await storeWithIdentity();
    const first = await generatePreKeys(keys, 5);
    const refill = await generatePreKeys(keys, 3);
    expect(refill.signedPreKey.keyId).toBe(first.signedPreKey.keyId);
    const bundle = await buildUploadBundle(keys, refill.oneTimePreKeys);
    expect(bundle.oneTimePreKeys.map((k) => k.keyId)).toEqual(refill.oneTimePreKeys.map((k) => k.keyId));
    expect((await keys.listOneTimePreKeys()).length).toBe(8);
  });

  it('rotation: the newest signed pre-key is uploaded, older ones are kept up to `retain`', async () => {
    const keys = await storeWithIdentity();
    const { signedPreKey: s1 } = await generatePreKeys(keys, 0);
    const s2 = await rotateSignedPreKey(keys, { retain: 2 });
    expect((await buildUploadBundle(keys)).signedPreKey.keyId).toBe(s2.keyId);
    expect((await keys.listSignedPreKeys()).map((k) => k.keyId).sort()).toEqual([s1.keyId, s2.keyId].sort());
    const s3 = await rotateSignedPreKey(keys, { retain: 2 });
    expect((await keys.listSignedPreKeys()).map((k) => k.keyId).sort()).toEqual([s2.keyId, s3.keyId].sort());
    expect(await keys.getSignedPreKey(s1.keyId)).toBeUndefined();
  });

  it('a pre-key message under the previous signed pre-key still opens after a rotation', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    await rotateSignedPreKey(bob.keys);
    const m = await encryptMessage(alice.stores, { senderId: alice.id, receiverId: bob.id, chatId: 'c' }, { type: 'text', body: 'x' });
    const { decryptMessage } = await import('../src/index.js');
    expect((await decryptMessage(bob.stores, { ...m, senderId: alice.id, receiverId: bob.id, chatId: 'c' })).body).toBe('x');
  });

  it('the memory stores hand out copies', async () => {
    const keys = await storeWithIdentity();
    const id = (await keys.getIdentityKeyPair())!;
    id.secretKey.fill(0);
    expect((await keys.getIdentityKeyPair())!.secretKey.some((b) => b !== 0)).toBe(true);
    const sessions = new MemorySessionStore();
    expect(await sessions.loadSession('x')).toBeUndefined();
  });
});

describe('wire compatibility with @safechat/protocol', () => {
  it('an encrypted message plus a chat id is a valid SendMessageBody; a server Message is an IncomingMessage', async () => {
    const alice = await makeUser();
    const bob = await makeUser();
    await connect(alice, bob);
    const chatId = '01890a5d-ac96-774b-bcce-b30209000001';
    for (let i = 0; i < 2; i++) {
      const enc = await encryptMessage(alice.stores, { senderId: alice.id, receiverId: bob.id, chatId }, { type: 'image', body: new Uint8Array(1000) });
      const parsed = SendMessageBody.safeParse({ ...enc, chatId, clientMessageId: `m-${i}` });
      expect(parsed.success).toBe(true);
    }
    const serverMessage = {} as Message;
    const asIncoming: IncomingMessage = serverMessage; // compile-time check
    expect(asIncoming).toBeDefined();
  });
});
