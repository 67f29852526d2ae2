import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

/** Raw 32-byte public key of an OKP KeyObject, base64. */
export function rawPublic(key: KeyObject): string {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}

export function identityKeyPair(): { publicKey: string; privateKey: KeyObject } {
  const kp = generateKeyPairSync('ed25519');
  return { publicKey: rawPublic(kp.publicKey), privateKey: kp.privateKey };
}

export function x25519Public(): string {
  return rawPublic(generateKeyPairSync('x25519').publicKey);
}

/** A valid PUT /keys body (real keys, real signature) with `n` one-time pre-keys from `firstId`. */
export function keyUpload(identity = identityKeyPair(), n = 5, firstId = 1, spkId = 1) {
  const spk = x25519Public();
  return {
    identity,
    body: {
      identityKey: identity.publicKey,
      signedPreKey: { keyId: spkId, publicKey: spk, signature: sign(null, Buffer.from(spk, 'base64'), identity.privateKey).toString('base64') },
      oneTimePreKeys: Array.from({ length: n }, (_, i) => ({ keyId: firstId + i, publicKey: x25519Public() })),
    },
  };
}
