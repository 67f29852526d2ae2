import fs from 'node:fs';

/**
 * Common-password check for registration and password change (SECURITY.md AUTH-04).
 * The list ships in the repo (see common-passwords.NOTICE.md) and is read offline.
 */

let commonPasswords: ReadonlySet<string> | undefined;

/** Loaded on first use, then cached: a ~90 KB file, read once per process. */
function loadCommonPasswords(): ReadonlySet<string> {
  if (commonPasswords === undefined) {
    const text = fs.readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8');
    const set = new Set<string>();
    for (const line of text.split('\n')) {
      const entry = normalisePassword(line.trim());
      if (entry !== '') set.add(entry);
    }
    commonPasswords = set;
  }
  return commonPasswords;
}

function normalisePassword(password: string): string {
  return password.normalize('NFKC').toLowerCase();
}

/** One character (code point) repeated, e.g. 'aaaaaaaa' or '11111111111': the list only holds some lengths. */
const SINGLE_REPEATED_CHARACTER = /^(.)\1*$/su;

/** Number of entries in the shipped list (after normalisation and de-duplication). */
export function commonPasswordCount(): number {
  return loadCommonPasswords().size;
}

/**
 * True when `password` is on the shipped common-password list (compared case-insensitively after
 * NFKC normalisation) or is a trivial pattern the list may miss. The empty string counts as trivial.
 */
export function isCommonPassword(password: string): boolean {
  const normalised = normalisePassword(password);
  if (normalised === '' || SINGLE_REPEATED_CHARACTER.test(normalised)) return true;
  return loadCommonPasswords().has(normalised);
}
