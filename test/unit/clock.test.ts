import { describe, expect, it } from 'vitest';
import { iso } from '../../src/util/clock.js';

describe('iso', () => {
  it('formats each time as ISO 8601, the same time twice alike, a new time anew', () => {
    expect(iso(0)).toBe('1970-01-01T00:00:00.000Z');
    expect(iso(1_765_000_000_123)).toBe('2025-12-06T05:46:40.123Z');
    expect(iso(1_765_000_000_123)).toBe('2025-12-06T05:46:40.123Z');
    expect(iso(1_765_000_000_124)).toBe('2025-12-06T05:46:40.124Z');
    expect(iso(0)).toBe('1970-01-01T00:00:00.000Z');
  });

  it('refuses a time that is not one, every time', () => {
    expect(() => iso(Number.NaN)).toThrow(RangeError);
    expect(() => iso(Number.NaN)).toThrow(RangeError);
    expect(() => iso(1e20)).toThrow(RangeError);
  });
});
