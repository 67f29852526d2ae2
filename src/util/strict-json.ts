/**
 * Strict JSON parsing for every HTTP body and WebSocket frame (SECURITY.md IN-07, IN-08, IN-12).
 *
 * One left-to-right structural scan enforces the policy (duplicate keys, forbidden keys, nesting
 * depth, total key count); JSON.parse then builds the value and remains the authority on syntax.
 *
 * @NOTE strings are skipped with `indexOf('"')` plus a count of the backslashes in front of the
 * candidate quote, not with a regex. `/"(?:[^"\\]|\\.)*"/y` is ~2.5x slower than JSON.parse on a
 * 90 KB base64 string and throws RangeError (regexp backtrack stack) on a ~10 MB one; the unrolled
 * `/"[^"\\]*(?:\\.[^"\\]*)*"/y` is safe but still ~1.7x JSON.parse on its own. For valid JSON the
 * indexOf skip finds exactly the same closing quote; string contents (control characters, bad
 * escapes) are left to JSON.parse, which rejects them.
 */

export type StrictJsonReason = 'invalid_json' | 'duplicate_key' | 'forbidden_key' | 'too_deep' | 'too_many_keys';

export interface StrictJsonLimits {
  /** Maximum nesting of arrays and objects together; `[]` and `{}` are depth 1. Default 16. */
  maxDepth?: number;
  /** Maximum number of object keys in the whole document. Default 1,000. */
  maxKeys?: number;
}

export const DEFAULT_MAX_DEPTH = 16;
export const DEFAULT_MAX_KEYS = 1_000;

export class StrictJsonError extends Error {
  override readonly name = 'StrictJsonError';
  readonly reason: StrictJsonReason;
  /** UTF-16 offset where the problem was found, when known. */
  readonly position: number | undefined;

  // @NOTE messages never quote the input: it may be ciphertext or a secret (STYLE.md §4.12).
  constructor(reason: StrictJsonReason, message: string, position?: number) {
    super(message);
    this.reason = reason;
    this.position = position;
  }
}

const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

// Scanner states.
const EXPECT_VALUE = 0;
const AFTER_VALUE = 1;
const EXPECT_KEY = 2;

function checkLimit(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer`);
  return value;
}

function invalid(position: number): StrictJsonError {
  return new StrictJsonError('invalid_json', `invalid JSON at position ${position}`, position);
}

/** JSON insignificant whitespace only (space, tab, LF, CR): a BOM or NBSP is not whitespace. */
function skipWhitespace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return i;
  }
}

/** `start` is the opening quote; returns the index just past the closing quote. */
function skipString(text: string, start: number): number {
  let j = start + 1;
  for (;;) {
    j = text.indexOf('"', j);
    if (j === -1) throw invalid(start);
    // A quote is escaped iff an odd number of backslashes precede it. Each backslash run sits in
    // front of exactly one quote, so this stays linear overall.
    let k = j - 1;
    while (text.charCodeAt(k) === BACKSLASH) k--;
    if (((j - 1 - k) & 1) === 0) return j + 1;
    j++;
  }
}

function skipLiteral(text: string, i: number, literal: string): number {
  if (!text.startsWith(literal, i)) throw invalid(i);
  return i + literal.length;
}

/**
 * Parses `text` as JSON, rejecting duplicate keys, `__proto__`/`constructor`/`prototype` keys
 * anywhere, nesting deeper than `maxDepth` and more than `maxKeys` keys in total.
 * Throws StrictJsonError; `reason` reflects the first problem found scanning left to right.
 */
export function parseStrictJson(text: string, limits: StrictJsonLimits = {}): unknown {
  const maxDepth = checkLimit('maxDepth', limits.maxDepth ?? DEFAULT_MAX_DEPTH);
  const maxKeys = checkLimit('maxKeys', limits.maxKeys ?? DEFAULT_MAX_KEYS);
  if (typeof text !== 'string') throw new StrictJsonError('invalid_json', 'JSON input must be a string');

  const length = text.length;
  // Open containers, innermost last: the key set of an object, or null for an array. Bounded by
  // maxDepth, and the scan is iterative, so hostile nesting cannot exhaust the call stack.
  const open: (Set<string> | null)[] = [];
  let totalKeys = 0;
  let state = EXPECT_VALUE;
  let i = skipWhitespace(text, 0);

  for (;;) {
    if (state === EXPECT_VALUE) {
      const c = text.charCodeAt(i);
      if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (open.length >= maxDepth) {
          throw new StrictJsonError('too_deep', `JSON nesting deeper than ${maxDepth}`, i);
        }
        const isObject = c === OPEN_BRACE;
        i = skipWhitespace(text, i + 1);
        if (text.charCodeAt(i) === (isObject ? CLOSE_BRACE : CLOSE_BRACKET)) {
          i++;
          state = AFTER_VALUE;
        } else {
          open.push(isObject ? new Set<string>() : null);
          state = isObject ? EXPECT_KEY : EXPECT_VALUE;
        }
        continue;
      }
      if (c === QUOTE) {
        i = skipString(text, i);
      } else if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) {
        NUMBER.lastIndex = i;
        if (!NUMBER.test(text)) throw invalid(i);
        i = NUMBER.lastIndex;
      } else if (c === 0x74 /* t */) {
        i = skipLiteral(text, i, 'true');
      } else if (c === 0x66 /* f */) {
        i = skipLiteral(text, i, 'false');
      } else if (c === 0x6e /* n */) {
        i = skipLiteral(text, i, 'null');
      } else {
        throw invalid(i);
      }
      state = AFTER_VALUE;
      continue;
    }

    if (state === AFTER_VALUE) {
      i = skipWhitespace(text, i);
      if (open.length === 0) {
        if (i !== length) throw invalid(i);
        break;
      }
      const c = text.charCodeAt(i);
      const isObject = open[open.length - 1] !== null;
      if (c === COMMA) {
        i = skipWhitespace(text, i + 1);
        state = isObject ? EXPECT_KEY : EXPECT_VALUE;
      } else if (c === (isObject ? CLOSE_BRACE : CLOSE_BRACKET)) {
        open.pop();
        i++;
      } else {
        throw invalid(i);
      }
      continue;
    }

    // EXPECT_KEY: `i` is at the first non-whitespace character after `{` or `,`.
    if (text.charCodeAt(i) !== QUOTE) throw invalid(i);
    const keyStart = i;
    i = skipString(text, i);
    const raw = text.slice(keyStart + 1, i - 1);
    let key = raw;
    if (raw.includes('\\')) {
      // Compare decoded keys, so "a" and "\u0061" collide.
      try {
        key = JSON.parse(text.slice(keyStart, i)) as string;
      } catch {
        throw invalid(keyStart);
      }
    }
    if (FORBIDDEN_KEYS.has(key)) throw new StrictJsonError('forbidden_key', 'forbidden JSON key', keyStart);
    const keys = open[open.length - 1]!;
    if (keys.has(key)) throw new StrictJsonError('duplicate_key', 'duplicate JSON key', keyStart);
    if (++totalKeys > maxKeys) {
      throw new StrictJsonError('too_many_keys', `more than ${maxKeys} JSON keys`, keyStart);
    }
    keys.add(key);
    i = skipWhitespace(text, i);
    if (text.charCodeAt(i) !== COLON) throw invalid(i);
    i = skipWhitespace(text, i + 1);
    state = EXPECT_VALUE;
  }

  try {
    return JSON.parse(text) as unknown;
  } catch {
    // @NOTE the SyntaxError is dropped on purpose: V8 quotes the surrounding input in its message.
    throw new StrictJsonError('invalid_json', 'invalid JSON');
  }
}
