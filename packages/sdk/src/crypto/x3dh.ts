/**
 * X3DH key agreement (Signal's X3DH specification, revision 1) over X25519, with one Ed25519
 * identity key that is converted to X25519 for DH1/DH2 (see primitives.ts).
 *
 *   DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
 *   SK  = HKDF-SHA256(ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], salt = 0x00×32, info = "SafeChat X3DH v1", L = 32)
 *   AD  = IK_A ‖ IK_B   (the two 32-byte Ed25519 identity public keys, initiator first)
 */
import { concat, isUint32, wipe } from './bytes.js';
import { KEY_LEN, SIGNATURE_LEN, X3DH_F, X3DH_INFO, X3DH_SK_LEN, ZERO_SALT } from './constants.js';
import { InvalidBundleError } from './errors.js';
import {
  ed25519IsValidPublicKey,
  ed25519PublicToX25519,
  ed25519SecretToX25519,
  ed25519Verify,
  hkdfSha256,
  x25519,
  x25519KeyPair,
  type KeyPair,
} from './primitives.js';

/** A peer's pre-key bundle, decoded (see `GET /keys/{userId}`). */
export interface PreKeyBundle {
  userId: string;
  /** Ed25519 identity public key. */
  identityKey: Uint8Array;
  signedPreKey: { keyId: number; publicKey: Uint8Array; signature: Uint8Array };
  oneTimePreKey?: { keyId: number; publicKey: Uint8Array } | undefined;
}

/** What the initiator sends so the responder can run X3DH (carried in pre-key envelopes). */
export interface PreKeyHeader {
  /** IK_A: the initiator's Ed25519 identity public key. */
  identityKey: Uint8Array;
  /** EK_A: the initiator's ephemeral X25519 public key ("base key"). */
  baseKey: Uint8Array;
  signedPreKeyId: number;
  oneTimePreKeyId: number | null;
}

export interface X3dhResult {
  /** SK: the first root key of the Double Ratchet. */
  sk: Uint8Array;
  /** AD = IK_A ‖ IK_B. */
  ad: Uint8Array;
}

/**
 * Checks a bundle before any use: key lengths and ids, a usable identity key, and the Ed25519
 * signature of IK_B over the 32 raw bytes of SPK_B. Throws InvalidBundleError.
 */
export function verifyBundle(bundle: PreKeyBundle): void {
  const { identityKey, signedPreKey: spk, oneTimePreKey: opk } = bundle;
  // The server also accepts libsignal's Curve25519 identity keys (0x05 + 32 bytes, XEdDSA): another kind of client.
  if (identityKey.length === 33 && identityKey[0] === 0x05) throw new InvalidBundleError('the peer has a Curve25519 (XEdDSA, libsignal) identity key, which this SDK does not support');
  if (!ed25519IsValidPublicKey(identityKey)) throw new InvalidBundleError('invalid identity key');
  if (!isUint32(spk.keyId) || spk.publicKey.length !== KEY_LEN || spk.signature.length !== SIGNATURE_LEN) {
    throw new InvalidBundleError('invalid signed pre-key');
  }
  if (!ed25519Verify(spk.signature, spk.publicKey, identityKey)) {
    throw new InvalidBundleError('signed pre-key signature does not verify');
  }
  if (opk && (!isUint32(opk.keyId) || opk.publicKey.length !== KEY_LEN)) {
    throw new InvalidBundleError('invalid one-time pre-key');
  }
}

function deriveSk(dhs: Uint8Array[]): Uint8Array {
  const ikm = concat(X3DH_F, ...dhs);
  const sk = hkdfSha256(ikm, ZERO_SALT, X3DH_INFO, X3DH_SK_LEN);
  wipe(ikm);
  return sk;
}

/**
 * Initiator side. Verifies the bundle first; `ephemeral` is injectable only for fixed test
 * vectors. Every DH rejects low-order inputs (primitives.x25519). `dh` is returned for vectors.
 */
export function x3dhInitiate(
  identity: KeyPair,
  bundle: PreKeyBundle,
  ephemeral: KeyPair = x25519KeyPair(),
): X3dhResult & { preKeyHeader: PreKeyHeader; dh: Uint8Array[] } {
  verifyBundle(bundle);
  const ikA = ed25519SecretToX25519(identity.secretKey);
  const ikB = ed25519PublicToX25519(bundle.identityKey);
  const dh = [
    x25519(ikA, bundle.signedPreKey.publicKey),
    x25519(ephemeral.secretKey, ikB),
    x25519(ephemeral.secretKey, bundle.signedPreKey.publicKey),
  ];
  if (bundle.oneTimePreKey) dh.push(x25519(ephemeral.secretKey, bundle.oneTimePreKey.publicKey));
  wipe(ikA);
  return {
    sk: deriveSk(dh),
    ad: concat(identity.publicKey, bundle.identityKey),
    dh,
    preKeyHeader: {
      identityKey: Uint8Array.from(identity.publicKey),
      baseKey: Uint8Array.from(ephemeral.publicKey),
      signedPreKeyId: bundle.signedPreKey.keyId,
      oneTimePreKeyId: bundle.oneTimePreKey ? bundle.oneTimePreKey.keyId : null,
    },
  };
}

/**
 * Responder side: the same four DHs from the other end. `oneTimePreKey` must be the key named
 * by `header.oneTimePreKeyId` (null when none was used). Throws on a low-order/invalid key.
 */
export function x3dhRespond(
  identity: KeyPair,
  signedPreKey: KeyPair,
  oneTimePreKey: KeyPair | null,
  header: PreKeyHeader,
): X3dhResult & { dh: Uint8Array[] } {
  if (!ed25519IsValidPublicKey(header.identityKey)) throw new Error('invalid identity key');
  if ((header.oneTimePreKeyId === null) !== (oneTimePreKey === null)) throw new Error('one-time pre-key mismatch');
  const ikB = ed25519SecretToX25519(identity.secretKey);
  const ikA = ed25519PublicToX25519(header.identityKey);
  const dh = [
    x25519(signedPreKey.secretKey, ikA),
    x25519(ikB, header.baseKey),
    x25519(signedPreKey.secretKey, header.baseKey),
  ];
  if (oneTimePreKey) dh.push(x25519(oneTimePreKey.secretKey, header.baseKey));
  wipe(ikB);
  return { sk: deriveSk(dh), ad: concat(header.identityKey, identity.publicKey), dh };
}
