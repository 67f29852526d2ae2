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

/** A uniform number in [0, 1). */
export function randomFraction(): number {
  return cryptoSource().getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
}
