/**
 * Builds the SafeChat v1 fixed-key test vectors (safechat-v1.json) from fixed labels. Every
 * secret is SHA-256(utf8(label)), so the file can be regenerated and checked bit for bit:
 *
 *   npx tsx packages/sdk/test/vectors/write-safechat-v1.ts      (writes the JSON)
 *   npx vitest run packages/sdk/test/vectors.test.ts            (recomputes and compares)
 *
 * Besides running the SDK's own code with injected keys, it recomputes each intermediate value
 * straight from the specification (DH, HKDF, HMAC calls in the order the README lists) and
 * throws if the two disagree.
 */
import { concat, toBase64, toHex, utf8 } from '../../src/crypto/bytes.js';
import {
  CK_CHAIN_KEY_SEED,
  CK_MESSAGE_KEY_SEED,
  MESSAGE_KEYS_INFO,
  RATCHET_INFO,
  X3DH_F,
  X3DH_INFO,
  ZERO_SALT,
} from '../../src/crypto/constants.js';
import {
  decodeEnvelope,
  deriveMessageKeys,
  encodePayload,
  encodePreKeyHeader,
  encodeRatchetHeader,
  macInput,
  type Plaintext,
} from '../../src/crypto/envelope.js';
import { fingerprintDigits, safetyNumber } from '../../src/crypto/fingerprint.js';
import {
  aes256CbcEncrypt,
  ed25519KeyPair,
  ed25519PublicToX25519,
  ed25519SecretToX25519,
  ed25519Sign,
  hkdfSha256,
  hmacSha256,
  sha256,
  x25519,
  x25519KeyPair,
  type KeyPair,
} from '../../src/crypto/primitives.js';
import { initInitiator, initResponder } from '../../src/crypto/ratchet.js';
import { associatedData, decryptWithState, encryptWithState, type SessionState } from '../../src/crypto/session.js';
import { x3dhInitiate, x3dhRespond } from '../../src/crypto/x3dh.js';

const secret = (label: string) => sha256(utf8(label));
const hex = toHex;

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`vector self-check failed: ${what}`);
}
const same = (a: Uint8Array, b: Uint8Array) => hex(a) === hex(b);

const LABELS = {
  aliceIdentity: 'SafeChat v1 test vector: alice identity',
  bobIdentity: 'SafeChat v1 test vector: bob identity',
  bobSignedPreKey: 'SafeChat v1 test vector: bob signed pre-key',
  bobOneTimePreKey: 'SafeChat v1 test vector: bob one-time pre-key',
  aliceEphemeral: 'SafeChat v1 test vector: alice ephemeral (EK_A)',
  aliceRatchet1: 'SafeChat v1 test vector: alice ratchet key 1',
  bobRatchet1: 'SafeChat v1 test vector: bob ratchet key 1',
  aliceRatchet2: 'SafeChat v1 test vector: alice ratchet key 2',
} as const;

const ALICE_ID = '01890a5d-ac96-774b-bcce-b302099a8057';
const BOB_ID = '01890a5d-ac96-774b-bcce-b302099a8058';
const CHAT_ID = '01890a5d-ac96-774b-bcce-b30209000001';
const SPK_ID = 1;
const OPK_ID = 42;

const kp = (k: KeyPair) => ({ secretKey: hex(k.secretKey), publicKey: hex(k.publicKey) });

export function buildSafeChatV1Vectors() {
  const aliceId = ed25519KeyPair(secret(LABELS.aliceIdentity));
  const bobId = ed25519KeyPair(secret(LABELS.bobIdentity));
  const spk = x25519KeyPair(secret(LABELS.bobSignedPreKey));
  const spkSignature = ed25519Sign(spk.publicKey, bobId.secretKey);
  const opk = x25519KeyPair(secret(LABELS.bobOneTimePreKey));
  const ekA = x25519KeyPair(secret(LABELS.aliceEphemeral));
  const aliceR1 = x25519KeyPair(secret(LABELS.aliceRatchet1));
  const bobR1 = x25519KeyPair(secret(LABELS.bobRatchet1));
  const aliceR2 = x25519KeyPair(secret(LABELS.aliceRatchet2));

  // ---- X3DH, straight from the spec ----
  const ikAx = { secretKey: ed25519SecretToX25519(aliceId.secretKey), publicKey: ed25519PublicToX25519(aliceId.publicKey) };
  const ikBx = { secretKey: ed25519SecretToX25519(bobId.secretKey), publicKey: ed25519PublicToX25519(bobId.publicKey) };
  const dh1 = x25519(ikAx.secretKey, spk.publicKey);
  const dh2 = x25519(ekA.secretKey, ikBx.publicKey);
  const dh3 = x25519(ekA.secretKey, spk.publicKey);
  const dh4 = x25519(ekA.secretKey, opk.publicKey);
  const ikm = concat(X3DH_F, dh1, dh2, dh3, dh4);
  const sk = hkdfSha256(ikm, ZERO_SALT, X3DH_INFO, 32);
  const ad = concat(aliceId.publicKey, bobId.publicKey);
  const ikmNoOpk = concat(X3DH_F, dh1, dh2, dh3);
  const skNoOpk = hkdfSha256(ikmNoOpk, ZERO_SALT, X3DH_INFO, 32);

  // ---- the SDK's X3DH must agree, on both sides ----
  const bundle = {
    userId: BOB_ID,
    identityKey: bobId.publicKey,
    signedPreKey: { keyId: SPK_ID, publicKey: spk.publicKey, signature: spkSignature },
    oneTimePreKey: { keyId: OPK_ID, publicKey: opk.publicKey },
  };
  const init = x3dhInitiate(aliceId, bundle, ekA);
  check(same(init.sk, sk) && same(init.ad, ad), 'x3dhInitiate');
  const resp = x3dhRespond(bobId, spk, opk, init.preKeyHeader);
  check(same(resp.sk, sk) && same(resp.ad, ad), 'x3dhRespond');
  check(same(x3dhInitiate(aliceId, { ...bundle, oneTimePreKey: undefined }, ekA).sk, skNoOpk), 'x3dh without OPK');

  // ---- Double Ratchet, straight from the spec ----
  const kdfRk = (rk: Uint8Array, dhOut: Uint8Array) => {
    const out = hkdfSha256(dhOut, rk, RATCHET_INFO, 64);
    return { rk: out.slice(0, 32), ck: out.slice(32) };
  };
  const kdfCk = (ck: Uint8Array) => ({ mk: hmacSha256(ck, CK_MESSAGE_KEY_SEED), ck: hmacSha256(ck, CK_CHAIN_KEY_SEED) });

  // Alice: RatchetInitAlice(SK, SPK_B) with DHs = aliceRatchet1
  const aInitDh = x25519(aliceR1.secretKey, spk.publicKey);
  const aInit = kdfRk(sk, aInitDh);
  // Alice's sending chain A1: messages 0 and 1
  const a0 = kdfCk(aInit.ck);
  const a1 = kdfCk(a0.ck);
  // Bob: RatchetInitBob(SK, SPK_B); on message 0 a DH ratchet step with DHr = aliceRatchet1
  const bRecvDh = x25519(spk.secretKey, aliceR1.publicKey);
  const bRecv = kdfRk(sk, bRecvDh); // == Alice's sending chain
  check(same(bRecv.ck, aInit.ck) && same(bRecv.rk, aInit.rk), 'ratchet init symmetry');
  const bSendDh = x25519(bobR1.secretKey, aliceR1.publicKey);
  const bSend = kdfRk(bRecv.rk, bSendDh);
  const b0 = kdfCk(bSend.ck);
  // Alice receives Bob's message 0: DH ratchet step with DHr = bobRatchet1, new DHs = aliceRatchet2
  const aRecvDh = x25519(aliceR1.secretKey, bobR1.publicKey);
  const aRecv = kdfRk(aInit.rk, aRecvDh);
  check(same(aRecv.ck, bSend.ck), 'DH ratchet symmetry');
  const aSendDh = x25519(aliceR2.secretKey, bobR1.publicKey);
  const aSend = kdfRk(aRecv.rk, aSendDh);
  const a2 = kdfCk(aSend.ck);

  // ---- run the SDK's session code with the same keys and check every output ----
  const alice: SessionState = {
    role: 'initiator',
    localIdentityKey: aliceId.publicKey,
    peerIdentityKey: bobId.publicKey,
    baseKey: ekA.publicKey,
    pendingPreKey: init.preKeyHeader,
    counter: 0,
    ratchet: initInitiator(init.sk, spk.publicKey, aliceR1),
  };
  let bob: SessionState = {
    role: 'responder',
    localIdentityKey: bobId.publicKey,
    peerIdentityKey: aliceId.publicKey,
    baseKey: ekA.publicKey,
    pendingPreKey: null,
    counter: 0,
    ratchet: initResponder(resp.sk, spk),
  };
  check(same(alice.ratchet.rk, aInit.rk) && same(alice.ratchet.cks!, aInit.ck), 'initInitiator');

  const aliceToBob = { senderId: ALICE_ID, receiverId: BOB_ID, chatId: CHAT_ID };
  const bobToAlice = { senderId: BOB_ID, receiverId: ALICE_ID, chatId: CHAT_ID };

  const messages: Record<string, unknown>[] = [];
  const send = (
    name: string,
    from: SessionState,
    to: () => SessionState,
    setTo: (s: SessionState) => void,
    routing: typeof aliceToBob,
    plaintext: Plaintext,
    chain: { ckBefore: Uint8Array; mk: Uint8Array; ckAfter: Uint8Array },
    nextKeyPair?: KeyPair,
  ) => {
    const counter = from.counter;
    const preKey = from.pendingPreKey;
    const sealed = encryptWithState(from, routing, plaintext);
    const env = decodeEnvelope(sealed.envelope);
    check(same(from.ratchet.cks!, chain.ckAfter), `${name}: chain key`);
    const keys = deriveMessageKeys(chain.mk);
    const okm = hkdfSha256(chain.mk, ZERO_SALT, MESSAGE_KEYS_INFO, 80);
    check(same(concat(keys.encKey, keys.macKey, keys.iv), okm), `${name}: message keys`);
    const payload = encodePayload(plaintext);
    const ciphertext = aes256CbcEncrypt(keys.encKey, keys.iv, payload);
    check(same(ciphertext, env.ciphertext) && same(keys.iv, sealed.iv), `${name}: ciphertext`);
    const rh = encodeRatchetHeader(env.header);
    const ph = preKey ? encodePreKeyHeader(preKey) : new Uint8Array(0);
    const input = macInput(associatedData(from), { ...routing, counter }, rh, ph, keys.iv, ciphertext);
    check(same(hmacSha256(keys.macKey, input), sealed.mac), `${name}: MAC`);
    // the receiver decrypts it
    const out = decryptWithState(to(), env, routing, sealed.iv, sealed.mac, nextKeyPair ? () => nextKeyPair : undefined);
    const bodyHex = (p: Plaintext) => (typeof p.body === 'string' ? `s:${p.body}` : `b:${hex(p.body)}`);
    check(out.plaintext.type === plaintext.type && bodyHex(out.plaintext) === bodyHex(plaintext), `${name}: round trip`);
    setTo(out.state);
    messages.push({
      name,
      routing: { ...routing, counter },
      plaintext:
        typeof plaintext.body === 'string'
          ? { type: plaintext.type, body: plaintext.body }
          : { type: plaintext.type, bodyHex: hex(plaintext.body) },
      ratchetHeader: { dh: hex(env.header.dh), pn: env.header.pn, n: env.header.n, encoded: hex(rh) },
      preKeyHeader: preKey
        ? {
            identityKey: hex(preKey.identityKey),
            baseKey: hex(preKey.baseKey),
            signedPreKeyId: preKey.signedPreKeyId,
            oneTimePreKeyId: preKey.oneTimePreKeyId,
            encoded: hex(ph),
          }
        : null,
      chainKey: hex(chain.ckBefore),
      messageKey: hex(chain.mk),
      nextChainKey: hex(chain.ckAfter),
      encKey: hex(keys.encKey),
      macKey: hex(keys.macKey),
      iv: hex(keys.iv),
      payload: hex(payload),
      ciphertext: hex(ciphertext),
      macInput: hex(input),
      mac: hex(sealed.mac),
      envelope: hex(sealed.envelope),
      wire: {
        encryptedContent: toBase64(sealed.envelope),
        iv: toBase64(sealed.iv),
        mac: toBase64(sealed.mac),
        type: preKey ? 'key_exchange' : 'text',
      },
    });
  };

  let aliceState = alice;
  const setBob = (s: SessionState) => (bob = s);
  const setAlice = (s: SessionState) => (aliceState = s);
  send('A→B #0: first message, pre-key envelope', aliceState, () => bob, setBob, aliceToBob, { type: 'text', body: 'Hello Bob' }, { ckBefore: aInit.ck, mk: a0.mk, ckAfter: a0.ck }, bobR1);
  check(same(bob.ratchet.rk, bSend.rk) && same(bob.ratchet.cks!, bSend.ck) && same(bob.ratchet.ckr!, a0.ck), 'Bob after DH ratchet');
  send('A→B #1: same chain (symmetric step only), still a pre-key envelope', aliceState, () => bob, setBob, aliceToBob, { type: 'image', body: Uint8Array.of(0x89, 0x50, 0x4e, 0x47) }, { ckBefore: a0.ck, mk: a1.mk, ckAfter: a1.ck });
  send('B→A #0: Bob\'s first message, after his DH ratchet turn', bob, () => aliceState, setAlice, bobToAlice, { type: 'text', body: 'Hi Alice 👋' }, { ckBefore: bSend.ck, mk: b0.mk, ckAfter: b0.ck }, aliceR2);
  check(same(aliceState.ratchet.rk, aSend.rk) && same(aliceState.ratchet.cks!, aSend.ck) && aliceState.pendingPreKey === null, 'Alice after DH ratchet');
  send('A→B #2: after Alice\'s DH ratchet turn (pn = 2), a normal envelope', aliceState, () => bob, setBob, aliceToBob, { type: 'text', body: 'Got it' }, { ckBefore: aSend.ck, mk: a2.mk, ckAfter: a2.ck });

  return {
    description: 'SafeChat v1 fixed-key test vectors: X3DH, Double Ratchet, message envelope. See README.md in this folder.',
    protocolVersion: 1,
    encoding: 'hex for bytes unless a field says base64; integers are decimal',
    constants: {
      x3dhInfo: 'SafeChat X3DH v1',
      ratchetInfo: 'SafeChat Ratchet v1',
      messageKeysInfo: 'SafeChat Message Keys v1',
      x3dhF: hex(X3DH_F),
      zeroSalt: hex(ZERO_SALT),
      chainKeyMessageSeed: hex(CK_MESSAGE_KEY_SEED),
      chainKeyNextSeed: hex(CK_CHAIN_KEY_SEED),
    },
    keys: {
      derivation: 'each secretKey = SHA-256(utf8(label)); X25519 secret keys are clamped when used (RFC 7748 §5)',
      labels: LABELS,
      aliceIdentity: { userId: ALICE_ID, ed25519Seed: hex(aliceId.secretKey), ed25519Public: hex(aliceId.publicKey), x25519Secret: hex(ikAx.secretKey), x25519Public: hex(ikAx.publicKey) },
      bobIdentity: { userId: BOB_ID, ed25519Seed: hex(bobId.secretKey), ed25519Public: hex(bobId.publicKey), x25519Secret: hex(ikBx.secretKey), x25519Public: hex(ikBx.publicKey) },
      bobSignedPreKey: { keyId: SPK_ID, ...kp(spk), signature: hex(spkSignature) },
      bobOneTimePreKey: { keyId: OPK_ID, ...kp(opk) },
      aliceEphemeral: kp(ekA),
      aliceRatchet1: kp(aliceR1),
      bobRatchet1: kp(bobR1),
      aliceRatchet2: kp(aliceR2),
    },
    x3dh: {
      dh1: hex(dh1),
      dh2: hex(dh2),
      dh3: hex(dh3),
      dh4: hex(dh4),
      ikm: hex(ikm),
      sk: hex(sk),
      ad: hex(ad),
      withoutOneTimePreKey: { ikm: hex(ikmNoOpk), sk: hex(skNoOpk) },
    },
    ratchet: {
      aliceInit: { dh: hex(aInitDh), rootKey: hex(aInit.rk), sendingChainKey: hex(aInit.ck) },
      bobFirstTurn: {
        receiveDh: hex(bRecvDh),
        rootKeyAfterReceive: hex(bRecv.rk),
        receivingChainKey: hex(bRecv.ck),
        sendDh: hex(bSendDh),
        rootKey: hex(bSend.rk),
        sendingChainKey: hex(bSend.ck),
      },
      aliceSecondTurn: {
        receiveDh: hex(aRecvDh),
        rootKeyAfterReceive: hex(aRecv.rk),
        receivingChainKey: hex(aRecv.ck),
        sendDh: hex(aSendDh),
        rootKey: hex(aSend.rk),
        sendingChainKey: hex(aSend.ck),
      },
    },
    messages,
    safetyNumber: {
      aliceDigits: fingerprintDigits({ userId: ALICE_ID, identityKey: aliceId.publicKey }),
      bobDigits: fingerprintDigits({ userId: BOB_ID, identityKey: bobId.publicKey }),
      display: safetyNumber({ userId: ALICE_ID, identityKey: aliceId.publicKey }, { userId: BOB_ID, identityKey: bobId.publicKey }),
    },
  };
}
