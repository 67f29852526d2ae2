/** Randomness for ids and jitter: always the platform CSPRNG (WebCrypto), never Math.random. */

function cryptoSource(): Crypto {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (!c || typeof c.getRandomValues !== 'function') throw new Error('crypto.getRandomValues is not available');
  return c;
}

/** A random id of `bytes` random bytes as lower-case hex (fits clientMessageId and requestId). */
export function randomId(bytes = 16): string {
  const b = cryptoSource().getRandomValues(new Uint8Array(bytes));
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/**
 * A `clientMessageId`: the time in milliseconds (12 hex digits), then 80 random bits (20 hex
 * digits), like a UUIDv7. The server keeps a unique index on (sender, clientMessageId) for as long
 * as the message exists; ids that grow with time are added at the end of the sender's part of it,
 * where random ids land on a random page of the sender's whole history, one more page read and
 * written per send once that history outgrows the cache (decision 0027). The time it reveals is
 * the message's own `timestamp`, which the server records anyway.
 */
export function timeOrderedId(nowMs: number = Date.now()): string {
  return Math.floor(nowMs).toString(16).padStart(12, '0').slice(-12) + randomId(10);
}

/** A uniform number in [0, 1). */
export function randomFraction(): number {
  return cryptoSource().getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
}
