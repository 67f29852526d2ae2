/**
 * The project's own fixed-key vectors (vectors/safechat-v1.json):
 *  1. the SDK recomputes the file exactly (so it cannot drift from the code), and
 *  2. every value in it is re-derived here with Node's crypto and hand-written re-encodings of
 *     the documented byte layouts — a second, independent implementation, as an Android client
 *     would write it from vectors/README.md.
 */
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildSafeChatV1Vectors } from './vectors/safechat-v1.js';

const V = JSON.parse(readFileSync(new URL('./vectors/safechat-v1.json', import.meta.url), 'utf8'));
const B = (hex: string) => Buffer.from(hex, 'hex');
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const lp = (b: Buffer) => Buffer.concat([u32(b.length), b]);
const hkdf = (ikm: Buffer, salt: Buffer, info: string, len: number) => Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from(info), len));
const hmac = (key: Buffer, data: Buffer) => crypto.createHmac('sha256', key).update(data).digest();

function nodeX25519Private(secretHex: string) {
  const der = Buffer.concat([B('302e020100300506032b656e04220420'), B(secretHex)]);
  return crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}
const nodeX25519Public = (hex: string) =>
  crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: B(hex).toString('base64url') }, format: 'jwk' });
const dh = (secretHex: string, publicHex: string) =>
  crypto.diffieHellman({ privateKey: nodeX25519Private(secretHex), publicKey: nodeX25519Public(publicHex) }).toString('hex');
const x25519Pub = (secretHex: string) => Buffer.from(nodeX25519Private(secretHex).export({ format: 'jwk' }).x!, 'base64url').toString('hex');

describe('SafeChat v1 vectors', () => {
  it('the SDK recomputes safechat-v1.json exactly', () => {
    expect(buildSafeChatV1Vectors()).toEqual(V);
  });

  it('keys: labels, Ed25519 publics, X25519 conversions, SPK signature (Node)', () => {
    const k = V.keys;
    for (const [name, label] of Object.entries(k.labels as Record<string, string>)) {
      const rec = k[name];
      const seed = rec.ed25519Seed ?? rec.secretKey;
      expect(crypto.createHash('sha256').update(label).digest('hex')).toBe(seed);
    }
    for (const id of [k.aliceIdentity, k.bobIdentity]) {
      const priv = crypto.createPrivateKey({ key: Buffer.concat([B('302e020100300506032b657004220420'), B(id.ed25519Seed)]), format: 'der', type: 'pkcs8' });
      expect(Buffer.from(priv.export({ format: 'jwk' }).x!, 'base64url').toString('hex')).toBe(id.ed25519Public);
      // X25519 secret = clamp(SHA-512(seed)[0..32]); X25519 public = the Montgomery form of the Ed25519 public key
      const h = crypto.createHash('sha512').update(B(id.ed25519Seed)).digest().subarray(0, 32);
      h[0]! &= 248;
      h[31]! &= 127;
      h[31]! |= 64;
      expect(h.toString('hex')).toBe(id.x25519Secret);
      expect(x25519Pub(id.x25519Secret)).toBe(id.x25519Public);
    }
    for (const name of ['bobSignedPreKey', 'bobOneTimePreKey', 'aliceEphemeral', 'aliceRatchet1', 'bobRatchet1', 'aliceRatchet2']) {
      expect(x25519Pub(k[name].secretKey)).toBe(k[name].publicKey);
    }
    const bobPub = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: B(k.bobIdentity.ed25519Public).toString('base64url') }, format: 'jwk' });
    expect(crypto.verify(null, B(k.bobSignedPreKey.publicKey), bobPub, B(k.bobSignedPreKey.signature))).toBe(true);
  });

  it('X3DH (Node)', () => {
    const k = V.keys;
    const x = V.x3dh;
    expect(dh(k.aliceIdentity.x25519Secret, k.bobSignedPreKey.publicKey)).toBe(x.dh1);
    expect(dh(k.aliceEphemeral.secretKey, k.bobIdentity.x25519Public)).toBe(x.dh2);
    expect(dh(k.aliceEphemeral.secretKey, k.bobSignedPreKey.publicKey)).toBe(x.dh3);
    expect(dh(k.aliceEphemeral.secretKey, k.bobOneTimePreKey.publicKey)).toBe(x.dh4);
    // and from Bob's side
    expect(dh(k.bobSignedPreKey.secretKey, k.aliceIdentity.x25519Public)).toBe(x.dh1);
    expect(dh(k.bobIdentity.x25519Secret, k.aliceEphemeral.publicKey)).toBe(x.dh2);
    const ikm = Buffer.concat([Buffer.alloc(32, 0xff), B(x.dh1), B(x.dh2), B(x.dh3), B(x.dh4)]);
    expect(ikm.toString('hex')).toBe(x.ikm);
    expect(hkdf(ikm, Buffer.alloc(32), 'SafeChat X3DH v1', 32).toString('hex')).toBe(x.sk);
    const ikm3 = Buffer.concat([Buffer.alloc(32, 0xff), B(x.dh1), B(x.dh2), B(x.dh3)]);
    expect(hkdf(ikm3, Buffer.alloc(32), 'SafeChat X3DH v1', 32).toString('hex')).toBe(x.withoutOneTimePreKey.sk);
    expect(x.ad).toBe(k.aliceIdentity.ed25519Public + k.bobIdentity.ed25519Public);
  });

  it('Double Ratchet root and chain keys (Node)', () => {
    const k = V.keys;
    const r = V.ratchet;
    const kdfRk = (rk: string, dhOut: string) => {
      const out = hkdf(B(dhOut), B(rk), 'SafeChat Ratchet v1', 64);
      return [out.subarray(0, 32).toString('hex'), out.subarray(32).toString('hex')];
    };
    expect(dh(k.aliceRatchet1.secretKey, k.bobSignedPreKey.publicKey)).toBe(r.aliceInit.dh);
    expect(kdfRk(V.x3dh.sk, r.aliceInit.dh)).toEqual([r.aliceInit.rootKey, r.aliceInit.sendingChainKey]);

    expect(dh(k.bobSignedPreKey.secretKey, k.aliceRatchet1.publicKey)).toBe(r.bobFirstTurn.receiveDh);
    expect(kdfRk(V.x3dh.sk, r.bobFirstTurn.receiveDh)).toEqual([r.bobFirstTurn.rootKeyAfterReceive, r.bobFirstTurn.receivingChainKey]);
    expect(dh(k.bobRatchet1.secretKey, k.aliceRatchet1.publicKey)).toBe(r.bobFirstTurn.sendDh);
    expect(kdfRk(r.bobFirstTurn.rootKeyAfterReceive, r.bobFirstTurn.sendDh)).toEqual([r.bobFirstTurn.rootKey, r.bobFirstTurn.sendingChainKey]);

    expect(dh(k.aliceRatchet1.secretKey, k.bobRatchet1.publicKey)).toBe(r.aliceSecondTurn.receiveDh);
    expect(kdfRk(r.aliceInit.rootKey, r.aliceSecondTurn.receiveDh)).toEqual([r.aliceSecondTurn.rootKeyAfterReceive, r.aliceSecondTurn.receivingChainKey]);
    expect(r.aliceSecondTurn.receivingChainKey).toBe(r.bobFirstTurn.sendingChainKey);
    expect(dh(k.aliceRatchet2.secretKey, k.bobRatchet1.publicKey)).toBe(r.aliceSecondTurn.sendDh);
    expect(kdfRk(r.aliceSecondTurn.rootKeyAfterReceive, r.aliceSecondTurn.sendDh)).toEqual([r.aliceSecondTurn.rootKey, r.aliceSecondTurn.sendingChainKey]);

    for (const m of V.messages) {
      expect(hmac(B(m.chainKey), B('01')).toString('hex')).toBe(m.messageKey);
      expect(hmac(B(m.chainKey), B('02')).toString('hex')).toBe(m.nextChainKey);
    }
    const [m0, m1, m2, m3] = V.messages;
    expect(m0.chainKey).toBe(r.aliceInit.sendingChainKey);
    expect(m1.chainKey).toBe(m0.nextChainKey);
    expect(m2.chainKey).toBe(r.bobFirstTurn.sendingChainKey);
    expect(m3.chainKey).toBe(r.aliceSecondTurn.sendingChainKey);
    expect([m0.ratchetHeader.dh, m1.ratchetHeader.dh, m2.ratchetHeader.dh, m3.ratchetHeader.dh]).toEqual([
      k.aliceRatchet1.publicKey,
      k.aliceRatchet1.publicKey,
      k.bobRatchet1.publicKey,
      k.aliceRatchet2.publicKey,
    ]);
    expect([m3.ratchetHeader.pn, m3.ratchetHeader.n]).toEqual([2, 0]);
  });

  const cases: { name: string; i: number }[] = V.messages.map((m: { name: string }, i: number) => ({ name: m.name, i }));
  it.each(cases)('message $name: keys, payload, AES-CBC, MAC input, MAC, envelope (Node)', ({ i }) => {
    const m = V.messages[i];
    const okm = hkdf(B(m.messageKey), Buffer.alloc(32), 'SafeChat Message Keys v1', 80);
    expect(okm.subarray(0, 32).toString('hex')).toBe(m.encKey);
    expect(okm.subarray(32, 64).toString('hex')).toBe(m.macKey);
    expect(okm.subarray(64).toString('hex')).toBe(m.iv);

    const isText = m.plaintext.body !== undefined;
    const body = isText ? Buffer.from(m.plaintext.body, 'utf8') : B(m.plaintext.bodyHex);
    const payload = Buffer.concat([Buffer.from([m.plaintext.type.length]), Buffer.from(m.plaintext.type), Buffer.from([isText ? 1 : 0]), body]);
    expect(payload.toString('hex')).toBe(m.payload);
    const c = crypto.createCipheriv('aes-256-cbc', B(m.encKey), B(m.iv));
    expect(Buffer.concat([c.update(payload), c.final()]).toString('hex')).toBe(m.ciphertext);

    const rh = Buffer.concat([B(m.ratchetHeader.dh), u32(m.ratchetHeader.pn), u32(m.ratchetHeader.n)]);
    expect(rh.toString('hex')).toBe(m.ratchetHeader.encoded);
    const p = m.preKeyHeader;
    const ph = p
      ? Buffer.concat([B(p.identityKey), B(p.baseKey), u32(p.signedPreKeyId), Buffer.from([p.oneTimePreKeyId === null ? 0 : 1]), u32(p.oneTimePreKeyId ?? 0)])
      : Buffer.alloc(0);
    if (p) expect(ph.toString('hex')).toBe(p.encoded);

    const input = Buffer.concat([
      Buffer.from([1]),
      lp(B(V.x3dh.ad)),
      lp(Buffer.from(m.routing.senderId)),
      lp(Buffer.from(m.routing.receiverId)),
      lp(Buffer.from(m.routing.chatId)),
      u32(m.routing.counter),
      lp(rh),
      lp(ph),
      lp(B(m.iv)),
      lp(B(m.ciphertext)),
    ]);
    expect(input.toString('hex')).toBe(m.macInput);
    expect(hmac(B(m.macKey), input).toString('hex')).toBe(m.mac);

    const envelope = Buffer.concat([Buffer.from([1, p ? 2 : 1]), u32(m.routing.counter), rh, ph, B(m.ciphertext)]);
    expect(envelope.toString('hex')).toBe(m.envelope);
    expect(m.wire).toEqual({
      encryptedContent: envelope.toString('base64'),
      iv: B(m.iv).toString('base64'),
      mac: B(m.mac).toString('base64'),
      type: p ? 'key_exchange' : 'text',
    });
  });

  it('safety number (Node SHA-512)', () => {
    const digits = (userId: string, keyHex: string) => {
      const key = B(keyHex);
      let h = crypto.createHash('sha512').update(Buffer.concat([Buffer.from([0, 0]), key, Buffer.from(userId)])).digest();
      for (let i = 0; i < 5200; i++) h = crypto.createHash('sha512').update(Buffer.concat([h, key])).digest();
      let s = '';
      for (let o = 0; o < 30; o += 5) s += String(Number(h.readUIntBE(o, 5) % 100000)).padStart(5, '0');
      return s;
    };
    const a = digits(V.keys.aliceIdentity.userId, V.keys.aliceIdentity.ed25519Public);
    const b = digits(V.keys.bobIdentity.userId, V.keys.bobIdentity.ed25519Public);
    expect([a, b]).toEqual([V.safetyNumber.aliceDigits, V.safetyNumber.bobDigits]);
    expect(V.safetyNumber.display).toBe((a < b ? a + b : b + a).match(/.{5}/g)!.join(' '));
  });
});
