/**
 * Each primitive against its published test vectors (JSON fixtures in ./vectors), and each
 * vector cross-checked against Node's own OpenSSL-backed `node:crypto`, so that a mistyped
 * vector fails here instead of being enshrined.
 */
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  aes256CbcDecrypt,
  aes256CbcEncrypt,
  constantTimeEqual,
  ed25519IsValidPublicKey,
  ed25519KeyPair,
  ed25519PublicKey,
  ed25519PublicToX25519,
  ed25519SecretToX25519,
  ed25519Sign,
  ed25519Verify,
  hkdfSha256,
  hkdfSha256Extract,
  hmacSha256,
  randomBytes,
  x25519,
  x25519PublicKey,
} from '../src/crypto/primitives.js';
import { fromHex, toHex } from '../src/crypto/bytes.js';

const load = (name: string) => JSON.parse(readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8'));
const X = load('rfc7748-x25519.json');
const ED = load('rfc8032-ed25519.json');
const HKDF = load('rfc5869-hkdf-sha256.json');
const HMAC = load('rfc4231-hmac-sha256.json');
const AES = load('sp800-38a-aes256-cbc.json');

const b64url = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');
const hexOf = (b: Uint8Array | ArrayBuffer) => Buffer.from(b as Uint8Array).toString('hex');

/** Node's X25519 private KeyObject from a raw scalar, via PKCS#8 (RFC 8410) then JWK with Node's own x. */
function nodeX25519Private(scalarHex: string): crypto.KeyObject {
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(scalarHex, 'hex')]);
  const viaDer = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const x = viaDer.export({ format: 'jwk' }).x!;
  return crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(scalarHex), x }, format: 'jwk' });
}
const nodeX25519Public = (uHex: string) => crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(uHex) }, format: 'jwk' });
const nodeX25519 = (scalarHex: string, uHex: string) =>
  hexOf(crypto.diffieHellman({ privateKey: nodeX25519Private(scalarHex), publicKey: nodeX25519Public(uHex) }));

describe('X25519 (RFC 7748)', () => {
  it.each(X.scalarMult as { name: string; scalar: string; u: string; output: string }[])('$name', (v) => {
    expect(nodeX25519(v.scalar, v.u)).toBe(v.output); // the vector itself is right
    expect(toHex(x25519(fromHex(v.scalar), fromHex(v.u)))).toBe(v.output);
  });

  it('5.2 iterated, 1 and 1000 iterations (and Node agrees)', () => {
    let k = fromHex(X.iterated.start);
    let u = fromHex(X.iterated.start);
    let nk = X.iterated.start as string;
    let nu = X.iterated.start as string;
    for (let i = 1; i <= 1000; i++) {
      const out = x25519(k, u);
      u = k;
      k = out;
      const nOut = nodeX25519(nk, nu);
      nu = nk;
      nk = nOut;
      if (i === 1) expect(toHex(k)).toBe(X.iterated.after1);
    }
    expect(toHex(k)).toBe(X.iterated.after1000);
    expect(nk).toBe(X.iterated.after1000);
  });

  it('6.1 Diffie-Hellman: public keys and shared secret', () => {
    const v = X.dh;
    for (const [priv, pub] of [
      [v.alicePrivate, v.alicePublic],
      [v.bobPrivate, v.bobPublic],
    ] as [string, string][]) {
      expect(toHex(x25519PublicKey(fromHex(priv)))).toBe(pub);
      expect(nodeX25519Private(priv).export({ format: 'jwk' }).x).toBe(b64url(pub));
    }
    expect(toHex(x25519(fromHex(v.alicePrivate), fromHex(v.bobPublic)))).toBe(v.shared);
    expect(toHex(x25519(fromHex(v.bobPrivate), fromHex(v.alicePublic)))).toBe(v.shared);
    expect(nodeX25519(v.alicePrivate, v.bobPublic)).toBe(v.shared);
  });

  it('rejects low-order public keys (all-zero output)', () => {
    const sk = randomBytes(32);
    expect(() => x25519(sk, new Uint8Array(32))).toThrow();
    const one = new Uint8Array(32);
    one[0] = 1;
    expect(() => x25519(sk, one)).toThrow();
    // order-8 point from https://cr.yp.to/ecdh.html#validate
    expect(() => x25519(sk, fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'))).toThrow();
  });
});

describe('Ed25519 (RFC 8032 §7.1)', () => {
  it.each(ED.tests as { name: string; secretKey: string; publicKey: string; message: string; signature: string }[])('$name', (v) => {
    const priv = crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(v.secretKey), x: b64url(v.publicKey) }, format: 'jwk' });
    const pub = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(v.publicKey) }, format: 'jwk' });
    const msg = Buffer.from(v.message, 'hex');
    expect(hexOf(crypto.sign(null, msg, priv))).toBe(v.signature);
    expect(crypto.verify(null, msg, pub, Buffer.from(v.signature, 'hex'))).toBe(true);

    expect(toHex(ed25519PublicKey(fromHex(v.secretKey)))).toBe(v.publicKey);
    expect(toHex(ed25519Sign(fromHex(v.message), fromHex(v.secretKey)))).toBe(v.signature);
    expect(ed25519Verify(fromHex(v.signature), fromHex(v.message), fromHex(v.publicKey))).toBe(true);
    const bad = fromHex(v.signature);
    bad[5]! ^= 1;
    expect(ed25519Verify(bad, fromHex(v.message), fromHex(v.publicKey))).toBe(false);
  });

  it('verify returns false (does not throw) for malformed input; non-canonical S is rejected', () => {
    const kp = ed25519KeyPair();
    const msg = new Uint8Array([1, 2, 3]);
    const sig = ed25519Sign(msg, kp.secretKey);
    expect(ed25519Verify(sig.slice(0, 63), msg, kp.publicKey)).toBe(false);
    expect(ed25519Verify(sig, msg, new Uint8Array(31))).toBe(false);
    expect(ed25519Verify(sig, msg, new Uint8Array(32).fill(0xff))).toBe(false);
    // S + L (the group order) is the same scalar, but not canonical: strict RFC 8032 rejects it
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]!);
    const sl = s + L;
    const mall = Uint8Array.from(sig);
    for (let i = 0; i < 32; i++) mall[32 + i] = Number((sl >> BigInt(8 * i)) & 0xffn);
    expect(ed25519Verify(mall, msg, kp.publicKey)).toBe(false);
  });

  it('identity-key validity: small-order points are refused', () => {
    expect(ed25519IsValidPublicKey(ed25519KeyPair().publicKey)).toBe(true);
    const identityPoint = new Uint8Array(32);
    identityPoint[0] = 1;
    expect(ed25519IsValidPublicKey(identityPoint)).toBe(false);
    expect(ed25519IsValidPublicKey(new Uint8Array(32))).toBe(false);
    expect(ed25519IsValidPublicKey(new Uint8Array(31))).toBe(false);
  });

  it('Ed25519 → X25519 conversion: secret and public halves agree, and match Node', () => {
    for (let i = 0; i < 5; i++) {
      const id = ed25519KeyPair();
      const xs = ed25519SecretToX25519(id.secretKey);
      const xp = ed25519PublicToX25519(id.publicKey);
      expect(toHex(x25519PublicKey(xs))).toBe(toHex(xp));
      // an X25519 DH using the converted keys agrees with Node's X25519
      const peer = crypto.generateKeyPairSync('x25519');
      const peerPub = Buffer.from(peer.publicKey.export({ format: 'jwk' }).x!, 'base64url');
      const ours = x25519(xs, peerPub);
      const theirs = crypto.diffieHellman({ privateKey: peer.privateKey, publicKey: nodeX25519Public(toHex(xp)) });
      expect(toHex(ours)).toBe(hexOf(theirs));
    }
  });
});

describe('HKDF-SHA256 (RFC 5869 A.1–A.3)', () => {
  it.each(HKDF.tests as { name: string; ikm: string; salt: string; info: string; length: number; prk: string; okm: string }[])('$name', (v) => {
    expect(hexOf(crypto.hkdfSync('sha256', fromHex(v.ikm), fromHex(v.salt), fromHex(v.info), v.length))).toBe(v.okm);
    expect(crypto.createHmac('sha256', fromHex(v.salt)).update(fromHex(v.ikm)).digest('hex')).toBe(v.prk);
    expect(toHex(hkdfSha256Extract(fromHex(v.ikm), fromHex(v.salt)))).toBe(v.prk);
    expect(toHex(hkdfSha256(fromHex(v.ikm), fromHex(v.salt), fromHex(v.info), v.length))).toBe(v.okm);
  });
});

describe('HMAC-SHA256 (RFC 4231 cases 1–7)', () => {
  it.each(HMAC.tests as { name: string; key: string; data: string; mac: string; truncateTo?: number }[])('$name', (v) => {
    const n = v.truncateTo ?? 32;
    expect(crypto.createHmac('sha256', fromHex(v.key)).update(fromHex(v.data)).digest('hex').slice(0, 2 * n)).toBe(v.mac);
    expect(toHex(hmacSha256(fromHex(v.key), fromHex(v.data)).slice(0, n))).toBe(v.mac);
  });
});

describe('AES-256-CBC (NIST SP 800-38A F.2.5/F.2.6)', () => {
  it.each(AES.tests as { name: string; direction: string; key: string; iv: string; plaintext: string; ciphertext: string }[])('$name', (v) => {
    const key = fromHex(v.key);
    const iv = fromHex(v.iv);
    if (v.direction === 'encrypt') {
      const c = crypto.createCipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
      expect(hexOf(Buffer.concat([c.update(fromHex(v.plaintext)), c.final()]))).toBe(v.ciphertext);
      expect(toHex(aes256CbcEncrypt(key, iv, fromHex(v.plaintext), false))).toBe(v.ciphertext);
    } else {
      const d = crypto.createDecipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
      expect(hexOf(Buffer.concat([d.update(fromHex(v.ciphertext)), d.final()]))).toBe(v.plaintext);
      expect(toHex(aes256CbcDecrypt(key, iv, fromHex(v.ciphertext), false))).toBe(v.plaintext);
    }
  });

  it('PKCS#7 padding matches Node for every length 0..48', () => {
    const key = randomBytes(32);
    const iv = randomBytes(16);
    for (let len = 0; len <= 48; len++) {
      const pt = randomBytes(len);
      const c = crypto.createCipheriv('aes-256-cbc', key, iv);
      const nodeCt = Buffer.concat([c.update(pt), c.final()]);
      const ct = aes256CbcEncrypt(key, iv, pt);
      expect(toHex(ct)).toBe(hexOf(nodeCt));
      expect(ct.length).toBe((Math.floor(len / 16) + 1) * 16);
      expect(toHex(aes256CbcDecrypt(key, iv, ct))).toBe(toHex(pt));
    }
  });

  it('bad padding throws', () => {
    // Fixed inputs: a flipped byte leaves valid padding by chance (~1 in 256 with random keys).
    const key = new Uint8Array(32).fill(0x11);
    const iv = new Uint8Array(16).fill(0x22);
    const ct = aes256CbcEncrypt(key, iv, new Uint8Array(5));
    ct[15]! ^= 0x55;
    expect(() => aes256CbcDecrypt(key, iv, ct)).toThrow();
  });
});

describe('constant-time compare', () => {
  it('equal / unequal / different lengths', () => {
    expect(constantTimeEqual(fromHex('0102'), fromHex('0102'))).toBe(true);
    expect(constantTimeEqual(fromHex('0102'), fromHex('0103'))).toBe(false);
    expect(constantTimeEqual(fromHex('0102'), fromHex('010203'))).toBe(false);
  });
});
