/**
 * The base keys (EK_A, the initiator's X3DH ephemeral key) of the first messages a signed pre-key
 * has already accepted. A first message is only matched to its session while that session is
 * among the states a peer's record keeps; once it has left, the same message would set the
 * session up again. Remembering every accepted base key next to the signed pre-key it was used
 * with refuses such a replay for as long as the signed pre-key can still open it, and the record
 * goes when the key is rotated out (decision 0102).
 *
 * Pure functions over a SignedPreKeyRecord; api.ts does the storage (and the locking).
 */
import type { SignedPreKeyRecord } from '../store/types.js';
import { MAX_SEEN_BASE_KEYS } from './constants.js';

/**
 * The base keys (base64) already accepted under `spk`, oldest first. A record stored before
 * the field existed has none; a field of any other shape is a corrupted store (TypeError), as a
 * corrupted session record is: refused rather than read as "nothing seen".
 */
export function seenBaseKeys(spk: SignedPreKeyRecord): readonly string[] {
  const seen: unknown = spk.seenBaseKeys;
  if (seen === undefined || seen === null) return [];
  if (!Array.isArray(seen) || !seen.every((k) => typeof k === 'string')) throw new TypeError('bad signed pre-key record (seenBaseKeys)');
  return seen;
}

/** Whether a first message with this base key (base64) was already accepted under `spk`. */
export function hasSeenBaseKey(spk: SignedPreKeyRecord, baseKey: string): boolean {
  return seenBaseKeys(spk).includes(baseKey);
}

/**
 * `spk` with `baseKey` added at the end (the oldest dropped beyond `max`), or undefined when it
 * is already there (nothing to save).
 *
 * @NOTE at the cap the oldest is forgotten rather than new first messages refused: a refusal
 * would let anyone who can send us first messages (any account, or the server) fill the list and
 * keep honest peers from starting sessions until the key is rotated. What forgetting leaves open
 * is described in decision 0102.
 */
export function withSeenBaseKey(spk: SignedPreKeyRecord, baseKey: string, max = MAX_SEEN_BASE_KEYS): SignedPreKeyRecord | undefined {
  const seen = seenBaseKeys(spk);
  if (seen.includes(baseKey)) return undefined;
  const next = [...seen, baseKey];
  return { ...spk, seenBaseKeys: next.length > max ? next.slice(next.length - max) : next };
}
